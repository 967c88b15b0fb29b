"""Cost of each method against plain sampling: wall time, peak memory and (shapes model) accuracy, side by side.

    python benchmarks/overhead.py --model shipped --steps 30 --repeats 3           # the shipped shapes model
    python benchmarks/overhead.py --model sd15 --steps 3 --repeats 1 --size 512     # SD-1.5 architecture, random
    python benchmarks/overhead.py --model sd15 --device cuda --dtype fp16 --steps 20 # the same on a GPU
    python benchmarks/overhead.py --model sdxl --device cuda --dtype fp16 --size 1024 --steps 30 --guidance-scale 5
    python benchmarks/overhead.py --model shipped --accuracy 200 --methods refocus,refocus@t700

Every configuration runs in one process, interleaved: ``--warmup`` rounds over all of them, then ``repeats`` rounds,
each calling every configuration once; the median per configuration is reported, as a ratio to the first
configuration (``none``: plain sampling). A configuration is a method spec (``refocus``, ``refocus[sar=false]``,
``gligen+refocus``) with an optional budget after ``@`` (``refocus@full``, ``refocus@t700/it1``), one of
:data:`BUDGETS`: ``full`` is the guidance forward as it was before the exact savings (the whole UNet), no suffix
the default (exact savings on).

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` (weights included; ``growth`` is above the call's start).
On CPU, the resident set sampled every 20 ms (``layoutguide.bench.memory.PeakMemory``, after ``malloc_trim``): the
process's whole footprint (weights, allocator caches, Python), so ratios of the total understate a method's own
growth; ``growth`` is the peak above the call's start. ``--accuracy N`` also runs the shapes box benchmark (``bench
shapes``, suite seed ``--accuracy-seed`` (default 0), N layouts) per configuration and reports object-in-box (shapes
models only): one ``bench shapes`` folder per configuration under ``--accuracy-out``, resumed if it exists;
``--phrase-form`` writes the suite's phrases in another form (``article``: "a red circle"; its own folders).
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from layoutguide.guidance import GuidanceBudget
from layoutguide.layout import atomic_write_text

BUDGETS: dict[str, dict[str, Any]] = {
    "full": {"cut_forward": False},  # before: every guidance forward runs the whole UNet
    "t700": {"min_timestep": 700},  # guided steps only while objects still move (docs/results/decision-time.md)
    "t800": {"min_timestep": 800},
    "t850": {"min_timestep": 850},
    "t900": {"min_timestep": 900},
    "it1": {"max_iterations": 1},
    "it2": {"max_iterations": 2},
    "it3": {"max_iterations": 3},
    "it4": {"max_iterations": 4},
    "ckpt": {"checkpointing": True},
    "bf16": {"autocast": "bf16"},
    "fp16": {"autocast": "fp16"},
    "prob": {"sdpa_outside_windows": False},  # before: windowed modulators keep the probabilities path when idle
}
DEFAULT_METHODS = (
    "none,refocus@full,refocus,boxdiff@full,boxdiff,layout-guidance@full,layout-guidance,attend-excite@full,"
    "attend-excite,zestguide@full,zestguide,pww,densediffusion"
)


def cost_call(pipe: Any, method: Any, budget: Any, layouts: list, args: argparse.Namespace, **extra: Any) -> Any:
    """One pipeline call as the cost benchmarks time it (``args``: steps, guidance scale, size): seed 0, latents
    out (no decoding), no progress bar; ``extra`` goes to the pipeline (a step callback)."""
    return pipe(
        layout=layouts,
        method=method,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        height=args.size,
        width=args.size,
        seed=0,
        output_type="latent",
        progress=False,
        guidance_budget=budget,
        **extra,
    )


def split_configs(text: str) -> list[str]:
    """Comma-separated configurations; commas inside a spec's brackets stay in the spec."""
    return [part.strip() for part in re.split(r",(?![^\[]*\])", text) if part.strip()]


def parse_config(label: str) -> tuple[str | None, GuidanceBudget]:
    spec, _, budget = label.partition("@")
    fields: dict[str, Any] = {}
    for key in filter(None, budget.split("/")):
        if key not in BUDGETS:
            raise SystemExit(f"--methods: unknown budget {key!r} in {label!r}; known: {', '.join(BUDGETS)}")
        fields.update(BUDGETS[key])
    return (None if spec == "none" else spec), GuidanceBudget(**fields)


