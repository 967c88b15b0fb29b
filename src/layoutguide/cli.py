"""Command line: ``layoutguide generate | demo | plan | segment | methods | bench | shapes``. Thin wrappers over
the library."""

from __future__ import annotations

import io
import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from .cli_checks import (
    MODEL_HELP,
    ClearErrorGroup,
    check_folder_path,
    check_image_path,
    check_numbers,
    check_preset_flag,
    fail,
    guidance_interval_option,
    load_checked,
    note,
    preset_option,
    safe_name,
    save_image,
)

# Heavy modules (torch, diffusers, the pipeline) are imported inside the commands that use them: `layoutguide --help`
# and argument errors answer in a fraction of the seconds the imports take (docs/reliability.md has the timing).
app = typer.Typer(
    cls=ClearErrorGroup, add_completion=False, no_args_is_help=True, help="Layout-grounded text-to-image generation."
)
shapes_app = typer.Typer(no_args_is_help=True, help="The shapes world: train, export and inspect its model.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks with exact metrics.")
app.add_typer(shapes_app, name="shapes")
app.add_typer(bench_app, name="bench")


def _method_names(methods: str, *, allow_all: bool = False) -> list[str]:
    """``--methods`` split on the commas outside brackets (:func:`layoutguide.spec.split_methods`), every ``+`` member
    checked against the registry (``none`` is registered); variants are checked by :func:`_method_specs`."""
    from .methods import REGISTRY
    from .spec import MethodOptionError, split_methods

    try:
        names = split_methods(methods)
    except MethodOptionError as e:
        fail(f"--methods: {e}")
    for name in names:
        if allow_all and name == "all":
            continue
        for member in name.partition("[")[0].split("+"):
            if member.strip() not in REGISTRY:
                fail(
                    f"--methods: unknown method {member.strip()!r}; registered: {', '.join(sorted(REGISTRY))}"
                    + (" (or 'all')" if allow_all else "")
                )
    return names


def _command_line() -> str | None:
    """This invocation as a shell command a reader can paste (``refocus[tokens=last]`` quoted), for reports."""
    return "layoutguide " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("layoutguide") else None


def _method_specs(
    names: list[str], options: dict[str, dict[str, Any]] | None = None, preset: str | None = None
) -> list:
    """One checked :class:`~layoutguide.spec.MethodSpec` per ``--methods`` entry, with ``--preset`` where its
    brackets name none; a bad variant, option or preset is a clear error."""
    from .methods import parse_spec
    from .spec import MethodOptionError

    try:
        return [parse_spec(name, options).with_preset(preset) for name in names]
    except MethodOptionError as e:
        fail(f"--methods: {e}")


def parse_sets(values: list[str] | None) -> dict[str, dict[str, Any]]:
    """``--set refocus.loss_scale=2 --set refocus.sar=false`` -> ``{"refocus": {"loss_scale": 2, "sar": False}}``."""
    from .spec import MethodOptionError
    from .spec import parse_sets as parse

    try:
        return parse(values)
    except MethodOptionError as e:
        fail(f"--set: {e}")


def _image_size(pipe, layout, height: int | None, width: int | None) -> tuple[int, int]:
    """--height/--width, else the layout canvas's aspect at the model's native pixel count."""
    from .inputs import default_image_size

    native = pipe.native_size
    default_h, default_w = default_image_size(layout, native, pipe.vae_scale_factor)
    return height or default_h, width or default_w


