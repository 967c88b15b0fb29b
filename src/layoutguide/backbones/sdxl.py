"""Stable Diffusion XL on the one UNet sampling loop: two text encoders, a pooled embedding and size/crop time ids.

SDXL is the UNet family with extra conditioning, so it needs no loop of its own. :class:`LayoutXLPipeline` overrides
the loop's conditioning hook (:meth:`LayoutPipeline.encode_conditioning`): the text embeddings are the two encoders'
penultimate hidden states concatenated on the feature axis (CLIP ViT-L 768 + OpenCLIP bigG 1280 = 2048), and the
UNet's ``added_cond_kwargs`` carry the second encoder's pooled projection (``text_embeds``) and the micro-conditioning
``time_ids`` (original size, crop top-left, target size), exactly as diffusers' ``StableDiffusionXLPipeline`` builds
them (its defaults: original = target = the image size, crop (0, 0), zero unconditional embeddings for an empty
negative prompt). The base model only: the refiner has no first text encoder and denoises only the last steps.

Token positions: both tokenizers use the same BPE vocabulary and differ only in padding (CLIP-L pads with
``<|endoftext|>``, bigG with ``!``), so a phrase's positions are the same in both halves of the embedding;
:func:`~layoutguide.tokens.map_phrases_shared` checks that on every prompt instead of assuming it.

GLIGEN and ReGround are refused: GLIGEN's gated layers were released for SD 1.4/1.5 only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from ..errors import InputError
from ..methods import GuidanceMethod, MethodOptionError
from ..pipeline import LayoutPipeline
from ..tokens import TokenMap, map_phrases_shared

# diffusers' StableDiffusionXLPipeline default (and Stability's model card); SD 1.x/2.x keep 7.5
SDXL_GUIDANCE_SCALE = 5.0


def read_model_index(path: str | os.PathLike) -> dict[str, Any]:
    """A pipeline's ``model_index.json``: from a local folder, else through the hub cache; {} when unreadable (the
    caller's own load then reports why)."""
    local = Path(path).expanduser()
    try:
        if local.is_dir():
            index = json.loads((local / "model_index.json").read_text())
        else:
            index = DiffusionPipeline.load_config(str(path))
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def is_sdxl_index(index: dict[str, Any]) -> bool:
    """Whether a ``model_index.json`` describes an SDXL pipeline (a second text encoder and tokenizer)."""
    return _named(index.get("text_encoder_2")) and _named(index.get("tokenizer_2"))


def _named(entry: Any) -> bool:
    """A model_index entry that names a class (``["transformers", "CLIPTextModel"]``, not ``[null, null]``)."""
    return isinstance(entry, (list, tuple)) and len(entry) == 2 and all(entry)


