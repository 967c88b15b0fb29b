"""Composing timed parts over a schedule whose steps cost different amounts: GLIGEN's fusers run only inside its
scheduled-sampling window (the first ``beta`` of the steps), ReGround's at every step. Used by ``cost_parts.py``.

A configuration label may end its budget with the steps its call times: ``s`` and steps or ranges joined by ``+``
(``gligen@s14-15``, ``gligen+refocus@t700/s10+15``); the other steps are skipped (``cost_parts.PartClock``). Each
of the N steps of the schedule is costed by the timed step that stands for it: the latest timed step at or before
it (the first timed step for the steps before that). Time a step inside a window and the first step after it, and
both sides are weighted by the schedule.

A configuration is costed on its *base*: the configuration of its non-gradient members (``gligen`` for
``gligen+refocus``, ``none`` for ``refocus``), whose CFG steps it runs unchanged (a gradient method's capture
processors record only in the guidance forward). Per round, in seconds of that round's timed calls,

    T(C) = sum over steps i of  step_B(k(i)) x (1 + updates_i x update_C(k'(i)) / step_C(k'(i)))

with step_B the base's CFG step (the fastest of the round's calls that ran it: the base's, and those of the
configurations costed on it), and update_C / step_C an update against the CFG step of the same call (the nearest
timings on a loaded machine; against the base's step of the round where the call did not time its own). So the
ratio of ``gligen+refocus`` to ``gligen`` holds only ratios within calls, and the ratio of either to ``none`` the
fusers' own cost (step_gligen / step_none, across calls). ``fastest``: the same with the fastest timing of each kind
over all rounds (load only slows a timing down).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from typing import Any

from layoutguide.guidance import GuidanceBudget

try:
    from overhead import parse_config
except ImportError:  # imported as benchmarks.cost_windows
    from benchmarks.overhead import parse_config

TIMED_STEPS = re.compile(r"^s\d+(?:-\d+)?(?:\+\d+(?:-\d+)?)*$")
PLAN_ONLY_BUDGETS = ("min_timestep", "max_iterations")  # budget fields that change which updates run, not their cost


def parse_timed(label: str, default_steps: int = 1) -> tuple[str | None, GuidanceBudget, list[int]]:
    """``label``'s method, budget and timed steps, ascending (``s10+14-15`` among its budget keys: 10, 14 and 15;
    default: steps 0 to ``default_steps - 1``)."""
    spec, _, keys = label.partition("@")
    steps = list(range(default_steps))
    kept = []
    for key in filter(None, keys.split("/")):
        if not TIMED_STEPS.match(key):
            kept.append(key)
            continue
        steps = []
        for item in key[1:].split("+"):
            first, _, last = item.partition("-")
            if last and int(last) < int(first):
                raise SystemExit(f"--methods: timed steps {item!r} in {label!r} end before they start")
            steps += range(int(first), int(last or first) + 1)
        steps = sorted(set(steps))
    method, budget = parse_config(spec + ("@" + "/".join(kept) if kept else ""))
    return method, budget, steps


def untimed(label: str) -> str:
    """``label`` without its timed steps (``s...``)."""
    spec, _, keys = label.partition("@")
    kept = [key for key in filter(None, keys.split("/")) if not TIMED_STEPS.match(key)]
    return spec + ("@" + "/".join(kept) if kept else "")


def timed_for(label: str, timed: list[str]) -> str:
    """The timed configuration whose parts ``label`` is composed from: itself if timed, else the timed one with its
    method and without the budget keys that only choose which updates run (``t700``, ``it3``); ``label``'s own plan
    still counts the updates."""
    if label in timed:
        return label
    method, budget, _ = parse_timed(label)
    plain = GuidanceBudget(**{k: v for k, v in vars(budget).items() if k not in PLAN_ONLY_BUDGETS})
    for other in timed:
        other_method, other_budget, _ = parse_timed(other)
        if other_method == method and other_budget == plain:
            return other
    raise SystemExit(f"--plan-only: {label!r} needs {method or 'none'} with its other budget keys timed in --methods")


def base_of(label: str, timed: list[str], kind: Any) -> str:
    """The timed configuration of ``label``'s non-gradient members (``kind(member)`` names a member's kind), with no
    budget: ``none`` when every member is a gradient method."""
    spec = parse_timed(label)[0] or "none"
    members = [m for m in spec.split("+") if m != "none" and kind(m.split("[")[0]) != "gradient"]  # options kept:
    # ``gligen[beta=1]`` runs other CFG steps than ``gligen``
    base = "+".join(members) or "none"
    for other in timed:
        other_method, other_budget, _ = parse_timed(other)
        if (other_method or "none") == base and other_budget == GuidanceBudget():
            return other
    raise SystemExit(f"--methods: {label!r} is costed on {base!r}'s CFG steps: time {base!r} (no budget) too")


def standing_for(i: int, steps: list[int]) -> int:
    """The timed step that costs step ``i``: the latest at or before it, else the first."""
    before = [k for k in steps if k <= i]
    return max(before) if before else min(steps)


def timed_steps(row: dict[str, float], key: str = "step") -> dict[int, float]:
    """``{step: seconds}`` of one timed call's ``step@I`` (or ``update@I``) entries that were timed (not NaN)."""
    out = {}
    for name, value in row.items():
        prefix, _, index = name.partition("@")
        if prefix == key and index.isdigit() and value == value:
            out[int(index)] = value
    return out