class Budgeted:
    """A pipeline whose calls carry one guidance budget (for the benchmark runner, which does not pass one)."""

    def __init__(self, pipe: Any, budget: GuidanceBudget) -> None:
        self.pipe, self.budget = pipe, budget

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.pipe(*args, guidance_budget=self.budget, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)


def load(args: argparse.Namespace) -> Any:
    from layoutguide.loading import load_pipeline
    from layoutguide.testing import sd15_random_pipeline, tiny_pipeline

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    if args.model == "sdxl":  # built where it runs: on CUDA the random initialisation takes seconds, not minutes
        from layoutguide.backbones.sdxl import LayoutXLPipeline
        from layoutguide.testing import sdxl_base_components

        return LayoutXLPipeline(**sdxl_base_components(dtype=dtype, device=args.device))
    if args.model == "tiny":
        pipe = tiny_pipeline(gated=args.gated)
    elif args.model == "sd15":
        pipe = sd15_random_pipeline(gated=args.gated, dtype=dtype)
    else:
        name = None if args.model == "shipped" else args.model
        return load_pipeline(name, device=args.device, guidance_interval=args.guidance_interval)
    return pipe.to(args.device)


def measure(pipe: Any, configs: list[str], layouts: list, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    from layoutguide.bench.memory import PeakMemory, _rss

    device = torch.device(args.device)
    results: dict[str, dict[str, Any]] = {
        c: {"seconds": [], "growth": [], "total": [], "iterations": 0} for c in configs
    }
    if not args.warmup:  # one short plain call at least, so the first configuration is not timed cold
        pipe(
            layout=layouts,
            num_inference_steps=1,
            height=args.size,
            width=args.size,
            output_type="latent",
            progress=False,
        )
    for round_ in range(1 - args.warmup, args.repeats + 1):  # rounds below 1 warm up
        for label in configs:
            method, budget = parse_config(label)
            with PeakMemory(device) as peak:
                start = torch.cuda.memory_allocated(device) if device.type == "cuda" else _rss()
                t0 = time.perf_counter()
                out = cost_call(pipe, method, budget, layouts, args)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds = time.perf_counter() - t0
            if round_ < 1:
                continue
            row = results[label]
            row["seconds"].append(seconds)
            row["growth"].append(peak.peak_bytes)
            row["total"].append(start + peak.peak_bytes)
            row["iterations"] = sum(len(g.get("losses", [])) for g in out.guidance)
            print(f"round {round_} {label}: {seconds:.3f} s, +{peak.peak_bytes / 2**20:.0f} MB", flush=True)
    return results


def checked_phrase_form(form: str) -> str:
    """``form`` if the box benchmark knows it, else one line naming the option and the forms it takes."""
    from layoutguide.bench import check_phrase_forms
    from layoutguide.errors import InputError

    try:
        (checked,) = check_phrase_forms([form])
    except InputError as e:
        raise SystemExit(f"--phrase-form: {str(e).removeprefix('phrase_forms: ')}") from None
    return checked


def accuracy(
    pipe: Any, configs: list[str], n: int, out: Path, seed: int = 0, batch: int = 8, phrase_form: str = "bare"
) -> dict[str, float]:
    """Object-in-box of each configuration on the box benchmark, its phrases written in ``phrase_form`` (the prompt
    and boxes unchanged): one ``bench shapes`` folder per configuration (and form, unless bare) under ``out``."""
    from layoutguide.bench.shapes_bench import run_shapes_bench
    from layoutguide.spec import MethodSpec

    scores = {}
    for label in configs:
        method, budget = parse_config(label)
        name = label if phrase_form == "bare" else f"{label}_{phrase_form}"  # bare keeps the folders runs have
        result = run_shapes_bench(
            Budgeted(pipe, budget),
            [MethodSpec.parse(method or "none")],
            n=n,
            seed=seed,
            out=out / re.sub(r"[^A-Za-z0-9_.+-]+", "_", name),
            batch_size=batch,
            phrase_forms=(phrase_form,),
            progress=False,
        )
        (aggregate,) = result["aggregates"].values() if "aggregates" in result else result["methods"].values()
        scores[label] = aggregate["object_in_box"]
        print(f"accuracy {label}: object-in-box {scores[label]:.3f} (n={n}, phrase form {phrase_form})", flush=True)
    return scores


def table(results: dict[str, dict[str, Any]], scores: dict[str, float], args: argparse.Namespace) -> str:
    base = next(iter(results.values()))
    base_s, base_total, base_growth = (statistics.median(base[k]) for k in ("seconds", "total", "growth"))
    memory = "CUDA max_memory_allocated" if args.device.startswith("cuda") else "CPU resident set (sampled, 20 ms)"
    lines = [
        f"Model: {args.model}{' (gated)' if args.gated else ''}, {args.size or 'native'} px, {args.dtype}, "
        f"{args.device}; {args.steps} steps, batch {args.batch}, CFG {args.guidance_scale}; median of "
        f"{args.repeats} interleaved rounds; torch {torch.__version__}, {torch.get_num_threads()} threads. "
        f"Memory: {memory}."
        + (
            f" Object-in-box: shapes box benchmark, suite seed {args.accuracy_seed}, n={args.accuracy}, phrase form "
            f"{args.phrase_form}."
            if scores
            else ""
        ),
        "",
        "| configuration | s per call | time vs none | peak total (MB) | memory vs none | growth (MB) | growth vs "
        "none | guidance iterations |" + (" object-in-box |" if scores else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if scores else ""),
    ]
    for label, row in results.items():
        s, total, growth = (statistics.median(row[k]) for k in ("seconds", "total", "growth"))
        cells = [
            label,
            f"{s:.3f}",
            f"{s / base_s:.2f}x",
            f"{total / 2**20:.0f}",
            f"{total / base_total:.2f}x",
            f"{growth / 2**20:.0f}",
            f"{growth / max(base_growth, 1):.2f}x",
            str(row["iterations"]),
        ]
        if scores:
            cells.append(f"{scores[label]:.3f}" if label in scores else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        default="tiny",
        help="'tiny', 'sd15', 'sdxl' (SDXL base's architecture; random weights, built in code), 'shipped', or a "
        "model folder/name",
    )
    parser.add_argument("--gated", action="store_true", help="tiny/sd15: with GLIGEN's gated layers")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"], help="tiny/sd15/sdxl weights")
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (default: the model's)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="warm-up rounds (not measured)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--guidance-scale", type=float, default=3.0)
    parser.add_argument("--methods", default=DEFAULT_METHODS, help="configurations, the first the reference")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--accuracy", type=int, default=0, help="also run the shapes box benchmark on N layouts")
    parser.add_argument("--accuracy-out", type=Path, default=Path("bench-out/cost"))
    parser.add_argument("--accuracy-seed", type=int, default=0, help="suite seed of the box benchmark")
    parser.add_argument(
        "--accuracy-batch",
        type=int,
        default=8,
        help="prompts per call in the box benchmark (bench shapes' default 8; the batch can flip an image's score by "
        "float rounding, so a paired comparison uses its reference's batch)",
    )
    parser.add_argument(
        "--phrase-form",
        default="bare",
        help="--accuracy: the box benchmark's phrases as 'bare' (red circle), 'article' (a red circle), 'determiner' "
        "(the red circle) or 'caps' (A Red Circle,); prompt and boxes unchanged",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--guidance-interval", default=None, help="CFG only at timesteps LOW,HIGH, or 'all'; default: the model's"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from layoutguide.bench import shapes_suite

    configs = split_configs(args.methods)
    for label in configs:
        parse_config(label)  # a typo fails before anything runs
    checked_phrase_form(args.phrase_form)
    pipe = load(args)
    layouts = [s.layout() for s in shapes_suite(args.batch, seed=5, n_objects=(2, 2))]
    results = measure(pipe, configs, layouts, args) if args.repeats else {}
    scores: dict[str, float] = {}
    if args.accuracy:
        scores = accuracy(
            pipe,
            configs,
            args.accuracy,
            args.accuracy_out,
            args.accuracy_seed,
            args.accuracy_batch,
            args.phrase_form,
        )
    if results:
        text = table(results, scores, args)
    else:  # --repeats 0: accuracy only
        text = (
            f"Model: {args.model}; shapes box benchmark, seed {args.accuracy_seed}, n={args.accuracy}, phrase form "
            f"{args.phrase_form}.\n\n"
        )
        text += "| configuration | object-in-box |\n|---|---|\n"
        text += "".join(f"| {label} | {score:.3f} |\n" for label, score in scores.items())
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
