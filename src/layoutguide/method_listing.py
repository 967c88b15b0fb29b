"""What ``layoutguide methods`` prints: every registered method with its maps, defaults, backbone-family defaults and
presets; with a model, the values that will run on it and the layer each comes from (:mod:`layoutguide.presets`)."""

from __future__ import annotations

from typing import Any

from .defaults import FAMILY_DEFAULTS, FAMILY_NAMES, backbone_family
from .presets import PRESET_TABLE, layered_options, layered_sampling, missing_options

PAD = " " * 13
PRECEDENCE = (
    "precedence, lowest first: method default < family default (only without layoutguide.json) < model "
    "(layoutguide.json) < preset < explicit (--set, method_options) < the spec's brackets; explicit always wins"
)


def _values(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in options.items())


def method_lines(name: str) -> list[str]:
    """One method's block: summary, maps, defaults, family defaults and every preset's values."""
    from .methods import REGISTRY

    cls = REGISTRY[name]
    method = cls()
    maps = ", ".join(f"{r.kind}@{r.describe()}[{','.join(r.places)}]" for r in method.requests()) or "none"
    lines = [f"{name:12s} {cls.summary}", f"{PAD}maps: {maps}"]
    defaults = method.options.model_dump()
    if defaults:
        lines.append(f"{PAD}options: {_values(defaults)}")
    for family in FAMILY_NAMES:
        found = FAMILY_DEFAULTS.get(family, {}).get(name)
        if found:
            lines.append(f"{PAD}family {family}: {_values({k: v for k, (v, _) in found.items()})}")
    for preset, table in PRESET_TABLE.items():
        entry = table.get(name)
        if entry is None:
            continue
        lines.append(f"{PAD}preset {preset} ({entry.source}):")
        lines.append(f"{PAD}  options: {_values(entry.options)}")
        for family, options in entry.per_family.items():
            lines.append(f"{PAD}  on {family}: {_values(options)}")
        for member, options in entry.with_gligen.items():
            lines.append(f"{PAD}  with gligen, {member}: {_values(options)}")
        if entry.sampling:
            lines.append(f"{PAD}  sampling: {_values(entry.sampling)}")
        pending = missing_options(preset, name)
        if pending:
            lines.append(f"{PAD}  not in this build yet (skipped): {', '.join(pending)}")
        lines += [f"{PAD}  note: {note}" for note in entry.notes]
    return lines


def registry_listing(only: str | None = None) -> str:
    """Every registered method's block (or ``only``'s), then the precedence rule."""
    from .methods import REGISTRY

    names = [only] if only else sorted(REGISTRY)
    lines = [line for name in names for line in method_lines(name)]
    return "\n".join(lines + ["", PRECEDENCE])


def model_listing(
    pipe: Any, method: str, preset: str | None = None, explicit: dict[str, dict[str, Any]] | None = None
) -> str:
    """The options and sampling settings that will run for ``method`` on ``pipe`` with ``preset`` and ``explicit``
    options (per member), each with the layer it came from."""
    family = backbone_family(pipe.denoiser)
    has_file = bool(pipe.model_defaults)
    members = method.split("+")
    per_member = explicit or {}
    options = layered_options(
        pipe.model_defaults,
        family,
        method,
        preset,
        per_member if len(members) > 1 else per_member.get(members[0], {}),
    )
    lines = [
        f"backbone family: {family} ({FAMILY_NAMES[family]}); "
        + ("the model's layoutguide.json replaces the family defaults" if has_file else "no layoutguide.json"),
        f"preset: {preset or 'tuned'}",
    ]
    for member, settings in options.items():
        lines.append(f"{member}:")
        lines += [f"  {k} = {s.value!r}  [{s.source}]" for k, s in settings.items()]
        if preset not in (None, "tuned") and missing_options(preset, member):
            lines.append(f"  not in this build yet (skipped): {', '.join(missing_options(preset, member))}")
    lines.append("sampling:")
    sampling = layered_sampling(
        pipe.model_defaults,
        method,
        preset,
        pipeline_steps=pipe.default_steps,
        pipeline_guidance_scale=pipe.default_guidance_scale,
    )
    for key, setting in sampling.items():
        value = setting.value if key != "guidance_interval" or setting.value is not None else "every step"
        lines.append(f"  {key} = {value!r}  [{setting.source}]")
    return "\n".join(lines + ["", PRECEDENCE])