def seconds(step: dict[int, float], update: dict[int, float], base: dict[int, float], plan: list[int]) -> float:
    """T(C) of the module docstring for one round: ``step`` and ``update`` the configuration's own timed seconds per
    step (its own CFG step may be missing: the base's is used), ``base`` the base's CFG steps, ``plan`` the updates
    per step of the schedule."""
    total = 0.0
    for i, updates in enumerate(plan):
        cfg = base[standing_for(i, list(base))]
        total += cfg
        if updates:
            if not update:
                raise SystemExit("a configuration with updates in its plan made none in its timed steps")
            k = standing_for(i, list(update))
            own = step.get(k, base[standing_for(k, list(base))])
            total += cfg * updates * update[k] / own
    return total


def fastest_steps(rows: list[dict[str, float]], steps: list[int]) -> dict[int, float]:
    """Per step of ``steps``: the fastest CFG step timed there in ``rows`` (calls that ran the same work)."""
    out = {}
    for row in rows:
        for k, value in timed_steps(row).items():
            if k in steps:
                out[k] = min(value, out.get(k, value))
    return out


def compose_rounds(
    calls: dict[str, list[dict[str, float]]], source: str, base: str, group: list[str], plan: list[int]
) -> tuple[list[float], float]:
    """T(C) per round, from ``source``'s parts, on the CFG steps of ``base``, and with the fastest timings. A base's
    step in a round is the fastest of that round's calls in ``group`` (the base and the configurations costed on
    it: the same CFG forward) that timed it; load only slows a call down."""
    base_steps = sorted(timed_steps(calls[base][0]))
    per_round = []
    for r, own in enumerate(calls[source]):
        steps = fastest_steps([calls[g][r] for g in group], base_steps)
        per_round.append(seconds(timed_steps(own), timed_steps(own, "update"), steps, plan))
    fastest_step = fastest_steps([row for g in group for row in calls[g]], base_steps)
    fastest_update: dict[int, float] = {}
    for row in calls[source]:
        for k, value in timed_steps(row, "update").items():
            fastest_update[k] = min(value, fastest_update.get(k, value))
    own_steps = fastest_steps([row for g in group for row in calls[g]], sorted(set(fastest_update) | set(base_steps)))
    fastest = seconds(own_steps, fastest_update, fastest_step, plan)  # update / own step x base step = update
    return per_round, fastest