def encode_text(
    text_encoders: Sequence[torch.nn.Module], tokenizers: Sequence[Any], prompts: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL's text conditioning of ``prompts``: ``(B, 77, D1 + D2)`` embeddings (each encoder's penultimate hidden
    state, padded to its tokenizer's max length, concatenated) and the last encoder's pooled projection ``(B, P)``.

    The same function serves sampling and training (the SDXL shapes model), so both see one encoding."""
    hidden, pooled = [], None
    for encoder, tokenizer in zip(text_encoders, tokenizers):
        ids = tokenizer(
            list(prompts),
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(encoder.device)
        out = encoder(ids, output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        pooled = out[0]  # CLIPTextModelWithProjection: text_embeds (B, P)
    assert pooled is not None and pooled.ndim == 2, "the last text encoder must give a pooled projection"
    return torch.cat(hidden, dim=-1), pooled


def time_ids(
    original_size: tuple[int, int], crop_top_left: tuple[int, int], target_size: tuple[int, int]
) -> torch.Tensor:
    """SDXL's micro-conditioning ``(1, 6)``: ``[orig_h, orig_w, crop_top, crop_left, target_h, target_w]``."""
    return torch.tensor([[*original_size, *crop_top_left, *target_size]], dtype=torch.float32)


def check_conditioning_sizes(unet: Any, text_encoder_2: Any) -> None:
    """Refuse a UNet whose added-embedding input does not take 6 time ids plus the second encoder's projection."""
    config = unet.config
    if config.get("addition_embed_type") != "text_time":
        raise InputError(
            f"unet: an SDXL pipeline needs a UNet with addition_embed_type='text_time', got "
            f"{config.get('addition_embed_type')!r}"
        )
    expected = 6 * config.addition_time_embed_dim + text_encoder_2.config.projection_dim
    if config.projection_class_embeddings_input_dim != expected:
        raise InputError(
            f"unet: projection_class_embeddings_input_dim is {config.projection_class_embeddings_input_dim}, but 6 "
            f"time ids x {config.addition_time_embed_dim} + text_encoder_2 projection "
            f"{text_encoder_2.config.projection_dim} = {expected}; the UNet and text_encoder_2 do not belong together"
        )


class LayoutXLPipeline(LayoutPipeline):
    r"""Layout-grounded generation on Stable Diffusion XL base components (two CLIP text encoders, a text-time UNet).

    Built by ``LayoutPipeline.from_pretrained(sdxl_folder)`` / ``LayoutPipeline.from_pipe(sdxl_pipe)`` (or this class
    directly); sampling, methods and options are those of :class:`LayoutPipeline`. Defaults: the UNet's native size
    (1024 px for SDXL base), the folder's scheduler, guidance scale 5.0 (diffusers' SDXL default).
    """

    model_cpu_offload_seq = "text_encoder->text_encoder_2->unet->vae"
    default_guidance_scale = SDXL_GUIDANCE_SCALE

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        text_encoder_2: CLIPTextModelWithProjection,
        tokenizer: CLIPTokenizer,
        tokenizer_2: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        force_zeros_for_empty_prompt: bool = True,
    ):
        if text_encoder is None or tokenizer is None:
            raise InputError(
                "text_encoder: this SDXL pipeline has no first text encoder (an SDXL refiner); layoutguide generates "
                "from noise with the SDXL base model only"
            )
        super().__init__(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.register_modules(text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2)
        self.register_to_config(force_zeros_for_empty_prompt=force_zeros_for_empty_prompt)
        check_conditioning_sizes(unet, text_encoder_2)

    @property
    def text_encoders(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        return self.text_encoder, self.text_encoder_2

    @property
    def tokenizers(self) -> tuple[Any, Any]:
        return self.tokenizer, self.tokenizer_2

    @torch.no_grad()
    def encode_prompt(self, prompts: Sequence[str]) -> torch.Tensor:
        """The cross-attention input ``(B, 77, D1 + D2)`` of ``prompts`` (what methods' ``condition`` hooks encode)."""
        return encode_text(self.text_encoders, self.tokenizers, prompts)[0]

    @torch.no_grad()
    def encode_conditioning(
        self, prompts: Sequence[str], size: tuple[int, int]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """Embeddings and ``added_cond_kwargs`` (pooled ``text_embeds``, ``time_ids`` for an image of ``size``).

        With ``force_zeros_for_empty_prompt`` (SDXL base's setting) an empty prompt, which here is only ever an
        unset negative prompt, encodes to zeros as diffusers' SDXL pipeline does for ``negative_prompt=None``."""
        embeddings, pooled = encode_text(self.text_encoders, self.tokenizers, prompts)
        if self.config.get("force_zeros_for_empty_prompt", True):
            empty = torch.tensor([not p.strip() for p in prompts], device=embeddings.device)
            embeddings = torch.where(empty.view(-1, 1, 1), torch.zeros_like(embeddings), embeddings)
            pooled = torch.where(empty.view(-1, 1), torch.zeros_like(pooled), pooled)
        ids = time_ids(size, (0, 0), size).to(device=embeddings.device, dtype=embeddings.dtype)
        return embeddings, {"text_embeds": pooled, "time_ids": ids.repeat(len(prompts), 1)}

    def token_map(self, prompt: str, phrases: Sequence[str], *, on_missing: str = "error") -> TokenMap:
        """Phrase positions, checked to be the same under both tokenizers."""
        return map_phrases_shared(self.tokenizers, prompt, phrases, on_missing=on_missing)  # type: ignore[arg-type]

    def method_with_defaults(
        self, method, options: dict[str, Any] | None = None, preset: str | None = None
    ) -> GuidanceMethod:
        chosen = super().method_with_defaults(method, options, preset)
        if chosen.needs_gated_unet:
            raise MethodOptionError(
                f"method {chosen.name!r}: GLIGEN and ReGround need GLIGEN's gated layers, whose weights exist for "
                "SD 1.4/1.5 only (none for SDXL); on SDXL use a training-free method (refocus, boxdiff, "
                "layout-guidance, attend-excite, zestguide, pww, densediffusion)"
            )
        return chosen

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, output_type: str = "pil"):
        """As :meth:`LayoutPipeline.decode_latents`; a float16 VAE marked ``force_upcast`` (SDXL's, which overflows in
        float16) decodes in float32, as diffusers does."""
        upcast = (
            output_type != "latent"
            and self.vae.dtype == torch.float16
            and bool(self.vae.config.get("force_upcast", False))
        )
        if not upcast:
            return super().decode_latents(latents, output_type)
        self.vae.to(torch.float32)
        try:
            return super().decode_latents(latents.float(), output_type)
        finally:
            self.vae.to(torch.float16)