@app.command()
def generate(
    prompt: str | None = typer.Option(None, help="Text prompt (optional when --layout has one)."),
    layout: Path | None = typer.Option(None, help="Layout JSON (see layoutguide.layout)."),
    method: str = typer.Option(
        "refocus", help="Layout method (see 'layoutguide methods'); 'none' for plain sampling."
    ),
    model: str | None = typer.Option(None, help=MODEL_HELP),
    out: Path = typer.Option(Path("out.png"), help="Output image; with -n > 1, files OUT_0.png, OUT_1.png ..."),
    height: int | None = typer.Option(None, help="Image height in px (default: the layout's aspect, model's size)."),
    width: int | None = typer.Option(None, help="Image width in px (default: the layout's aspect, model's size)."),
    seed: int = typer.Option(0, help="Base seed; image j uses a seed derived from (seed, j)."),
    steps: int | None = typer.Option(None, help="Denoising steps (default: the model's, else 50)."),
    guidance_scale: float | None = typer.Option(
        None, help="Classifier-free guidance (default: the model's, else 7.5; 5.0 on SDXL)."
    ),
    guidance_interval: str | None = guidance_interval_option(),
    n: int = typer.Option(1, "-n", help="Images to generate."),
    negative_prompt: str | None = typer.Option(None, help="Negative prompt."),
    set_: list[str] | None = typer.Option(None, "--set", help="Method option, METHOD.OPTION=VALUE (repeatable)."),
    preset: str | None = preset_option(),
    save_attention: Path | None = typer.Option(None, help="Write per-region attention heatmaps to this folder."),
    overlay: bool = typer.Option(False, help="Also write OUT with the layout drawn on it (suffix _overlay)."),
    append_missing: bool = typer.Option(
        False, help="Append region phrases missing from the prompt instead of failing."
    ),
    plan_with: str | None = typer.Option(
        None, "--plan", help="Plan the layout from --prompt first: rule, openai or transformers."
    ),
    base_url: str | None = typer.Option(
        None, help="--plan openai: server URL (default $OPENAI_BASE_URL or https://api.openai.com/v1)."
    ),
    llm_model: str | None = typer.Option(None, help="--plan openai: model name; transformers: hub id or folder."),
    timeout: float | None = typer.Option(
        None, help="--plan openai: deadline in seconds for each request to the server, however slow (default 60)."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, mps."),
    dtype: str = typer.Option("auto", help="auto (fp16 on CUDA, fp32 elsewhere), fp32, fp16, bf16."),
) -> None:
    """Generate an image whose objects follow a layout (given, or planned from the prompt with --plan)."""
    from .layout import Layout
    from .tokens import map_phrases
    from .viz import draw_layout, region_heatmaps

    check_image_path(out)
    check_preset_flag(preset)
    if save_attention is not None:
        check_folder_path(save_attention, "--save-attention")
    check_numbers(
        num_inference_steps=("--steps", steps),
        guidance_scale=("--guidance-scale", guidance_scale),
        num_images_per_prompt=("-n", n),
        height=("--height", height),
        width=("--width", width),
    )
    lay = Layout.from_json(layout) if layout else None
    if lay is None and prompt is None:
        fail("give --prompt, --layout, or both")
    if plan_with is None and (base_url, llm_model, timeout) != (None, None, None):
        fail("--base-url, --llm-model and --timeout configure the planner: use them with --plan")
    if plan_with is not None:
        if lay is not None or prompt is None:
            fail("--plan plans a layout from --prompt: give --prompt and no --layout")
        else:
            from .planner import PlannerError, get_planner

            try:
                planner = get_planner(plan_with, base_url=base_url, llm_model=llm_model, timeout=timeout)
                planned = planner.plan(prompt)
            except PlannerError as e:
                fail(str(e))
            for note in planned.notes:
                typer.echo(f"note: {note}", err=True)
            lay = planned.layout
    options = parse_sets(set_)
    name = method.partition("[")[0].strip()
    unknown = set(options) - set(name.split("+"))
    if unknown:
        fail(f"--set names method(s) {sorted(unknown)} but --method is {method!r}")
    pipe = load_checked(model, device, dtype, guidance_interval)
    height, width = _image_size(pipe, lay, height, width)
    result = pipe(
        prompt=prompt,
        layout=lay,
        method=None if method == "none" else method,
        method_options=options if "+" in name else options.get(name),
        preset=preset,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        negative_prompt=negative_prompt,
        num_images_per_prompt=n,
        seed=seed,
        height=height,
        width=width,
        return_attention=save_attention is not None,
        append_missing_phrases=append_missing,
    )
    paths = [out] if n == 1 else [out.with_name(f"{out.stem}_{j}{out.suffix}") for j in range(n)]
    used = result.layouts[0]
    for j, (path, image) in enumerate(zip(paths, result.images)):
        save_image(image, path)
        typer.echo(f"wrote {path}")
        if overlay and used.regions:
            over = path.with_name(f"{path.stem}_overlay{path.suffix}")
            save_image(draw_layout(image, used), over)
            typer.echo(f"wrote {over}")
        if save_attention is not None and used.regions:
            tokens = map_phrases(
                pipe.tokenizer, used.prompt, used.phrases, on_missing="append" if append_missing else "error"
            )
            mean_maps = sum(a[j] for a in result.attention) / len(result.attention)  # (h, w, 77), mean over steps
            for r, tile in enumerate(region_heatmaps(image, used, mean_maps.numpy(), tokens.indices)):
                # the region index keeps names unique; safe_name keeps '/' and '..' from leaving the folder
                save_image(tile, save_attention / f"{path.stem}_region{r}_{safe_name(used.regions[r].phrase)}.png")
            typer.echo(f"wrote {len(used.regions)} heatmaps to {save_attention}")


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), help="Output folder."),
    n: int = typer.Option(24, help="Layouts in the benchmark part."),
    methods: str = typer.Option(
        "none,refocus,layout-guidance,zestguide",
        help="Comma-separated methods: one row of examples each, and the report's rows.",
    ),
    model: str | None = typer.Option(None, help=MODEL_HELP),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps."),
) -> None:
    """The main job on the shipped model: guided images with their layouts drawn, and a benchmark report."""
    from .bench import results_table, run_shapes_bench, shapes_suite
    from .viz import draw_layout, grid

    labels = _method_names(methods)
    specs = _method_specs(labels)
    pipe = load_checked(model, device, "auto")
    examples = [s.layout() for s in shapes_suite(6, seed=99)]
    tiles, captions = [], []
    for label, spec in zip(labels, specs):
        result = pipe(
            layout=examples,
            method=spec.method,
            method_options=spec.options,
            preset=spec.preset,
            seed=0,
            progress=False,
        )
        for k, (image, layout) in enumerate(zip(result.images, examples)):
            path = out / "examples" / f"{k}_{label}.png"
            save_image(image, path)
            tiles.append(draw_layout(image, layout))
            captions.append(f"{label}: {layout.prompt}")
    save_image(grid(tiles, columns=len(examples), captions=captions), out / "examples.png")
    typer.echo(f"wrote {out / 'examples.png'} (one row per method: {', '.join(labels)}; boxes = the layout)")
    results = run_shapes_bench(
        pipe,
        specs,
        n=n,
        out=out / "bench",
        command=f"layoutguide bench shapes --methods {','.join(labels)} --n {n} --out {out / 'bench'}",
    )
    typer.echo(results_table(results))
    typer.echo(f"wrote {out / 'bench' / 'report.md'}")


