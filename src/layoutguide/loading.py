"""Finding and loading models: the shipped models by name (``"shapes"``, ``"shapes-gligen"``), local folders, hub
ids; device and dtype.

Everything that can be checked is checked before a weight is read: the device exists, the dtype runs there, the
folder's ``model_index.json`` names an architecture this library runs (Stable Diffusion 1.x/2.x components: one
CLIP text encoder, a UNet; SDXL base: two CLIP text encoders and tokenizers, a text-time UNet; SD3/SD3.5 or FLUX.1:
an ``SD3Transformer2DModel`` or ``FluxTransformer2DModel`` with its text encoders, :mod:`.backbones.dit`), and every
safetensors file is complete. Weights load from safetensors only
(``use_safetensors=True``): a pickle is never opened.

``shapes-gligen`` ships as its GLIGEN layers only (gated self-attention fusers and position net, 7 MB) plus an
``overlay.json`` naming its base model and UNet config changes; :func:`load_pipeline` assembles it on the shipped
base at load time.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file

from .backbones.dit import dit_pipeline_class
from .defaults import MODEL_DEFAULTS_FILE, check_guidance_interval, model_defaults  # noqa: F401 (re-exported)
from .errors import InputError, LayoutguideError, SlowDtypeWarning
from .layout import atomic_write_bytes
from .pipeline import LayoutPipeline

WEIGHTS = Path(__file__).parent / "weights"
SHIPPED_MODELS = {"shapes": WEIGHTS / "shapes", "shapes-gligen": WEIGHTS / "shapes-gligen"}
SHIPPED_MODEL = SHIPPED_MODELS["shapes"]
OVERLAY_FILE = "overlay.json"  # a model stored as layers on top of a shipped base
# model_index.json components of pipelines this library cannot use (other DiTs, cascades); SD3/FLUX are checked first
UNSUPPORTED_COMPONENTS = ("text_encoder_3", "transformer", "prior", "decoder")
SD_COMPONENTS = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
SDXL_COMPONENTS = (*SD_COMPONENTS, "text_encoder_2", "tokenizer_2")
# SD3's T5 (text_encoder_3) is optional, as in diffusers; FLUX's second encoder is its T5
DIT_COMPONENTS = ("vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "transformer", "scheduler")


class ModelNotFoundError(LayoutguideError, RuntimeError):
    """The model argument names neither a shipped model, a readable folder nor a reachable hub id."""


class UnsupportedModelError(LayoutguideError, ValueError):
    """The model exists but is an architecture this library cannot run (an SDXL refiner, a cascade, other DiTs ...)."""


class DamagedModelError(LayoutguideError, ValueError):
    """A model file is truncated or malformed."""


def pick_device(device: str | None = None) -> torch.device:
    """``"auto"``/None: CUDA, then Apple MPS, then CPU. A named device must exist on this machine."""
    if device and device != "auto":
        try:
            chosen = torch.device(device)
        except (RuntimeError, TypeError):
            raise InputError(f"device {device!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from None
        available = {
            "cpu": True,
            "cuda": torch.cuda.is_available() and (chosen.index or 0) < torch.cuda.device_count(),
            "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
        }
        if not available.get(chosen.type, False):
            raise InputError(f"device {device!r} is not available on this machine; use device='auto' or 'cpu'")
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has the bfloat16 instructions (AVX512-BF16 or AMX) PyTorch's oneDNN kernels use."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``"auto"``/None: float16 on CUDA, float32 elsewhere. float16 on the CPU is refused: PyTorch's CPU half kernels
    are so slow that one Stable Diffusion step did not finish in 9 minutes (fp32 or bf16 there). bfloat16 on a CPU
    without bf16 instructions warns (:class:`SlowDtypeWarning`): its convolutions fall back to a generic kernel,
    155x slower than float32 for a 640-channel 3x3 convolution at 32x32 on an AVX2-only AMD EPYC, so one SDXL step
    that takes seconds in float32 takes minutes; its memory saving is real."""
    if isinstance(dtype, torch.dtype):
        chosen = dtype
    elif dtype and dtype != "auto":
        if dtype not in DTYPES:
            raise InputError(f"dtype {dtype!r} is unknown; use one of auto, {', '.join(DTYPES)}")
        chosen = DTYPES[dtype]
    else:
        chosen = torch.float16 if device.type == "cuda" else torch.float32
    if chosen == torch.float16 and device.type == "cpu":
        raise InputError("dtype float16 does not run at a usable speed on the CPU; use dtype='fp32' (or 'bf16')")
    if chosen == torch.bfloat16 and device.type == "cpu" and not cpu_has_native_bf16():
        warnings.warn(
            "dtype bfloat16 on this CPU (no bf16 instructions) runs convolutions about 100x slower than float32; "
            "use dtype='fp32' unless the model only fits in memory as bf16",
            SlowDtypeWarning,
            stacklevel=2,
        )
    return chosen


