"""What guidance costs, from its parts: one plain CFG step and one guidance iteration, timed inside real pipeline
calls, composed with each method's iteration schedule into a predicted time ratio to plain sampling.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/cost_parts.py --model sd15 --size 512 --threads 1 --repeats 3
    python benchmarks/cost_parts.py --model shipped --steps 30 --timed-steps 3 --iterations 2 --repeats 3

A full 50-step SD-1.5 run at 512 px is too slow for a CPU, so each configuration (a method spec with an optional
``@budget`` from ``overhead.BUDGETS``) runs the library's own ``LayoutPipeline.__call__`` for ``--timed-steps`` steps
only: the callback stops the call after them, and the guided steps run at most ``--iterations`` updates. Inside the
call, ``layoutguide.pipeline.guide_step`` is wrapped with a clock (the real function runs: time per update = its
time / the updates it made) and a forward pre-hook on the UNet marks the start of each step's CFG forward (time of a
step = from there to the step's callback: the UNet at batch 2, the CFG combination and the scheduler step). Every
configuration runs in one process, interleaved (A B A B), ``--warmup`` rounds first.

The schedule is each method's own plan (``method.plan`` under ``GuidanceBudget.limit``) with the defaults this model
gets (``pipe.method_with_defaults``: the backbone family's step sizes for a folder without ``layoutguide.json``) at
``--steps`` steps, summed without early stop: the most updates the method may run (an upper bound where its loss can
stop it early). Predicted ratio = (N x t_step + updates x t_update) / (N x t_step), t_step the plain CFG step's time.
The ratio t_update / t_step is taken per call (an update against the CFG step right after it) or, with
``--stop-at-cfg`` (guided calls end there: half the time), against the plain call of the same round; ``--estimate
min`` composes with the fastest update over the fastest CFG step instead (load on a shared machine only slows).
``--full-runs`` also times a whole call per configuration and round and compares (the check, on a model where whole
runs are cheap); ``--tables-from`` prints the tables again from a run's ``--json``. docs/results/cost.md has the runs.

On GLIGEN's gated UNet (``--gated``) a CFG step costs more inside the fusers' window (scheduled sampling) than after
it. A label's ``@s10+15`` times steps 10 and 15 only (the others are skipped: no UNet, no guidance), and
``cost_windows.py`` composes every configuration over its schedule on its base's CFG steps (``gligen``'s for
``gligen+refocus``), against each ``--references`` configuration; ``--plan-only`` configurations take the parts of
the same method timed without their t/it budget keys and count their own plan:

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/cost_parts.py --model sd15 --gated --size 512 --threads 1 \
      --repeats 3 --warmup 0 --methods none,gligen@s10+15,gligen+refocus@s10+15,reground,reground+refocus \
      --plan-only gligen+refocus@t700 --references none,gligen
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

import layoutguide.pipeline as pipeline_module
from layoutguide.guidance import GuidanceBudget
from layoutguide.layout import atomic_write_text

try:
    from cost_windows import parse_timed, schedule_tables, timed_for, timed_steps, untimed
    from overhead import cost_call, load, parse_config, split_configs
except ImportError:  # imported as benchmarks.cost_parts
    from benchmarks.cost_windows import parse_timed, schedule_tables, timed_for, timed_steps, untimed
    from benchmarks.overhead import cost_call, load, parse_config, split_configs

DEFAULT_METHODS = "none,refocus,refocus@full,layout-guidance,boxdiff,attend-excite,zestguide,zestguide@full"
GRADIENT_METHODS = ("refocus", "layout-guidance", "boxdiff", "attend-excite", "zestguide")
MIN_TIMESTEPS = (0, 500, 600, 700, 800, 900)
MAX_ITERATIONS = (None, 3, 2, 1)


class StopCall(Exception):
    """Raised from the callback once the timed steps have run."""


class PartClock:
    """Times the parts of a pipeline call, per step of ``steps``: its guide_step (with its update count) and its CFG
    forward. Other steps are skipped: neither guidance nor the UNet runs there (the UNet predicts zero noise), so a
    step inside or after a method's window (GLIGEN's scheduled sampling) is timed without paying for the steps
    before it; the method and the budget still see the real step index and timestep. The call ends after the last
    timed step."""

    def __init__(self, pipe: Any, steps: list[int], stop_at_cfg: bool = False) -> None:
        self.pipe, self.steps, self.stop_at_cfg = pipe, steps, stop_at_cfg
        self.guide_seconds: dict[int, float] = {}
        self.updates: dict[int, int] = {}
        self.step_seconds: dict[int, float] = {}
        self._unet_start = 0.0
        self._current = 0  # the step the loop is in (the callback moves it on)

    def __enter__(self) -> PartClock:
        real = pipeline_module.guide_step

        def timed_guide_step(pipe: Any, latents: Any, t: Any, i: int, *args: Any, **kwargs: Any) -> Any:
            if i not in self.steps:
                return latents, {}
            t0 = time.perf_counter()
            latents, log = real(pipe, latents, t, i, *args, **kwargs)
            self.guide_seconds[i] = time.perf_counter() - t0
            self.updates[i] = len(log["losses"])
            return latents, log

        self._real = real
        pipeline_module.guide_step = timed_guide_step  # type: ignore[assignment]
        self._hook = self.pipe.unet.register_forward_pre_hook(self._mark)
        unet = self.pipe.unet
        self._own_forward = unet.__dict__.get("forward")  # an instance-level forward to put back, if any
        forward = unet.forward

        def skipping_forward(sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if self._current not in self.steps:
                return UNet2DConditionOutput(sample=torch.zeros_like(sample))
            return forward(sample, *args, **kwargs)

        unet.forward = skipping_forward
        return self

    def _mark(self, module: Any, inputs: Any) -> None:
        if self.stop_at_cfg and self.guide_seconds and not torch.is_grad_enabled():  # the first CFG forward after
            raise StopCall  # a guided step: its time is the plain step's (same processors outside the recording)
        self._unet_start = time.perf_counter()  # the last UNet call of a step is its CFG forward

    def callback(self, info: dict[str, Any]) -> None:
        step = info["step"]
        if step in self.steps:
            self.step_seconds[step] = time.perf_counter() - self._unet_start
        self._current = step + 1
        if step >= max(self.steps):
            raise StopCall

    def __exit__(self, *exc: object) -> None:
        pipeline_module.guide_step = self._real  # type: ignore[assignment]
        self._hook.remove()
        if self._own_forward is None:
            del self.pipe.unet.forward
        else:
            self.pipe.unet.forward = self._own_forward


def timed_call(pipe: Any, label: str, layouts: list, args: argparse.Namespace) -> dict[str, float]:
    """One call of ``label`` timing its steps (``--timed-steps`` from step 0, or the label's ``@s...``): seconds per
    CFG step and per update, overall and per timed step (``step@I``, ``update@I``: NaN where a step made no update),
    and RSS growth."""
    from layoutguide.bench.memory import PeakMemory, _rss

    method, budget, steps = parse_timed(label, args.timed_steps)
    budget = dataclasses.replace(budget, max_iterations=min(budget.max_iterations or args.iterations, args.iterations))
    stop_at_cfg = args.stop_at_cfg and method is not None
    with PeakMemory(torch.device("cpu")) as peak, PartClock(pipe, steps, stop_at_cfg) as clock:
        start = _rss()
        try:
            cost_call(pipe, method, budget, layouts, args, callback=clock.callback)
        except StopCall:
            pass
    updates = sum(clock.updates.values())
    nan = float("nan")
    row = {
        "step": statistics.fmean(clock.step_seconds.values()) if clock.step_seconds else nan,
        "update": sum(clock.guide_seconds.values()) / updates if updates else nan,
        "updates": updates,
        "growth_mb": peak.peak_bytes / 2**20,
        "peak_mb": (start + peak.peak_bytes) / 2**20,
    }
    for i in steps:
        row[f"step@{i}"] = clock.step_seconds.get(i, nan)
        row[f"update@{i}"] = clock.guide_seconds[i] / clock.updates[i] if clock.updates.get(i) else nan
    return row


def full_call(pipe: Any, label: str, layouts: list, args: argparse.Namespace) -> dict[str, float]:
    """One whole call of ``label`` (every step, the method's own updates with early stop): seconds and updates."""
    method, budget = parse_config(untimed(label))
    t0 = time.perf_counter()
    out = cost_call(pipe, method, budget, layouts, args)
    return {
        "full_seconds": time.perf_counter() - t0,
        "full_updates": sum(len(g.get("losses", [])) for g in out.guidance),
    }


def schedule(pipe: Any, spec: str, steps: int, budget: GuidanceBudget, layouts: list, hw: int) -> list[int]:
    """Updates per step that ``spec``'s plan asks for on this pipeline at ``steps`` steps within ``budget``, without
    early stop (the pipeline's own ``method.plan`` and ``budget.limit``, on a context built as the call builds it)."""
    from layoutguide.methods.context import GuidanceContext

    method = pipe.method_with_defaults(spec)
    pipe.scheduler.set_timesteps(steps)
    timesteps = pipe.scheduler.timesteps
    ctx = GuidanceContext(
        layouts=layouts,
        token_maps=[pipe.token_map(layout.prompt, layout.phrases) for layout in layouts],
        num_steps=len(timesteps),
        latent_hw=(hw, hw),
        device=torch.device("cpu"),
        alphas_cumprod=pipe.scheduler.alphas_cumprod,
        timesteps=timesteps,
    )
    with method.activate(pipe, ctx) as state:
        plans = [budget.limit(method.plan(state, i), t) for i, t in enumerate(timesteps)]
    return [plan.iterations if plan is not None else 0 for plan in plans]


def summarise(calls: dict[str, list[dict[str, float]]], estimate: str = "median") -> dict[str, dict[str, float]]:
    """Per configuration: the median of each timed quantity, and the median (and range) over rounds of the ratio to
    plain sampling: an update against the CFG step right after it in the same call (timed without --stop-at-cfg),
    else against the plain call of the same round; a whole call against the plain whole call of its round. The load
    of a shared machine moves within minutes, so the nearer the two timings, the better the ratio. ``estimate="min"``:
    compose with the ratio of the fastest timings instead (``ratio_min``)."""
    plain_rounds = calls["none"]
    parts = {}
    for label, rows in calls.items():
        row = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        for key, base_key, name in (("update", "step", "ratio"), ("full_seconds", "full_seconds", "full_ratio")):
            if key in rows[0]:
                ratios = [
                    r[key] / (r[base_key] if key == "update" and r[base_key] == r[base_key] else base[base_key])
                    for r, base in zip(rows, plain_rounds, strict=True)
                ]  # an update against the CFG step of its own call where that was timed, else plain's of its round
                row |= {name: statistics.median(ratios), f"{name}_lo": min(ratios), f"{name}_hi": max(ratios)}
        parts[label] = row
    # the load-free estimate: the fastest update against the fastest CFG step of any call (every CFG step runs the
    # same plain forward; load on a shared machine only ever slows a timing down)
    fastest_step = min(r["step"] for rows in calls.values() for r in rows if r["step"] == r["step"])
    for label, rows in calls.items():
        updates = [r["update"] for r in rows if r["update"] == r["update"]]
        parts[label]["ratio_min"] = min(updates) / fastest_step if updates else float("nan")
        parts[label]["fastest_step"] = fastest_step
    for row in parts.values():
        if "ratio" in row:
            row["ratio_median"] = row["ratio"]
            row["ratio"] = row["ratio_min"] if estimate == "min" else row["ratio_median"]
    return parts


def compose(parts: dict[str, dict[str, float]], n: int, updates: int, label: str) -> float:
    """Predicted time ratio to plain sampling of ``label`` at ``n`` steps with ``updates`` guidance updates:
    (n t_step + updates t_update) / (n t_step), with t_update / t_step measured round by round."""
    # every step's CFG forward is the plain one: a gradient method's CFG forward runs the model's own attention
    # processors (attention.CaptureProcessor records only in the guidance forward); the per-configuration step
    # column of the parts table checks it where it is timed (without --stop-at-cfg)
    return 1 + updates * parts[label]["ratio"] / n


def budgets_table(pipe: Any, parts: dict[str, dict[str, float]], layouts: list, args: argparse.Namespace) -> str:
    """Per method: updates and predicted ratio at the defaults, and the least cutting budgets that reach <= 1.5x."""
    lines = [
        f"| method | options on this model | guided steps / {args.steps} | updates (no early stop) | predicted "
        "ratio | <= 1.5x with min_timestep | <= 1.5x with max_iterations | <= 1.5x with both |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in (m for m in GRADIENT_METHODS if m in parts):
        plan = schedule(pipe, name, args.steps, GuidanceBudget(), layouts, args.latent)
        ratio = compose(parts, args.steps, sum(plan), name)
        options = pipe.method_with_defaults(name).options.model_dump()
        shown = {k: options[k] for k in ("loss_scale", "eta", "scale_factor", "max_iterations") if k in options}
        found = {}
        for kind, grid in (
            ("t", [GuidanceBudget(min_timestep=t) for t in MIN_TIMESTEPS]),
            ("it", [GuidanceBudget(max_iterations=i) for i in MAX_ITERATIONS]),
            ("both", [GuidanceBudget(min_timestep=t, max_iterations=i) for i in (2, 1) for t in MIN_TIMESTEPS]),
        ):
            found[kind] = "not reached" if ratio > 1.5 else "not needed"
            for budget in grid if ratio > 1.5 else []:
                updates = sum(schedule(pipe, name, args.steps, budget, layouts, args.latent))
                predicted = compose(parts, args.steps, updates, name)
                if predicted <= 1.5:
                    found[kind] = (
                        f"t>={budget.min_timestep}" * (kind != "it")
                        + "/" * (kind == "both")
                        + f"it{budget.max_iterations}" * (kind != "t")
                        + f": {updates} updates, {predicted:.2f}x"
                    )
                    break
        lines.append(
            f"| {name} | {json.dumps(shown)[1:-1]} | {sum(u > 0 for u in plan)} | {sum(plan)} | {ratio:.2f}x | "
            f"{found['t']} | {found['it']} | {found['both']} |"
        )
    return "\n".join(lines) + "\n"


def cut_table(calls: dict[str, list[dict[str, float]]]) -> str:
    """Per ``X`` timed beside ``X@full``: the update with the forward cut over the update without, round by round (the
    two calls are neighbours in every round), and the RSS growth of each."""
    lines = [
        "| method | update with the cut / without, per round: median [range] | RSS growth with / without (MB) |",
        "|---|---|---|",
    ]
    for label in calls:
        full = f"{label}@full"
        if full not in calls:
            continue
        ratios = [a["update"] / b["update"] for a, b in zip(calls[label], calls[full], strict=True)]
        growth = [statistics.median(r["growth_mb"] for r in calls[x]) for x in (label, full)]
        lines.append(
            f"| {label} | {statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}] | "
            f"{growth[0]:.0f} / {growth[1]:.0f} |"
        )
    return "\n".join(lines) + "\n"


def check_table(pipe: Any, parts: dict[str, dict[str, float]], layouts: list, args: argparse.Namespace) -> str:
    """Predicted ratios (from the parts) against the measured ratio of whole calls, per configuration."""
    step = parts["none"]["step"]
    fixed = parts["none"]["full_seconds"] - args.steps * step  # per call: text encoding, set-up (no decoding)
    lines = [
        f"Whole calls ({args.steps} steps) in the same rounds: measured time ratio to plain sampling against the "
        f"ratio composed from the parts above. A plain whole call took {parts['none']['full_seconds']:.2f} s, "
        f"{args.steps} plain steps {args.steps * step:.2f} s: {fixed:.2f} s per call is neither (text encoding, "
        "set-up). 'Own step and fixed cost': (N x the configuration's own CFG step + updates x its update + fixed) / "
        "(N x plain step + fixed), from the medians in seconds.",
        "",
        "| configuration | updates planned (no early stop) | predicted from plan | updates run (early stop) | "
        "predicted from updates run | own step and fixed cost | measured whole call [range] | "
        "predicted / measured | own step and fixed cost / measured |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, row in parts.items():
        if label == "none":
            continue
        spec, budget = parse_config(untimed(label))
        planned = sum(schedule(pipe, str(spec), args.steps, budget, layouts, args.latent))
        from_plan = compose(parts, args.steps, planned, label)
        from_run = compose(parts, args.steps, int(row["full_updates"]), label)
        own = row["step"] if row["step"] == row["step"] else step  # this configuration's own CFG step, if timed
        with_fixed = (args.steps * own + row["full_updates"] * row["update"] + fixed) / (args.steps * step + fixed)
        measured = row["full_ratio"]
        lines.append(
            f"| {label} | {planned} | {from_plan:.2f}x | {row['full_updates']:.0f} | {from_run:.2f}x | "
            f"{with_fixed:.2f}x | {measured:.2f}x [{row['full_ratio_lo']:.2f}-{row['full_ratio_hi']:.2f}] | "
            f"{from_run / measured:.2f} | {with_fixed / measured:.2f} |"
        )
    return "\n".join(lines) + "\n"


def parts_table(parts: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    base = parts["none"]
    memory = "peak_mb" in base
    lines = [
        f"Model: {args.model}, {args.size or 'native'} px, fp32, cpu, {args.threads or torch.get_num_threads()} torch "
        f"thread(s); CFG {args.guidance_scale}; {args.timed_steps} timed step(s) of {args.steps} (a label's @s: "
        "its steps; s per CFG step: their mean), at most "
        f"{args.iterations} update(s) per guided step; median of {args.repeats} interleaved rounds; torch "
        f"{torch.__version__}. Update vs plain step: the median of the per-round ratios [their range]; composed "
        f"below with the {'fastest timings' if args.estimate == 'min' else 'median'}.",
        "",
        "| configuration | s per CFG step | s per guidance update | update vs plain step | fastest update vs fastest "
        "step | RSS growth (MB) | growth vs plain |" + (" peak RSS (MB) | peak vs plain |" if memory else ""),
        "|---|---|---|---|---|---|---|" + ("---|---|" if memory else ""),
    ]
    for label, row in parts.items():
        step = row["step"]
        cells = [label, f"{step:.2f}" if step == step else "not timed (plain's)"]
        if "ratio" in row and row["ratio"] == row["ratio"]:  # not NaN: this configuration guided
            cells += [
                f"{row['update']:.2f}",
                f"{row['ratio_median']:.2f}x [{row['ratio_lo']:.2f}-{row['ratio_hi']:.2f}]",
                f"{row['ratio_min']:.2f}x",
            ]
        else:
            cells += ["-", "-", "-"]
        cells += [f"{row['growth_mb']:.0f}", f"{row['growth_mb'] / base['growth_mb']:.2f}x"]
        if memory:
            cells += [f"{row['peak_mb']:.0f}", f"{row['peak_mb'] / base['peak_mb']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def timed_layouts(objects: int) -> list:
    """The one layout every call is timed on: a shapes-suite scene with ``objects`` boxes (suite seed 5)."""
    from layoutguide.bench import shapes_suite

    return [s.layout() for s in shapes_suite(1, seed=5, n_objects=(objects, objects))]


def measure(
    pipe: Any, configs: list[str], layouts: list, args: argparse.Namespace, calls: dict[str, list[dict[str, float]]]
) -> None:
    """Every configuration once per round, ``--warmup`` rounds first (not kept), each timed call into ``calls``."""
    if not args.warmup:  # one untimed plain step at least, so the first configuration is not timed cold
        timed_call(pipe, "none@s0", layouts, args)
    for round_ in range(1 - args.warmup, args.repeats + 1):  # rounds below 1 warm up
        for label in configs:
            row = timed_call(pipe, label, layouts, args)
            if args.full_runs:
                row |= full_call(pipe, label, layouts, args)
            print(f"round {round_} {label}: {json.dumps({k: round(v, 3) for k, v in row.items()})}", flush=True)
            if round_ >= 1:
                calls[label].append(row)
        if args.json and round_ >= 1:  # after every round: a run stopped early keeps its finished rounds
            atomic_write_text(
                args.json, json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "calls": calls})
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sd15", help="'sd15' (random weights, built in code), 'tiny', 'shipped'")
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (default: the model's)")
    parser.add_argument("--steps", type=int, default=50, help="steps of the schedule (SD-1.5's default: 50)")
    parser.add_argument("--timed-steps", type=int, default=1, help="steps each timed call runs")
    parser.add_argument("--iterations", type=int, default=1, help="at most this many updates per timed guided step")
    parser.add_argument(
        "--stop-at-cfg",
        action="store_true",
        help="guided configurations stop at the CFG forward after their first guided step (its time is taken as "
        "the plain step's: the CFG forward of a gradient method runs the model's own attention processors)",
    )
    parser.add_argument(
        "--full-runs", action="store_true", help="also time one whole call per configuration and round (the check)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="warm-up rounds (not measured)")
    parser.add_argument("--guidance-scale", type=float, default=7.5)
    parser.add_argument("--methods", default=DEFAULT_METHODS, help="configurations; 'none' (plain) is required")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--guidance-interval",
        default=None,
        help="CFG only at timesteps LOW,HIGH, or 'all' (a model folder's default otherwise; the timed steps must run "
        "the same batch as the rest: 'all' for the shipped model, whose default skips CFG above t=850)",
    )
    parser.add_argument("--out", type=Path, help="write the tables (markdown) here")
    parser.add_argument("--json", type=Path, help="write every timed call here")
    parser.add_argument(
        "--estimate",
        choices=["median", "min"],
        default="median",
        help="update vs plain step composed as the median of per-round ratios, or as the fastest update over the "
        "fastest CFG step of any call (load only slows timings down)",
    )
    parser.add_argument("--tables-from", type=Path, help="no timing: the tables from this --json of an earlier run")
    parser.add_argument("--objects", type=int, default=2, help="boxes in the timed layout (a shapes-suite scene)")
    parser.add_argument("--gated", action="store_true", help="tiny/sd15: with GLIGEN's gated layers (fusers)")
    parser.add_argument(
        "--references",
        default="none",
        help="configurations the schedule-composed times are given against (benchmarks/cost_windows.py), e.g. "
        "'none,gligen' on the gated UNet",
    )
    parser.add_argument(
        "--plan-only",
        default="",
        help="configurations composed, not timed: the parts of the same method timed without its t/it budget keys "
        "(they choose which updates run, not what one costs), counted with their own plan",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = split_configs(args.methods)
    if "none" not in configs:
        raise SystemExit("--methods: 'none' (plain sampling) is the reference and must be listed")
    plan_only = split_configs(args.plan_only)
    references = split_configs(args.references)
    for label in configs + plan_only:
        parse_timed(label)  # a typo fails before anything runs
    for label in plan_only:
        timed_for(label, configs)

    args.device, args.dtype = "cpu", "fp32"  # for overhead.load
    if args.tables_from and args.model == "sd15" and not args.gated:  # the schedule needs the configs only
        from layoutguide.testing import sd15_random_pipeline, sd_scheduler

        with torch.device("meta"):
            pipe = sd15_random_pipeline()
        pipe.scheduler = sd_scheduler()  # its timesteps and alphas as numbers, not on meta
    else:
        pipe = load(args)
    args.latent = (args.size or pipe.unet.config.sample_size * pipe.vae_scale_factor) // pipe.vae_scale_factor
    layouts = timed_layouts(args.objects)
    calls: dict[str, list[dict[str, float]]] = {label: [] for label in configs}
    if args.tables_from:  # the tables again from a run's --json (the same arguments otherwise)
        found = json.loads(args.tables_from.read_text())["calls"]
        rounds = min(len(found[label]) for label in configs)  # a run stopped early: its finished rounds
        calls = {label: found[label][:rounds] for label in configs}
        args.repeats = rounds
    else:
        measure(pipe, configs, layouts, args, calls)
    parts = summarise(calls, args.estimate)
    text = parts_table(parts, args)
    if any(label in GRADIENT_METHODS for label in parts):  # the budget search is for the plain gradient methods
        text += "\n" + budgets_table(pipe, parts, layouts, args)
    if any(label.endswith("@full") for label in calls):
        text += "\n" + cut_table(calls)
    if "full_ratio" in parts["none"]:
        text += "\n" + check_table(pipe, parts, layouts, args)
    if timed_steps(calls["none"][0]):  # runs from before per-step timings have none
        text += "\n" + schedule_tables(
            calls,
            configs,
            plan_only,
            references,
            lambda method, budget: schedule(pipe, method or "none", args.steps, budget, layouts, args.latent),
            lambda member: pipe.method_with_defaults(member).kind,
            args.steps,
        )
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
