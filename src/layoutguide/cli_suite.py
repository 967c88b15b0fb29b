"""``layoutguide bench suite`` and ``bench merge``: public layout suites scored with detectors (thin wrappers over
:mod:`layoutguide.bench.public`), registered on the ``bench`` command group."""

from __future__ import annotations

from pathlib import Path

import typer

from .cli_checks import MODEL_HELP, check_preset_flag, fail, load_checked, note


def register(bench_app: typer.Typer) -> None:
    """Add ``suite`` and ``merge`` to the ``bench`` group (called by :mod:`layoutguide.cli`, also when it runs as
    ``python -m layoutguide.cli`` under ``accelerate launch``)."""
    bench_app.command("suite")(bench_suite)
    bench_app.command("merge")(bench_merge)


def bench_suite(
    suite: str = typer.Option(
        ...,
        help="coco-mig, hrs-counting, hrs-spatial, hrs-size, drawbench-counting, "
        "drawbench-spatial, nsr-1k, coco or layoutbench (docs/benchmarks.md).",
    ),
    data: Path = typer.Option(..., help="The suite's file or folder, as its authors publish it."),
    detector: str = typer.Option(..., help="Detector name (shapes, grounding-dino, owlv2, yolov8, ...)."),
    detector_weights: str | None = typer.Option(None, help="Local weights file or folder of the detector."),
    model: str | None = typer.Option(None, help=MODEL_HELP),
    methods: str = typer.Option("none,refocus", help="Comma-separated methods ('none' = unguided)."),
    out: Path = typer.Option(Path("bench-out/suite"), help="Output folder (resumes per image)."),
    shard: str | None = typer.Option(None, help="I/N: this process does the I-th of N shares; then bench merge."),
    n: int | None = typer.Option(None, help="Only the first N prompts of the file."),
    samples: int = typer.Option(1, help="Images per prompt (seeds per prompt and sample)."),
    seed: int = typer.Option(0, help="Seed of the run (image seeds derive from it)."),
    steps: int | None = typer.Option(None, help="Denoising steps (default: the model's)."),
    guidance_scale: float | None = typer.Option(None, help="CFG scale (default: the model's)."),
    batch_size: int = typer.Option(4, help="Prompts per pipeline call."),
    matching: str = typer.Option("max-iou", help="coco-mig only: max-iou (the paper's) or one-to-one."),
    score_threshold: float | None = typer.Option(
        None, help="Detections below this score are ignored (default: the suite's protocol value)."
    ),
    set_: list[str] | None = typer.Option(None, "--set", help="Method option, METHOD.OPTION=VALUE (repeatable)."),
    preset: str | None = typer.Option(None, help="tuned, official or paper (see 'layoutguide methods')."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps (under accelerate: each process's device)."),
    dtype: str = typer.Option("auto", help="auto, fp32, fp16, bf16."),
) -> None:
    """Generate a public suite's prompts with its layouts, detect and score; report.md, results.json, grid.png."""
    from .bench.detectors import load_detector
    from .bench.public import load_suite
    from .bench.public.base import harness_colour_check
    from .bench.public.run import distributed_state, launched, parse_shard, run_suite
    from .cli import _command_line, _method_names, _method_specs, parse_sets

    check_preset_flag(preset)
    options = parse_sets(set_)
    names = _method_names(methods)
    if batch_size < 1:
        fail(f"--batch-size must be at least 1, got {batch_size}")
    if out.exists() and not out.is_dir():
        fail(f"--out: {out} is a file; give a folder")
    shard_at = parse_shard(shard)
    loaded = load_suite(suite, data, matching=matching)
    if score_threshold is not None:
        loaded.score_threshold = score_threshold
    if launched():  # under accelerate launch: this process's device (gloo between CPU processes)
        state = distributed_state(device)
        device = str(state.device) if device == "auto" else device
    found = load_detector(detector, detector_weights, device="cpu" if device == "auto" else device)
    pipe = load_checked(model, device, dtype)
    results = run_suite(
        pipe, loaded, _method_specs(names, options, preset), found, harness_colour_check(loaded.colour_names),
        out=out, n=n, samples=samples, seed=seed, shard=shard_at, steps=steps, guidance_scale=guidance_scale,
        batch_size=batch_size, command=_command_line(), report=note,
    )  # fmt: skip
    if results is None:
        typer.echo(f"wrote this share's images and scores to {out}; when every share is done: layoutguide bench merge")
    else:
        typer.echo(f"wrote {out / 'report.md'}, {out / 'results.json'}, {out / 'grid.png'}")


def bench_merge(
    folders: list[Path] = typer.Argument(..., help="The --out folders of one run's shards (or one folder)."),
    out: Path | None = typer.Option(None, help="Where the report goes (default: the first folder)."),
) -> None:
    """Merge the scores of a bench suite run's shards into one report."""
    from .bench.public.report import merge_folders

    target = out or folders[0]
    merge_folders(folders, target, report=note)
    typer.echo(f"wrote {target / 'report.md'}, {target / 'results.json'}, {target / 'grid.png'}")