@app.command()
def plan(
    prompt: str = typer.Argument(..., help="Text prompt, e.g. 'a cat to the left of a dog'."),
    planner: str = typer.Option(
        "rule", help="rule (offline), openai (OpenAI-compatible server) or transformers (local LM)."
    ),
    base_url: str | None = typer.Option(
        None, help="openai: server URL (default $OPENAI_BASE_URL or https://api.openai.com/v1)."
    ),
    llm_model: str | None = typer.Option(None, help="openai: model name; transformers: hub id or folder."),
    examples: Path | None = typer.Option(None, help="JSON file of in-context examples (see docs/planner.md)."),
    timeout: float | None = typer.Option(
        None, help="openai: deadline in seconds for each request to the server, however slow (default 60)."
    ),
    out: Path | None = typer.Option(None, help="Also write the layout JSON to this file."),
) -> None:
    """Plan a layout for a prompt; print it as layout JSON (notes go to stderr)."""
    from .layout import LayoutError
    from .planner import PlannerError, get_planner

    try:
        chosen = get_planner(planner, base_url=base_url, llm_model=llm_model, examples_path=examples, timeout=timeout)
        result = chosen.plan(prompt)
        text = result.layout.to_json(out)
    except (PlannerError, LayoutError, OSError) as e:
        fail(str(e))
    for message in result.notes:
        note(message)
    typer.echo(text)


