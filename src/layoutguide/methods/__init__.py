"""Layout methods: one file each, one interface (:class:`GuidanceMethod`), one registry."""

from __future__ import annotations

from .attend_excite import AttendExcite
from .base import GuidanceContext, GuidanceMethod, LossOutput, MethodOptionError, MethodOptions, StepPlan
from .boxdiff import BoxDiff
from .compose import Composite
from .dense_diffusion import DenseDiffusion
from .gligen import Gligen, ReGround
from .layout_guidance import LayoutGuidance
from .paint_with_words import PaintWithWords
from .refocus import Refocus
from .zestguide import ZestGuide

REGISTRY: dict[str, type[GuidanceMethod]] = {
    cls.name: cls
    for cls in (
        GuidanceMethod,
        Refocus,
        BoxDiff,
        LayoutGuidance,
        AttendExcite,
        ZestGuide,
        PaintWithWords,
        DenseDiffusion,
        Gligen,
        ReGround,
    )
}


# Combinations the papers use; ``--methods all`` runs them beside every registered method (any other `+` join of
# compatible members works too).
COMBINATIONS = ("zestguide+pww", "gligen+refocus", "gligen+pww+refocus", "reground+refocus", "gligen+layout-guidance")


def runnable_methods(unet) -> list[str]:
    """``"none"``, every registered method and every listed combination that can run on ``unet`` (GLIGEN and
    ReGround need a gated UNet)."""
    gated = getattr(unet, "position_net", None) is not None
    names = ["none"] + sorted(n for n in REGISTRY if n != "none") + list(COMBINATIONS)
    return [n for n in names if gated or not any(REGISTRY[m].needs_gated_unet for m in n.split("+"))]


def get_method(spec: str | GuidanceMethod | None, **options) -> GuidanceMethod:
    """A method instance from a registered name (``"refocus"``), a ``+``-joined combination
    (``"zestguide+pww"``, options given per member: ``{"zestguide": {...}, "pww": {...}}``), an instance, or
    None (plain sampling)."""
    if isinstance(spec, GuidanceMethod):
        if options:
            raise MethodOptionError(
                "options cannot be given together with a method instance; set them on the instance"
            )
        return spec
    name = spec or "none"
    if "+" in name:
        parts = [p.strip() for p in name.split("+")]
        unknown = set(options) - set(parts)
        if unknown:
            raise MethodOptionError(
                f"options for {sorted(unknown)} given, but {name!r} combines {parts}; key options by member name"
            )
        bad = [o for o in options.values() if not isinstance(o, dict)]
        if bad:
            raise MethodOptionError(f"options of a combination are given per member, e.g. {{'{parts[0]}': {{...}}}}")
        return Composite([get_method(p, **options.get(p, {})) for p in parts])
    if name not in REGISTRY:
        raise MethodOptionError(f"unknown method {name!r}; registered methods: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name](**options)


__all__ = [
    "REGISTRY",
    "get_method",
    "GuidanceContext",
    "GuidanceMethod",
    "LossOutput",
    "MethodOptionError",
    "MethodOptions",
    "StepPlan",
    "Refocus",
    "BoxDiff",
    "LayoutGuidance",
    "AttendExcite",
    "ZestGuide",
    "PaintWithWords",
    "DenseDiffusion",
    "Composite",
    "Gligen",
    "ReGround",
]
