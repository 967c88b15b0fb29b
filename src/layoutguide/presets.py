"""Presets: each method's published configuration beside the tuned one, and where every value that runs comes from.

Three presets (``refocus[preset=official]``, ``--preset official``, ``pipe(..., preset="official")``):

* ``tuned`` (the default): the method's defaults, under the backbone family's published step sizes (a model folder
  without ``layoutguide.json``; :data:`layoutguide.defaults.FAMILY_DEFAULTS`), under the model's own calibrated
  ``layoutguide.json`` (the shipped shapes models keep theirs).
* ``official``: the official code's configuration for the backbone: loss form, masks, schedule, iterations, step
  sizes, early stop, GLIGEN's L_G and scheduled sampling, phrase form, negative prompt, sampler, steps and guidance.
* ``paper``: the paper's text where it differs from the official code, the official code where the paper is silent.

Layers, lowest first (each value's source is reported by :func:`explain`): method default < family default (no
``layoutguide.json``) < the model's ``layoutguide.json`` < preset < explicit options (``--set``, ``method_options``)
< the spec's brackets. Sampling settings: preset < the model's < explicit arguments, i.e. an explicit ``--steps``,
``--guidance-scale`` or ``--negative-prompt`` wins over the preset, the preset over the model's file.

Options that describe how a *model* was trained (GLIGEN's ``grounding_text`` and ``position_code``, the UNet's
text mask) are never set by a preset: they are the model's, not the method's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from .defaults import backbone_family, family_defaults
from .spec import PRESETS, MethodOptionError, MethodSpec, check_preset

AR_CODE = "Attention-Refocusing HEAD 2c265cb (guide_gligen.py, ldm/models/diffusion/loss.py, plms.py)"
AR_PAPER = "Attention Refocusing paper, arXiv 2306.05427 (Eq. 3-7, appendix)"
ZG_CODE = "ZestGuide 6b7e81a src/zestguide_stbl14.py + configs/zestguide_stbldif14.yaml"
ZG_PAPER = "ZestGuide paper, arXiv 2306.13754 (Eq. 3-5, Sec. 4: DDIM 50, CFG 3 on its LDM)"
# guide_gligen.py's --negative_prompt default
AR_NEGATIVE = (
    "longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, cropped, worst quality, "
    "low quality"
)
# zestguide_stbl14.py GradientGuidedSynthesis2's neg_prompt default
ZG_NEGATIVE = (
    "ugly, tiling, poorly drawn hands, poorly drawn feet, poorly drawn face, out of frame, extra limbs, disfigured, "
    "deformed, body out of frame, bad anatomy, watermark, signature, cut off, low contrast, underexposed, "
    "overexposed, bad art, beginner, amateur, distorted face"
)
SAMPLING_KEYS = ("num_inference_steps", "guidance_scale", "negative_prompt", "sampler", "guidance_interval")
# options a preset never sets: they describe the model (how it was trained, which of its layers are SD's 16x16
# level), not how the method runs; the model's layoutguide.json or the method's relative-level rule picks them
MODEL_OPTIONS = frozenset({"grounding_text", "position_code", "level", "levels", "resolution", "resolutions"})


@dataclasses.dataclass(frozen=True)
class PresetEntry:
    """One method's preset: its options, those that differ per backbone family, the options it sets per member when
    combined with GLIGEN (``with_gligen``: the official Attention Refocusing code runs on GLIGEN), the sampling
    settings, and the source they come from."""

    source: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    per_family: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    with_gligen: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    sampling: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()


_AR_OFFICIAL_OPTIONS = {
    "variant": "official",  # per-box thresholded CAR (x6 missing peak, x4 leakage)
    "schedule": "official",
    "car": True,
    "sar": True,
    "tokens": "all",  # every word of a phrase shares its boxes
    "temperature": 100.0,
    "smoothing": True,
    "normalize_grad": False,  # raw gradient
    "early_stop": True,
    "loss_threshold": 0.1,
    "inside_threshold": 0.2,
    "box_edges": "truncate",  # int(b*16) for both edges
    "loss_scale": 1.0,
    # fidelity-branch options (/work/briefs/options-fidelity.md): the early stop compares the step-size-scaled loss;
    # L_G only on reference steps < 15, fuser maps averaged over layers before the max; EOT and padding stay in the
    # x100 softmax; dropped (and said by `layoutguide methods`) where this build lacks them
    "early_stop_on": "scaled",
    "grounding_until": 15,
    "grounding_average": "maps",
    "token_softmax": "all",
}
_AR_SAMPLING = {
    "num_inference_steps": 50,
    "guidance_scale": 7.5,
    "negative_prompt": AR_NEGATIVE,
    "sampler": "pndm",  # LDM PLMS; diffusers' PNDM with skip_prk_steps is its port
    "guidance_interval": None,  # CFG on every step
}
_GLIGEN_OFFICIAL = {"beta": 0.3, "rewire": "sequential", "grounding_prefix": "a "}  # alpha_type [0.3, 0, 0.7]

PRESET_TABLE: dict[str, dict[str, PresetEntry]] = {
    "official": {
        "refocus": PresetEntry(
            source=AR_CODE,
            options={**_AR_OFFICIAL_OPTIONS, "grounding_weight": 0.0},
            per_family={
                # no official SD code: the authors' advice for plain SD (issue #3) is ~10x the GLIGEN step sizes
                "sd1": {"loss_scale": 10.0},
                "sd2": {"loss_scale": 10.0},
                "sdxl": {"loss_scale": 10.0},
            },
            with_gligen={"gligen": _GLIGEN_OFFICIAL, "refocus": {"grounding_weight": 3.0}},
            sampling=_AR_SAMPLING,
            notes=(
                "the official code runs on GLIGEN (gligen+refocus, L_G weight 3, beta 0.3); on plain SD it has no "
                "code, and loss_scale 10 is the authors' advice (issue #3)",
            ),
        ),
        "zestguide": PresetEntry(
            source=ZG_CODE,
            options={
                "variant": "code",  # bce_loss2: x10 scale, gradient gates
                "eta": 0.3,
                "tau": 0.5,  # with PNDM's 51 timesteps: steps 0-25, the code's i <= int(51 * (1 - 0.5)): 26
                "normalize_grad": True,
            },
            sampling={
                "num_inference_steps": 50,
                "guidance_scale": 7.5,
                "negative_prompt": ZG_NEGATIVE,
                "sampler": "pndm",  # SD-1.4's scheduler; the config's ddim_eta 0.5 is a no-op on it
                "guidance_interval": None,
            },
            notes=(
                "the code runs diffusers' PNDM, whose 50 steps are 51 timesteps (the PLMS warm-up repeats the first): "
                "tau 0.5 guides 0-25, its 26 (the same count at any even number of steps)",
            ),
        ),
        "gligen": PresetEntry(
            source=AR_CODE + " (GLIGEN's own inference: PLMS 50, CFG 7.5)",
            options=_GLIGEN_OFFICIAL,
            sampling={**_AR_SAMPLING},
        ),
        "boxdiff": PresetEntry(
            source="showlab/BoxDiff pipeline/sd_pipeline_boxdiff.py (README setting)",
            options={
                "top_p": 0.2,
                "corner_width": 1,
                "scale_factor": 20.0,
                "guided_fraction": 0.5,
                "refine": False,
                "temperature": 100.0,
                "box_edges": "truncate",
                "token_softmax": "auto",  # normalize_eot on SD 2.1 (fidelity branch)
            },
            sampling={"num_inference_steps": 50, "guidance_scale": 7.5, "negative_prompt": "", "sampler": "pndm"},
        ),
        "attend-excite": PresetEntry(
            source="diffusers' Attend-and-Excite pipeline (official port)",
            options={
                "scale_factor": 20.0,
                "guided_fraction": 0.5,
                "refine": True,
                "temperature": 100.0,
                "token_softmax": "auto",  # fidelity branch
            },
            sampling={"num_inference_steps": 50, "guidance_scale": 7.5, "negative_prompt": "", "sampler": "pndm"},
        ),
        "layout-guidance": PresetEntry(
            source="silent-chen/layout-guidance conf/base_config.yaml",
            options={"loss_scale": 30.0, "max_iterations": 5, "loss_threshold": 0.2, "guided_fraction": 10 / 51},
            sampling={"num_inference_steps": 51, "guidance_scale": 7.5, "negative_prompt": "", "sampler": "lms"},
        ),
    },
    "paper": {
        "refocus": PresetEntry(
            source=AR_PAPER + "; the official code where the paper is silent",
            options={**_AR_OFFICIAL_OPTIONS, "variant": "paper", "grounding_weight": 0.0},
            per_family={"sd1": {"loss_scale": 10.0}, "sd2": {"loss_scale": 10.0}, "sdxl": {"loss_scale": 10.0}},
            with_gligen={"gligen": _GLIGEN_OFFICIAL, "refocus": {"grounding_weight": 0.0}},  # L_G is code-only
            sampling=_AR_SAMPLING,
            notes=("the paper's CAR (union of a phrase's boxes, max inside / max outside); no L_G",),
        ),
        "zestguide": PresetEntry(
            source=ZG_PAPER,
            options={"variant": "paper", "eta": 1.0, "tau": 0.5, "normalize_grad": True},
            sampling={
                "num_inference_steps": 50,
                "guidance_scale": 3.0,
                "negative_prompt": "",
                "sampler": "ddim",
                "guidance_interval": None,
            },
            notes=("eta 1 and CFG 3 are the paper's values on its own 2.2B LDM",),
        ),
    },
}


def entry(preset: str, method: str) -> PresetEntry | None:
    """The table's entry, or None (``tuned``, or a method the preset has no published configuration for)."""
    return PRESET_TABLE.get(preset, {}).get(method)