@app.command()
def segment(
    prompt: str | None = typer.Option(None, help="Text prompt."),
    phrases: str | None = typer.Option(None, help="Comma-separated phrases of the prompt to segment."),
    layout: Path | None = typer.Option(None, help="Layout JSON (instead of --prompt/--phrases)."),
    method: str = typer.Option("none", help="Layout method to generate with (default: none)."),
    model: str | None = typer.Option(None, help=MODEL_HELP),
    out: Path = typer.Option(Path("out/segment"), help="Output folder: image, heatmaps, label map."),
    seed: int = typer.Option(0),
    steps: int | None = typer.Option(None),
    height: int | None = typer.Option(None, help="Image height in px (default: the layout's aspect, model's size)."),
    width: int | None = typer.Option(None, help="Image width in px (default: the layout's aspect, model's size)."),
    device: str = typer.Option("auto"),
) -> None:
    """Show where each phrase lands: per-phrase attention maps and a label map (ZestGuide's segmentation)."""
    import numpy as np
    from PIL import Image

    from .layout import Layout, atomic_write_bytes
    from .segment import attention_segmentation
    from .viz import PALETTE, grid, heatmap

    check_folder_path(out, "--out")
    check_numbers(num_inference_steps=("--steps", steps), height=("--height", height), width=("--width", width))
    lay = Layout.from_json(layout) if layout else None
    phrase_list = [p.strip() for p in phrases.split(",")] if phrases else None
    pipe = load_checked(model, device, "auto")
    height, width = _image_size(pipe, lay, height, width)
    seg = attention_segmentation(
        pipe,
        prompt,
        phrase_list,
        layout=lay,
        method=None if method == "none" else method,
        seed=seed,
        num_inference_steps=steps,
        height=height,
        width=width,
        progress=True,
    )
    save_image(seg.image, out / "image.png")
    size = (256, 256)
    tiles = [seg.image.resize(size, Image.Resampling.NEAREST)] + [heatmap(m, size, seg.image) for m in seg.maps]
    colours = np.array(
        [(255, 255, 255)] + [PALETTE[i % len(PALETTE)] for i in range(len(seg.phrases))], dtype=np.uint8
    )
    tiles.append(Image.fromarray(colours[seg.labels + 1]).resize(size, Image.Resampling.NEAREST))
    save_image(
        grid(tiles, columns=len(tiles), captions=["image"] + seg.phrases + ["labels"]), out / "segmentation.png"
    )
    buffer = io.BytesIO()
    np.save(buffer, seg.maps)
    atomic_write_bytes(out / "maps.npy", buffer.getvalue())
    typer.echo(
        f"wrote {out / 'segmentation.png'} and maps.npy ({len(seg.phrases)} phrases, steps "
        f"{seg.steps[0]}-{seg.steps[1]})"
    )


