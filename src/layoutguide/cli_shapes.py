"""``layoutguide shapes train | init-run | competence | export``: the shapes world's trainer, run folders and model
export (thin wrappers over :mod:`layoutguide.shapes.train`), registered on the ``shapes`` command group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from .cli_checks import MODEL_HELP, check_numbers, fail, guidance_interval_option, load_checked, note
from .errors import InputError


def register(shapes_app: typer.Typer) -> None:
    """Add the shapes commands to the ``shapes`` group (called by :mod:`layoutguide.cli`)."""
    shapes_app.command("train")(shapes_train)
    shapes_app.command("init-run")(shapes_init_run)
    shapes_app.command("competence")(shapes_competence)
    shapes_app.command("export")(shapes_export)


def shapes_train(
    out: Path = typer.Option(Path("runs/shapes"), help="Run folder (checkpoints, logs, samples); resumes if present."),
    unet_steps: int | None = typer.Option(None, help="Denoiser steps (default 8000)."),
    vae_steps: int | None = typer.Option(None, help="Autoencoder steps (default 1500)."),
    batch: int | None = typer.Option(None, help="Denoiser batch size (default 32)."),
    max_minutes: float | None = typer.Option(None, help="Stop after this much wall time (a checkpoint is written)."),
    lr: float | None = typer.Option(None, help="Denoiser peak learning rate (default 1e-3)."),
    attn_token_weight: float | None = typer.Option(
        None, help="Weight of the token-level attention loss (TokenCompose L_token)."
    ),
    attn_pixel_weight: float | None = typer.Option(
        None, help="Weight of the pixel-level attention loss (TokenCompose L_pixel)."
    ),
    schedule_start: int | None = typer.Option(
        None, help="Restart the learning-rate schedule at this step (fine-tuning a finished run)."
    ),
    object_count_weights: str | None = typer.Option(
        None,
        help="Share of training scenes with 1, 2, ... objects, comma-separated, one per count up to 4 (e.g. "
        "'0.4,0.2,0.2,0.2'; default uniform). Carries over when the run resumes.",
    ),
    gligen_steps: int = typer.Option(0, help="Then train GLIGEN's gated layers for this many steps (base frozen)."),
    gligen_lr: float = typer.Option(5e-4, help="Learning rate of the GLIGEN stage."),
    gligen_batch: int = typer.Option(32, help="Batch size of the GLIGEN stage (the shipped stage: 32)."),
    gligen_token_weight: float = typer.Option(
        0.0,
        help="GLIGEN stage: weight of the grounding-attention loss (share of each grounding token's attention "
        "from inside its box; not in GLIGEN's recipe).",
    ),
    gligen_pixel_weight: float = typer.Option(
        0.0,
        help="GLIGEN stage: weight of the pixel-level grounding-attention loss (BCE of each grounding token's map "
        "against its box).",
    ),
    gligen_position_code: bool = typer.Option(
        False,
        help="GLIGEN stage: add a fixed 2D sinusoidal code to the fusers' visual tokens (not in GLIGEN; the "
        "exported model samples with it).",
    ),
    gligen_grounding_text: str = typer.Option(
        "head",
        help="GLIGEN stage: grounding phrases carry the head noun ('circle') or the whole phrase ('red circle', "
        "binds colours to boxes); the exported model samples the same way.",
    ),
    gligen_colourless_captions: float = typer.Option(
        0.0,
        help="GLIGEN stage: share of training captions that name the shapes but no colour, as real GLIGEN's "
        "grounding data often lacks attributes (0 in the shipped stage).",
    ),
    gligen_null_captions: float = typer.Option(
        0.0,
        help="GLIGEN stage: share of training captions left empty while the boxes stay, as real GLIGEN's detection "
        "data without captions (0 in the shipped stage).",
    ),
    gligen_gate_lr_scale: float = typer.Option(
        20.0, help="GLIGEN stage: the gates' learning rate as a multiple of --gligen-lr (the shipped stage: 20)."
    ),
    device: str = typer.Option("auto", help="auto (CUDA if present), cpu, cuda."),
) -> None:
    """Train (or resume) the shapes-world model (and, with --gligen-steps, its GLIGEN variant)."""
    import dataclasses

    from .shapes.train import TrainConfig, open_trainer

    state_file = out / "ckpt" / "state.json"
    base = TrainConfig(**json.loads(state_file.read_text())["config"]) if state_file.exists() else TrainConfig()
    changes: dict[str, Any] = {
        k: v
        for k, v in dict(
            unet_steps=unet_steps,
            vae_steps=vae_steps,
            batch=batch,
            lr=lr,
            attn_token_weight=attn_token_weight,
            attn_pixel_weight=attn_pixel_weight,
            schedule_start=schedule_start,
            object_count_weights=_count_weights(object_count_weights, base.max_objects),
        ).items()
        if v is not None
    }
    # the recipe carries over from the run; the wall-time limit belongs to this invocation only
    if gligen_grounding_text not in ("head", "phrase"):
        fail(f"--gligen-grounding-text must be 'head' or 'phrase', got {gligen_grounding_text!r}")
    if not 0.0 <= gligen_colourless_captions <= 1.0:
        fail(f"--gligen-colourless-captions must be a share in [0, 1], got {gligen_colourless_captions:g}")
    if not 0.0 <= gligen_null_captions <= 1.0 - gligen_colourless_captions:
        fail(
            f"--gligen-null-captions must be a share in [0, 1 - --gligen-colourless-captions], "
            f"got {gligen_null_captions:g}"
        )
    if gligen_batch < 1:
        fail(f"--gligen-batch must be at least 1, got {gligen_batch}")
    if gligen_gate_lr_scale <= 0:
        fail(f"--gligen-gate-lr-scale must be positive, got {gligen_gate_lr_scale:g}")
    trainer = open_trainer(out, dataclasses.replace(base, **changes, max_minutes=max_minutes), device=device)
    trainer.run()
    if gligen_steps and not trainer._out_of_time():
        trainer.train_gligen(
            steps=gligen_steps,
            lr=gligen_lr,
            batch=gligen_batch,
            grounding_token_weight=gligen_token_weight,
            grounding_pixel_weight=gligen_pixel_weight,
            position_code=gligen_position_code,
            grounding_text=gligen_grounding_text,
            colourless_captions=gligen_colourless_captions,
            null_captions=gligen_null_captions,
            gate_lr_scale=gligen_gate_lr_scale,
        )
    if trainer._out_of_time():
        typer.echo(f"stopped after --max-minutes {max_minutes:g} at a checkpoint; run the same command again to go on")


def _count_weights(text: str | None, max_objects: int) -> list[float] | None:
    """``--object-count-weights`` as numbers, or one clear line naming what is wrong."""
    if text is None:
        return None
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        fail(f"--object-count-weights must be numbers separated by commas (e.g. '0.4,0.2,0.2,0.2'), got {text!r}")
    if len(weights) != max_objects or min(weights) < 0 or sum(weights) <= 0:
        fail(
            f"--object-count-weights needs {max_objects} non-negative weights (counts 1 to {max_objects}) with a "
            f"positive sum, got {text!r}"
        )
    return weights


def shapes_init_run(
    from_: str | None = typer.Option(
        None,
        "--from",
        help="A shipped model name (shapes, shapes-gligen) or an exported model folder (default: shapes).",
    ),
    arch: str | None = typer.Option(
        None,
        help="Instead of --from: a new run with fresh weights of this architecture (sdxl: SDXL's two text "
        "encoders, pooled embedding, size ids and block structure, scaled down; docs/models/shapes-sdxl.md; mmdit: "
        "SD3's transformer and three text encoders, rectified flow; docs/dit.md).",
    ),
    out: Path = typer.Option(..., help="New run folder; then continue with `layoutguide shapes train --out OUT ...`."),
    autoencoder_from: Path | None = typer.Option(
        None,
        help="With --arch: reuse the trained autoencoder (and latent scaling) of this run folder or exported model "
        "instead of training one (its widths must match: the sdxl and mmdit runs share theirs).",
    ),
) -> None:
    """Start a training run from an exported model (the committed weights are resumable checkpoints)."""
    import tempfile

    from .loading import OVERLAY_FILE, resolve_model, write_model_folder
    from .shapes.train import init_run_from_export

    if arch is not None:
        _init_fresh_run(arch, from_, out, autoencoder_from)
        return
    if autoencoder_from is not None:
        fail("--autoencoder-from goes with --arch (a new run); a run --from an export keeps that export's autoencoder")
    source = resolve_model(from_ or "shapes")
    if isinstance(source, Path) and (source / OVERLAY_FILE).is_file():  # stored as layers: assemble it first
        with tempfile.TemporaryDirectory() as tmp:
            init_run_from_export(write_model_folder(source, Path(tmp) / "model"), out)
        typer.echo(f"wrote {out / 'ckpt'}")
        return
    folder = Path(source)
    if not (folder / "training.json").exists():
        fail(
            f"--from: {folder} is not an exported shapes model (no training.json); give a folder written by "
            f"`layoutguide shapes export`"
        )
    try:
        init_run_from_export(folder, out)
    except FileExistsError as e:
        fail(str(e))
    typer.echo(f"wrote {out / 'ckpt'}")


def _init_fresh_run(arch: str, from_: str | None, out: Path, autoencoder_from: Path | None) -> None:
    from .shapes.mmdit_train import init_mmdit_run
    from .shapes.sdxl_train import init_sdxl_run

    if from_ is not None:
        fail("give --from (go on from an exported model) or --arch (start fresh), not both")
    if arch == "sd":
        fail(f"--arch sd: a new run of the SD architecture needs no init-run: layoutguide shapes train --out {out}")
    if arch not in ("sdxl", "mmdit"):
        fail(f"--arch must be 'sdxl' or 'mmdit' (or give --from), got {arch!r}")
    try:
        (init_sdxl_run if arch == "sdxl" else init_mmdit_run)(out, autoencoder_from=autoencoder_from)
    except (FileExistsError, InputError) as e:
        fail(str(e))
    typer.echo(f"wrote {out / 'ckpt'}; train it with `layoutguide shapes train --out {out}`")


def shapes_competence(
    n: int = typer.Option(200, help="Held-out prompts per kind (single-object, two-object)."),
    seed: int = typer.Option(0),
    model: str | None = typer.Option(None, help=MODEL_HELP),
    out: Path | None = typer.Option(None, help="Also write images and competence.json here."),
    steps: int | None = typer.Option(None, help="Denoising steps (default: the model's)."),
    guidance_scale: float | None = typer.Option(None, help="CFG scale (default: the model's)."),
    guidance_interval: str | None = guidance_interval_option(),
    device: str = typer.Option("auto"),
) -> None:
    """Unguided competence on held-out prompts: right colour and shape (1 object), both colours (2 objects)."""
    from .bench import run_competence

    if n < 1:
        fail("--n must be at least 1")
    if out is not None and out.exists() and not out.is_dir():
        fail(f"--out: {out} is a file; give a folder")
    check_numbers(num_inference_steps=("--steps", steps), guidance_scale=("--guidance-scale", guidance_scale))
    pipe = load_checked(model, device, "auto", guidance_interval)
    results = run_competence(pipe, n=n, seed=seed, out=out, steps=steps, guidance_scale=guidance_scale, report=note)
    typer.echo(json.dumps(results, indent=1))


def shapes_export(
    run: Path = typer.Option(Path("runs/shapes"), help="Training run folder."),
    out: Path = typer.Option(..., help="Folder to write the diffusers pipeline to."),
    gligen: bool = typer.Option(False, help="Export the GLIGEN (gated) variant trained by --gligen-steps."),
) -> None:
    """Write a run's EMA weights as a diffusers folder (safetensors) loadable with LayoutPipeline.from_pretrained."""
    from .shapes.train import export

    export(run, out, gligen=gligen)
    typer.echo(f"wrote {out}")