def _supported(method: str, options: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``options`` less those the method's Options class lacks in this build (named in the second value)."""
    from .methods import REGISTRY

    cls = REGISTRY.get(method)
    if cls is None:
        return {}, []
    fields = cls.Options.model_fields
    kept = {k: v for k, v in options.items() if k in fields and k not in MODEL_OPTIONS}
    return kept, sorted(k for k in options if k not in fields)


def preset_options(preset: str | None, members: Sequence[str], family: str) -> dict[str, dict[str, Any]]:
    """``{member: {option: value}}`` that ``preset`` sets for the combination ``members`` on ``family``."""
    out: dict[str, dict[str, Any]] = {m: {} for m in members}
    if preset in (None, "tuned"):
        return out
    for member in members:
        found = entry(preset, member)
        if found is None:
            continue
        out[member].update({**found.options, **found.per_family.get(family, {})})
    for member in members if "gligen" in members else ():  # on GLIGEN: L_G weight, scheduled sampling, phrases
        found = entry(preset, member)
        for partner, options in found.with_gligen.items() if found is not None else ():
            out[partner].update(options)
    return {m: _supported(m, o)[0] for m, o in out.items()}


def preset_sampling(preset: str | None, members: Sequence[str]) -> dict[str, Any]:
    """The sampling settings of ``preset`` for ``members``: a gradient member's win over the others'."""
    from .methods import REGISTRY

    if preset in (None, "tuned"):
        return {}
    ordered = sorted(members, key=lambda m: getattr(REGISTRY.get(m), "kind", "") == "gradient")
    out: dict[str, Any] = {}
    for member in ordered:
        found = entry(preset, member)
        if found is not None:
            out.update(found.sampling)
    return out


def missing_options(preset: str, method: str) -> list[str]:
    """Options ``preset`` names for ``method`` that this build's method lacks (they land with the fidelity fixes)."""
    found = entry(preset, method)
    if found is None:
        return []
    return _supported(method, {**found.options, **found.with_gligen.get(method, {})})[1]


@dataclasses.dataclass(frozen=True)
class Setting:
    """A value that will run and the layer it came from."""

    value: Any
    source: str


def _members(method: str | None) -> list[str]:
    return MethodSpec.parse(method or "none").members


def layered_options(
    model_defaults: dict[str, Any],
    family: str,
    method: str,
    preset: str | None = None,
    explicit: dict[str, Any] | None = None,
) -> dict[str, dict[str, Setting]]:
    """Every option of every member of ``method`` (a name or ``+`` combination, no brackets) with its value and
    source: ``{member: {option: Setting}}``. ``explicit`` is per member for a combination, flat for one method."""
    from .methods import REGISTRY

    check_preset(preset)
    members = _members(method)
    if len(members) == 1:
        explicit = {members[0]: explicit or {}}
    explicit = explicit or {}
    from_preset = preset_options(preset, members, family)
    model_methods = model_defaults.get("methods", {})
    out: dict[str, dict[str, Setting]] = {}
    for member in members:
        cls = REGISTRY.get(member)
        if cls is None:
            raise MethodOptionError(f"unknown method {member!r}; registered methods: {', '.join(sorted(REGISTRY))}")
        settings = {k: Setting(f.default, "method default") for k, f in cls.Options.model_fields.items()}
        for option, (value, why) in family_defaults(family, member, model_defaults).items():
            settings[option] = Setting(value, f"family default ({family}: {why})")
        for option, value in model_methods.get(member, {}).items():
            settings[option] = Setting(value, "model (layoutguide.json)")
        for option, value in from_preset.get(member, {}).items():
            settings[option] = Setting(value, f"preset {preset}")
        for option, value in (explicit.get(member) or {}).items():
            settings[option] = Setting(value, "explicit (--set / method_options)")
        out[member] = settings
    return out


def layered_sampling(
    model_defaults: dict[str, Any],
    method: str | None,
    preset: str | None = None,
    explicit: dict[str, Any] | None = None,
    *,
    pipeline_steps: int = 50,
    pipeline_guidance_scale: float = 7.5,
) -> dict[str, Setting]:
    """The sampling settings that will run (:data:`SAMPLING_KEYS`) with their sources; ``pipeline_*``: the
    backbone's own defaults (50 and 7.5 on SD; SDXL's guidance 5.0; SD3/FLUX's 28 steps)."""
    settings = {
        "num_inference_steps": Setting(pipeline_steps, "pipeline default"),
        "guidance_scale": Setting(pipeline_guidance_scale, "pipeline default"),
        "negative_prompt": Setting("", "pipeline default (the layout's, else empty)"),
        "sampler": Setting("model", "the model's scheduler"),
        "guidance_interval": Setting(None, "pipeline default (every step)"),
    }
    for key in SAMPLING_KEYS:
        if key in model_defaults:
            settings[key] = Setting(model_defaults[key], "model (layoutguide.json)")
    for key, value in preset_sampling(preset, _members(method)).items():
        settings[key] = Setting(value, f"preset {preset}")
    for key, value in (explicit or {}).items():
        if value is not None:
            settings[key] = Setting(value, "explicit")
    return settings


def options_for(pipe: Any, spec_text: str, preset: str | None, explicit: dict[str, Any] | None) -> dict[str, Any]:
    """The options ``pipe`` passes under the spec's brackets: ``{member: {option: value}}``, every layer below the
    explicit one (family, model, preset: :func:`layered_options`) under ``explicit`` (per member for a combination,
    flat for one method), whose keys stay as given so a misnamed member still reaches the registry's error."""
    name = spec_text.partition("[")[0].strip() or "none"
    members = [m.strip() for m in name.split("+")]
    layers = layered_options(pipe.model_defaults, backbone_family(pipe.denoiser), name, preset)
    below = {m: {k: s.value for k, s in layers.get(m, {}).items() if s.source != "method default"} for m in members}
    explicit = explicit or {}
    if len(members) > 1:
        merged = {m: {**below[m], **(explicit.get(m) or {})} for m in members}
        merged.update({k: v for k, v in explicit.items() if k not in members})
        return merged
    return {members[0]: {**below[members[0]], **explicit}}


def spec_preset(spec_text: str, preset: str | None) -> str | None:
    """The preset that applies: the spec's own ``[preset=...]``, else ``preset`` (checked)."""
    own = MethodSpec.parse(spec_text).preset if "[" in spec_text else None
    return own or check_preset(preset)


__all__ = [
    "PRESETS",
    "PRESET_TABLE",
    "PresetEntry",
    "Setting",
    "layered_options",
    "layered_sampling",
    "missing_options",
    "options_for",
    "preset_options",
    "preset_sampling",
    "spec_preset",
]