@app.command("methods")
def list_methods(
    method: str | None = typer.Option(None, help="Only this method (or, with --model, a '+' combination)."),
    model: str | None = typer.Option(
        None, help="Show the values that will run on this model (" + MODEL_HELP[:-1] + ") and where each comes from."
    ),
    preset: str | None = preset_option(),
    set_: list[str] | None = typer.Option(None, "--set", help="Method option, METHOD.OPTION=VALUE (repeatable)."),
    device: str = typer.Option("cpu", help="Where to load --model (cpu is enough to read its configuration)."),
) -> None:
    """List the registered layout methods: maps, defaults, backbone-family defaults and each preset's values; with
    --model, the values that will run there and their sources."""
    from .method_listing import model_listing, registry_listing
    from .methods import REGISTRY

    check_preset_flag(preset)
    options = parse_sets(set_)
    members = method.split("+") if method else []
    unknown = [m for m in members if m not in REGISTRY]
    if unknown:
        fail(f"--method: unknown method {unknown[0]!r}; registered: {', '.join(sorted(REGISTRY))}")
    if len(members) > 1 and model is None:
        fail("--method: a combination is shown with --model (the values that run depend on the model)")
    if set(options) - set(members or REGISTRY):
        fail(f"--set names method(s) {sorted(set(options) - set(members or REGISTRY))} not in --method {method!r}")
    if model is None:
        if preset is not None or options:
            fail("--preset and --set pick the values shown for a model: give --model too")
        typer.echo(registry_listing(method))
        return
    pipe = load_checked(model, device, "auto")
    for name in [method] if method else sorted(n for n in REGISTRY if n != "none"):
        typer.echo(f"== {name} on {model}")
        typer.echo(model_listing(pipe, name, preset, options))


def phrase_form_option():
    return typer.Option(
        "bare",
        help="How region phrases are written: bare ('red circle'), article ('a red circle'), determiner ('the red "
        "circle'), caps ('A Red Circle,'); a comma list runs each form as its own rows on the same seeds.",
    )


def _bench_checks(n: int, batch_size: int, phrase_form: str, max_objects: int | None = None) -> tuple[str, ...]:
    """The bench options checked before any model loads; returns the phrase forms to run."""
    from .bench import check_phrase_forms
    from .bench.suites import MAX_OBJECTS
    from .errors import LayoutguideError

    if n < 1:
        fail("--n must be at least 1")
    if batch_size < 1:
        fail(f"--batch-size must be at least 1, got {batch_size}")
    if max_objects is not None and not 1 <= max_objects <= MAX_OBJECTS:
        fail(f"--max-objects must be from 1 to {MAX_OBJECTS}, got {max_objects}")
    try:
        return check_phrase_forms(phrase_form.split(","))
    except LayoutguideError as e:
        fail(f"--phrase-form: {str(e).removeprefix('phrase_forms: ')}")
    raise AssertionError  # unreachable: fail() exits


@bench_app.command("shapes")
def bench_shapes(
    methods: str = typer.Option(
        "none,refocus",
        help="Comma-separated methods ('none' = unguided), or 'all': every method that runs on the model.",
    ),
    n: int = typer.Option(200, help="Number of layouts in the suite."),
    seed: int = typer.Option(0, help="Suite seed (also seeds the initial noise)."),
    out: Path = typer.Option(Path("bench-out/shapes"), help="Output folder (resumes if it has images)."),
    model: str | None = typer.Option(None, help=MODEL_HELP),
    steps: int | None = typer.Option(None, help="Denoising steps (default: the model's)."),
    guidance_scale: float | None = typer.Option(None, help="CFG scale (default: the model's)."),
    guidance_interval: str | None = guidance_interval_option(),
    batch_size: int = typer.Option(8, help="Prompts per pipeline call."),
    masks: bool = typer.Option(False, help="Give the methods exact masks instead of boxes."),
    max_objects: int = typer.Option(4, help="Objects per layout: 1 to this (ZestGuide's Eval-few: 3)."),
    phrase_form: str = phrase_form_option(),
    set_: list[str] | None = typer.Option(None, "--set", help="Method option, METHOD.OPTION=VALUE (repeatable)."),
    preset: str | None = preset_option(),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps."),
    dtype: str = typer.Option("auto", help="auto, fp32, fp16, bf16."),
) -> None:
    """Run methods on the shapes-world suite; write report.md, results.json and grid.png."""
    from .bench import results_table, run_shapes_bench
    from .methods import runnable_methods

    check_preset_flag(preset)
    options = parse_sets(set_)
    names = _method_names(methods, allow_all=True)
    forms = _bench_checks(n, batch_size, phrase_form, max_objects)
    if out.exists() and not out.is_dir():
        fail(f"--out: {out} is a file; give a folder")
    pipe = load_checked(model, device, dtype, guidance_interval)
    if "all" in names:  # every method that runs on this model, in the registry's order
        names = runnable_methods(pipe.denoiser)
    specs = _method_specs(names, options, preset)
    command = _command_line()
    results = run_shapes_bench(
        pipe,
        specs,
        n=n,
        seed=seed,
        out=out,
        steps=steps,
        guidance_scale=guidance_scale,
        batch_size=batch_size,
        use_masks=masks,
        max_objects=max_objects,
        phrase_forms=forms,
        command=command,
        report=note,
    )
    typer.echo(results_table(results))
    typer.echo(f"wrote {out / 'report.md'}, {out / 'results.json'}, {out / 'grid.png'}")