def parse_guidance_interval(text: str) -> list[float] | None:
    """``"0,900"`` -> ``[0.0, 900.0]`` (CFG only at timesteps 0 <= t <= 900); ``"all"`` -> None (every step)."""
    if text.strip().lower() == "all":
        return None
    try:
        interval = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"guidance_interval {text!r}: expected LOW,HIGH in timesteps (e.g. 0,900) or 'all'") from None
    check_guidance_interval(interval, f"guidance_interval {text!r}")
    return interval


def resolve_model(model: str | os.PathLike | None) -> Path | str:
    """A shipped model's folder for None or its name, a local folder as a Path, anything else (a hub id) as is."""
    if model is None:
        model = "shapes"
    if isinstance(model, str) and model in SHIPPED_MODELS:
        folder = SHIPPED_MODELS[model]
        if not ((folder / "model_index.json").is_file() or (folder / OVERLAY_FILE).is_file()):
            raise ModelNotFoundError(f"the shipped model {model!r} is missing at {folder}; reinstall layoutguide")
        return folder
    local = Path(model).expanduser()
    return local if local.exists() else str(model)


def check_model_folder(folder: Path) -> None:
    """Refuse, before any weight loads, a folder that is not a pipeline this library runs or whose safetensors files
    are damaged."""
    index_file = folder / "model_index.json"
    if (folder / OVERLAY_FILE).is_file():
        return
    if not index_file.is_file():
        raise ModelNotFoundError(
            f"model {str(folder)!r} is a folder without model_index.json; point at a diffusers pipeline folder"
        )
    try:
        index = json.loads(index_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedModelError(f"model {str(folder)!r}: model_index.json is not readable JSON ({e})") from None
    if not isinstance(index, dict):
        raise DamagedModelError(f"model {str(folder)!r}: model_index.json must be a JSON object")
    named = {name for name, entry in index.items() if isinstance(entry, list) and len(entry) == 2 and all(entry)}
    if dit_pipeline_class(index) is not None:
        missing = [name for name in DIT_COMPONENTS if name not in named]
        if missing:
            raise UnsupportedModelError(
                f"model {str(folder)!r} is an SD3/FLUX pipeline without {', '.join(missing)}; layoutguide needs its "
                "transformer, VAE, scheduler and text encoders (SD3's T5 may be left out)"
            )
        for path in sorted(folder.glob("*/*.safetensors")):
            check_safetensors(path)
        return
    extra = [name for name in UNSUPPORTED_COMPONENTS if name in named]
    xl = "text_encoder_2" in named or "XL" in str(index.get("_class_name", ""))
    missing = [name for name in (SDXL_COMPONENTS if xl else SD_COMPONENTS) if name not in named]
    if extra or missing:
        refiner = xl and "text_encoder" in missing
        raise UnsupportedModelError(
            f"model {str(folder)!r} is a {index.get('_class_name', 'pipeline')} ("
            + (f"has {', '.join(extra)}" if extra else f"lacks {', '.join(missing)}")
            + (
                "): an SDXL refiner only finishes images; load the SDXL base model"
                if refiner
                else "); layoutguide runs Stable Diffusion 1.x/2.x-style models (one CLIP text encoder and a UNet) "
                "SDXL base (two CLIP text encoders and a UNet) and SD3/SD3.5/FLUX.1 (an SD3Transformer2DModel or "
                "FluxTransformer2DModel)"
            )
        )
    for path in sorted(folder.glob("*/*.safetensors")):
        check_safetensors(path)


def check_safetensors(path: Path) -> None:
    """Raise DamagedModelError unless ``path`` holds a complete safetensors file (header and every tensor's bytes)."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(f.read(header_len))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as e:
        raise DamagedModelError(f"weights file {str(path)!r} is not a valid safetensors file ({e})") from None
    if 8 + header_len + end != size:
        raise DamagedModelError(
            f"weights file {str(path)!r} is {size} bytes but its header describes {8 + header_len + end}: "
            "the file is truncated or damaged; download or copy it again"
        )


def load_pipeline(
    model: str | os.PathLike | None = None,
    *,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    guidance_interval: str | None = None,
) -> LayoutPipeline:
    """A LayoutPipeline from ``model`` on ``device``: None or ``"shapes"`` (the shipped shapes model),
    ``"shapes-gligen"`` (its GLIGEN variant), a diffusers folder, or a hub id.

    ``guidance_interval`` (``"LOW,HIGH"`` or ``"all"``) replaces the model's default for this pipeline, so it also
    enters a benchmark's model fingerprint; it is an explicit setting, so it also wins over a preset's interval.
    """
    interval = None if guidance_interval is None else parse_guidance_interval(guidance_interval)
    device_ = pick_device(device)
    dtype_ = pick_dtype(dtype, device_)
    source = resolve_model(model)
    pipe: Any
    if isinstance(source, Path):
        check_model_folder(source)
        pipe = _load_overlay(source, dtype_) if (source / OVERLAY_FILE).is_file() else _load_folder(source, dtype_)
    else:
        pipe = _load_hub(source, dtype_)
    pipe.set_progress_bar_config(leave=False)
    if guidance_interval is not None:
        pipe.model_defaults = {**pipe.model_defaults, "guidance_interval": interval}
        pipe.explicit_sampling = {"guidance_interval": interval}  # an explicit flag: a preset's interval must not win
    return pipe.to(device_)


def _load_folder(folder: Path, dtype: torch.dtype, **components: Any) -> LayoutPipeline:
    try:
        return LayoutPipeline.from_pretrained(str(folder), dtype=dtype, use_safetensors=True, **components)
    except (OSError, ValueError, RuntimeError) as e:
        reason = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise ModelNotFoundError(f"could not load the pipeline folder {str(folder)!r}: {reason}") from None


def _load_hub(model_id: str, dtype: torch.dtype) -> LayoutPipeline:
    try:
        pipe = LayoutPipeline.from_pretrained(model_id, dtype=dtype, use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelNotFoundError(
            f"model {model_id!r} is not a shipped model ({', '.join(SHIPPED_MODELS)}), not a local folder, and could "
            f"not be loaded from the Hugging Face hub (offline, or no such repository: {type(e).__name__}). Download "
            "it first (huggingface_hub.snapshot_download) and pass its folder"
        ) from None
    return pipe


def read_overlay(folder: Path) -> dict[str, Any]:
    """``overlay.json``: ``{"base": shipped name, "unet_config": {changes}, "unet_weights": file}``."""
    try:
        overlay = json.loads((folder / OVERLAY_FILE).read_text())
        base = resolve_model(overlay["base"])
        weights = folder / overlay["unet_weights"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DamagedModelError(f"model {str(folder)!r}: {OVERLAY_FILE} is not a valid overlay ({e})") from None
    if not isinstance(base, Path):
        raise DamagedModelError(f"model {str(folder)!r}: its base {overlay['base']!r} is not a shipped model")
    return {"base": base, "unet_config": dict(overlay.get("unet_config", {})), "unet_weights": weights}


def assemble_unet(folder: Path) -> UNet2DConditionModel:
    """The overlay's UNet: the base UNet's config with the overlay's changes, the base tensors plus the overlay's
    layers (every key accounted for: ``strict=True``)."""
    overlay = read_overlay(folder)
    base_unet = overlay["base"] / "unet"
    check_model_folder(overlay["base"])
    check_safetensors(overlay["unet_weights"])
    config = {**UNet2DConditionModel.load_config(base_unet), **overlay["unet_config"]}
    unet = UNet2DConditionModel.from_config(config)
    state = load_file(base_unet / "diffusion_pytorch_model.safetensors")
    added = load_file(overlay["unet_weights"])
    if set(added) & set(state):
        raise DamagedModelError(
            f"model {str(folder)!r}: its layers overwrite base tensors {sorted(set(added) & set(state))[:3]}"
        )
    unet.load_state_dict({**state, **added}, strict=True)
    return unet.eval()


def _load_overlay(folder: Path, dtype: torch.dtype) -> LayoutPipeline:
    base = read_overlay(folder)["base"]
    unet: Any = assemble_unet(folder)
    pipe = _load_folder(base, dtype, unet=unet if dtype == torch.float32 else unet.to(dtype))
    pipe.model_defaults = model_defaults(folder)
    return pipe


def write_model_folder(model: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A self-contained diffusers folder for ``model`` (an overlay such as ``"shapes-gligen"`` assembled on its base),
    with its ``training.json`` when it has one, so training can start from it."""
    source = resolve_model(model)
    if not isinstance(source, Path):
        raise ModelNotFoundError(f"model {str(model)!r} is not a shipped model or a local folder")
    out = Path(out)
    load_pipeline(source, device="cpu", dtype="fp32").save_pretrained(out)
    if (source / "training.json").is_file():
        atomic_write_bytes(out / "training.json", (source / "training.json").read_bytes())
    return out