def windows_table(
    calls: dict[str, list[dict[str, float]]],
    plans: dict[str, list[int]],
    sources: dict[str, str],
    bases: dict[str, str],
    references: list[str],
) -> str:
    """Per configuration: its plan, and its predicted time against each reference (median over rounds of the
    per-round ratio [range], and with the fastest timings), and its median peak RSS against each reference's."""
    groups: dict[str, list[str]] = {}  # per base: it and the timed configurations costed on its CFG steps
    for label in plans:
        group = groups.setdefault(bases[label], [bases[label]])
        if sources[label] not in group:
            group.append(sources[label])
    composed = {
        label: compose_rounds(calls, sources[label], bases[label], groups[bases[label]], plans[label])
        for label in plans
    }
    header = "| configuration | timed as (CFG steps of) | guided steps / updates |"
    for ref in references:
        header += f" time vs {ref}: median [range] | fastest | peak RSS vs {ref} |"
    lines = [header, "|---|---|---|" + "---|---|---|" * len(references)]
    for label, (per_round, fastest) in composed.items():
        plan = plans[label]
        source = sources[label]
        shown = source if source == label else f"{source}'s parts"
        cells = [label, f"{shown} ({bases[label]})", f"{sum(u > 0 for u in plan)} / {sum(plan)}"]
        peak = statistics.median(r["peak_mb"] for r in calls[source])
        for ref in references:
            ref_rounds, ref_fastest = composed[ref]
            ratios = [a / b for a, b in zip(per_round, ref_rounds, strict=True)]
            ref_peak = statistics.median(r["peak_mb"] for r in calls[sources[ref]])
            cells += [
                f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]",
                f"{fastest / ref_fastest:.2f}x",
                f"{peak / ref_peak:.2f}x",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def steps_table(calls: dict[str, list[dict[str, float]]], bases: dict[str, str]) -> str:
    """Per timed configuration and timed step: the median CFG step and update in seconds, the step against its
    base's same step (across calls) and the update against the step of its own call (median over rounds)."""
    lines = [
        "| configuration | timed step | s per CFG step | vs base's step (across calls) | s per update | update vs "
        "its own CFG step |",
        "|---|---|---|---|---|---|",
    ]
    for label, rows in calls.items():
        base = bases.get(label, label)
        for k in sorted(timed_steps(rows[0]) | timed_steps(rows[0], "update")):
            steps = [r.get(f"step@{k}", float("nan")) for r in rows]
            updates = [r.get(f"update@{k}", float("nan")) for r in rows]
            base_steps = [r[f"step@{standing_for(k, list(timed_steps(r)))}"] for r in calls[base]]
            vs_base = [a / b for a, b in zip(steps, base_steps, strict=True) if a == a and b == b]
            vs_own = [u / s for u, s in zip(updates, steps, strict=True) if u == u and s == s]

            def shown(values: list[float], suffix: str = "") -> str:
                real = [v for v in values if v == v]
                return f"{statistics.median(real):.2f}{suffix}" if real else "-"

            lines.append(
                f"| {label} | {k} | {shown(steps)} | {shown(vs_base, 'x') if base != label else '-'} | "
                f"{shown(updates)} | {shown(vs_own, 'x')} |"
            )
    return "\n".join(lines) + "\n"


def schedule_tables(
    calls: dict[str, list[dict[str, float]]],
    configs: list[str],
    plan_only: list[str],
    references: list[str],
    plan_of: Callable[[str | None, GuidanceBudget], list[int]],
    kind: Callable[[str], str],
    steps: int,
) -> str:
    """The per-step parts and every configuration's time composed over its schedule: ``plan_of(method, budget)``
    the updates per step a configuration's plan asks for, ``kind(member)`` a method's kind."""
    labels = configs + plan_only
    sources = {label: timed_for(label, configs) for label in labels}
    bases = {label: base_of(label, configs, kind) for label in labels}
    plans = {label: plan_of(*parse_timed(label)[:2]) for label in labels}
    refs = [timed_for(ref, configs) for ref in references]
    return (
        f"The timed steps, per configuration (median over {len(calls[configs[0]])} rounds):\n\n"
        + steps_table(calls, bases)
        + f"\nComposed over {steps} steps (each step costed by the latest timed step at or before it), with the "
        "plan's updates without early stop:\n\n" + windows_table(calls, plans, sources, bases, refs)
    )