@bench_app.command("relations")
def bench_relations(
    planners: str = typer.Option(
        "rule", help="Comma-separated planners (rule; openai/transformers need a server or model)."
    ),
    methods: str = typer.Option("none,refocus", help="Comma-separated methods."),
    n: int = typer.Option(100, help="Number of relation prompts."),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("bench-out/relations")),
    model: str | None = typer.Option(None, help=MODEL_HELP),
    set_: list[str] | None = typer.Option(None, "--set", help="Method option, METHOD.OPTION=VALUE (repeatable)."),
    preset: str | None = preset_option(),
    guidance_interval: str | None = guidance_interval_option(),
    batch_size: int = typer.Option(8, help="Prompts per pipeline call."),
    phrase_form: str = phrase_form_option(),
    device: str = typer.Option("auto"),
) -> None:
    """Relation prompts -> planner -> generation -> exact evaluation: relation and count accuracy per planner and
    method."""
    from .bench import run_relation_bench

    check_preset_flag(preset)
    options = parse_sets(set_)
    specs = _method_specs(_method_names(methods), options, preset)
    forms = _bench_checks(n, batch_size, phrase_form)
    planner_names = [p.strip() for p in planners.split(",") if p.strip()]
    if not planner_names:
        fail("--planners: name at least one planner, e.g. rule")
    if out.exists() and not out.is_dir():
        fail(f"--out: {out} is a file; give a folder")
    pipe = load_checked(model, device, "auto", guidance_interval)
    command = _command_line()
    results = run_relation_bench(
        pipe,
        planner_names,
        specs,
        n=n,
        seed=seed,
        out=out,
        batch_size=batch_size,
        phrase_forms=forms,
        command=command,
        report=note,
    )
    typer.echo(results["table"])
    typer.echo(f"wrote {out / 'report.md'}")


@app.command()
def ui(
    model: str | None = typer.Option(None, help="Diffusers folder or hub id; default: the shipped shapes model."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; 127.0.0.1 keeps the page on this machine."),
    port: int | None = typer.Option(None, help="Port (default: Gradio's, 7860, or the next free one)."),
    share: bool = typer.Option(False, help="Also open a public Gradio share link (off unless asked)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, mps."),
) -> None:
    """Start the web UI: draw or plan a layout, generate, compare methods, look inside (needs the 'web' extra)."""
    try:
        from .ui.app import serve  # gradio is optional: pip install "layoutguide[web]"
    except ImportError as e:
        fail(f"the web UI needs the 'web' extra ({e.name} is missing): pip install 'layoutguide[web]'")

    serve(model, host=host, port=port, share=share, device=device)


from .cli_shapes import register as _register_shapes_commands  # noqa: E402
from .cli_suite import register as _register_suite_commands  # noqa: E402

_register_shapes_commands(shapes_app)
_register_suite_commands(bench_app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
