"""Layout methods: one file each, one contract (:mod:`.base`: :class:`GuidanceMethod`, :class:`GradientMethod`), one
registry."""

from __future__ import annotations

from typing import Any

from ..spec import MethodSpec
from .attend_excite import AttendExcite
from .base import (
    GradientMethod,
    GuidanceContext,
    GuidanceMethod,
    LossOutput,
    MethodKind,
    MethodOptionError,
    MethodOptions,
    MethodState,
    SampleLoss,
    SampleView,
    StepPlan,
)
from .boxdiff import BoxDiff
from .compose import Composite
from .dense_diffusion import DenseDiffusion
from .gligen import Gligen, ReGround
from .layout_guidance import LayoutGuidance
from .paint_with_words import PaintWithWords
from .refocus import Refocus
from .regional import Regional
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
        Regional,
    )
}


# Combinations the papers use; ``--methods all`` runs them beside every registered method (any other `+` join of
# compatible members works too).
COMBINATIONS = (
    "zestguide+pww",
    "gligen+refocus",
    "gligen+pww+refocus",
    "reground+refocus",
    "gligen+layout-guidance",
    "regional+refocus",
)


def _runs_on(name: str, backbone: str) -> bool:
    return not any(backbone in REGISTRY[m].unsupported_on for m in name.split("+"))


def runnable_methods(unet: Any) -> list[str]:
    """``"none"``, every registered method and every listed combination that can run on ``unet`` (GLIGEN and
    ReGround need a gated UNet; SDXL's has none; ``regional`` a DiT), or on an SD3/FLUX transformer. Empty for a
    UNet the sampling loop cannot drive: added conditioning other than SDXL's text/time embeddings, or no
    cross-attention."""
    config = getattr(unet, "config", None)
    names = ["none"] + sorted(n for n in REGISTRY if n != "none") + list(COMBINATIONS)
    if config is not None and config.get("joint_attention_dim"):  # SD3's and FLUX's transformers
        return [n for n in names if _runs_on(n, "dit")]
    if config is None or config.get("addition_embed_type") not in (None, "text_time"):
        return []
    if not config.get("cross_attention_dim"):
        return []
    gated = getattr(unet, "position_net", None) is not None
    names = [n for n in names if _runs_on(n, "unet")]
    return [n for n in names if gated or not any(REGISTRY[m].needs_gated_unet for m in n.split("+"))]


def get_method(spec: str | MethodSpec | GuidanceMethod | None, **options) -> GuidanceMethod:
    """A method instance from a spec in :mod:`layoutguide.spec`'s grammar (``"refocus"``,
    ``"gligen+pww+refocus[refocus.tokens=last]"``), a parsed :class:`MethodSpec`, an instance, or None (plain
    sampling). ``options`` apply under the spec's brackets: ``{"loss_scale": 10}`` for one method, per member for a
    combination (``{"zestguide": {...}, "pww": {...}}``)."""
    if isinstance(spec, GuidanceMethod):
        if options:
            raise MethodOptionError(
                "options cannot be given together with a method instance; set them on the instance"
            )
        return spec
    if spec is None or isinstance(spec, str):
        text = (spec or "none").strip() or "none"
        if "+" not in text.partition("[")[0]:
            options = {text.partition("[")[0].strip(): options} if options else {}
        else:
            members = [m.strip() for m in text.partition("[")[0].split("+")]
            unknown = sorted(set(options) - set(members))
            if unknown:
                raise MethodOptionError(
                    f"options for {unknown} given, but {text!r} combines {members}; key options by member name"
                )
            bad = [k for k, v in options.items() if not isinstance(v, dict)]
            if bad:
                raise MethodOptionError(f"options of a combination are given per member, e.g. {{'{bad[0]}': {{...}}}}")
        spec = MethodSpec.parse(text, options)
    elif options:
        raise MethodOptionError("options cannot be given together with a parsed MethodSpec; put them in the spec")
    if spec.method is None:
        return REGISTRY["none"](**spec.options)
    members = spec.members
    for member in members:
        if member not in REGISTRY:
            raise MethodOptionError(f"unknown method {member!r}; registered methods: {', '.join(sorted(REGISTRY))}")
    if len(members) == 1:
        return REGISTRY[members[0]](**spec.options)
    strays = set(spec.options) - set(members)
    if strays:
        raise MethodOptionError(
            f"options for {sorted(strays)} given, but {spec.method!r} combines {members}; key options by member name"
        )
    return Composite([REGISTRY[m](**spec.options.get(m, {})) for m in members])


def parse_spec(text: str, options: dict[str, dict[str, Any]] | None = None) -> MethodSpec:
    """:meth:`MethodSpec.parse`, then checked against the registry and each method's options (a bad name or value
    fails here, before any model runs). ``options``: ``{member: {option: value}}`` applied under the brackets."""
    spec = MethodSpec.parse(text, options)
    get_method(spec)
    return spec


__all__ = [
    "REGISTRY",
    "get_method",
    "parse_spec",
    "MethodSpec",
    "GuidanceContext",
    "GuidanceMethod",
    "GradientMethod",
    "MethodKind",
    "MethodState",
    "SampleLoss",
    "SampleView",
    "LossOutput",
    "MethodOptionError",
    "MethodOptions",
    "StepPlan",
    "Refocus",
    "Regional",
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
