"""SD3/SD3.5 and FLUX.1 on the DiT loop (:mod:`.dit`): each family's text encoding, token maps, joint-sequence layout,
forward arguments and timestep schedule, as diffusers' ``StableDiffusion3Pipeline`` and ``FluxPipeline`` build them.

SD3: CLIP-L and CLIP-G penultimate hidden states concatenated on the feature axis (77 tokens), zero-padded to T5's
width and followed by T5's tokens (256 by default; zeros when the folder has no T5); the pooled projections of both
CLIPs concatenated; the joint sequence is ``[image, text]``. Token maps index the CLIP segment (both CLIPs cut a
prompt the same, as on SDXL); region masks also take the phrase's T5 tokens. Classifier-free guidance, 7.0.

FLUX: T5 tokens (512) as the text sequence, CLIP-L's pooled output, the joint sequence ``[text, image]``; latents
packed as 2x2 patches with RoPE ids (image: row, column; text: zeros); the guidance scale enters the distilled
guidance embedding (3.5; FLUX.1-dev), not a second forward; timesteps ``linspace(1, 1/n, n)`` shifted by ``mu``,
linear in the image-token count. Token maps index T5 positions, shown one column right (prompt position
``p`` = T5 index ``p - 1``) since token-map methods drop column 0 as a start token T5 does not have.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel, SD3Transformer2DModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from transformers import CLIPTextModel, CLIPTextModelWithProjection, T5EncoderModel

from ..joint_attention import JointLayout
from ..tokens import TokenMap, map_phrases, map_phrases_shared
from .dit import LayoutDiTPipeline, sequence_positions

SD3_T5_TOKENS = 256  # diffusers' StableDiffusion3Pipeline max_sequence_length default
FLUX_T5_TOKENS = 512  # FluxPipeline's default (FLUX.1-dev)


def _ids(tokenizer: Any, prompts: Sequence[str], length: int, device) -> torch.Tensor:
    return tokenizer(
        list(prompts), padding="max_length", max_length=length, truncation=True, return_tensors="pt"
    ).input_ids.to(device)


def _t5_length(tokenizer: Any, default: int) -> int:
    return min(int(tokenizer.model_max_length), default)


def encode_sd3_text(
    clips: Sequence[Any], clip_tokenizers: Sequence[Any], t5: tuple[Any, Any, int], width: int, prompts: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """SD3's text conditioning, as diffusers' ``StableDiffusion3Pipeline`` builds it: both CLIPs' penultimate states
    concatenated (77 tokens), zero-padded to ``width`` and followed by T5's states (``t5`` = (encoder or None,
    tokenizer, length); zeros without an encoder), and both CLIPs' pooled projections concatenated. The same function
    serves sampling and training (the shapes MMDiT), so both see one encoding."""
    hidden, pooled = [], []
    for encoder, tokenizer in zip(clips, clip_tokenizers):
        out = encoder(_ids(tokenizer, prompts, tokenizer.model_max_length, encoder.device), output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        pooled.append(out[0])
    clip = torch.cat(hidden, -1)
    t5_encoder, t5_tokenizer, length = t5
    if t5_encoder is not None:
        t5_states = t5_encoder(_ids(t5_tokenizer, prompts, length, t5_encoder.device))[0].to(clip.dtype)
    else:
        t5_states = clip.new_zeros(len(prompts), length, width)
    clip = torch.nn.functional.pad(clip, (0, t5_states.shape[-1] - clip.shape[-1]))
    return torch.cat([clip, t5_states], 1), torch.cat(pooled, -1)


class LayoutSD3Pipeline(LayoutDiTPipeline):
    r"""Layout-grounded generation on Stable Diffusion 3 / 3.5 components (``SD3Transformer2DModel``, CLIP-L, CLIP-G,
    optional T5, ``FlowMatchEulerDiscreteScheduler``). Build it with ``LayoutPipeline.from_pretrained(folder)``."""

    model_cpu_offload_seq = "text_encoder->text_encoder_2->text_encoder_3->transformer->vae"  # type: ignore[assignment]
    _optional_components = ["text_encoder_3", "tokenizer_3"]
    default_guidance_scale = 7.0
    default_image_size = 1024

    def __init__(
        self,
        transformer: SD3Transformer2DModel,
        scheduler: FlowMatchEulerDiscreteScheduler,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModelWithProjection,
        tokenizer: Any,
        text_encoder_2: CLIPTextModelWithProjection,
        tokenizer_2: Any,
        text_encoder_3: T5EncoderModel | None = None,
        tokenizer_3: Any = None,
    ):
        DiffusionPipeline.__init__(self)
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            text_encoder_3=text_encoder_3,
            tokenizer=tokenizer,
            tokenizer_2=tokenizer_2,
            tokenizer_3=tokenizer_3,
            transformer=transformer,
            scheduler=scheduler,
        )
        parts: Any = self  # diffusers registers the modules at run time: mypy cannot type them
        self.vae_scale_factor = 2 ** (len(parts.vae.config.block_out_channels) - 1)
        self.default_image_size = int(parts.transformer.config.sample_size) * self.vae_scale_factor
        self.model_defaults: dict[str, Any] = {}

    @property
    def t5_tokens(self) -> int:
        return _t5_length(self.tokenizer_3, SD3_T5_TOKENS) if self.tokenizer_3 is not None else SD3_T5_TOKENS

    def encode_text(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 77 + T5, D)`` joint-attention text and ``(B, P1 + P2)`` pooled projections."""
        return encode_sd3_text(
            (self.text_encoder, self.text_encoder_2),
            (self.tokenizer, self.tokenizer_2),
            (self.text_encoder_3, self.tokenizer_3, self.t5_tokens),
            int(self.transformer.config.joint_attention_dim),
            prompts,
        )

    @torch.no_grad()
    def encode_prompt(self, prompts: Sequence[str]) -> torch.Tensor:
        return self.encode_text(prompts)[0]

    @torch.no_grad()
    def encode_conditioning(self, prompts: Sequence[str], size: tuple[int, int]):
        embeddings, pooled = self.encode_text(prompts)
        return embeddings, {"pooled": pooled}

    def token_map(self, prompt: str, phrases: Sequence[str], *, on_missing: str = "error") -> TokenMap:
        return map_phrases_shared((self.tokenizer, self.tokenizer_2), prompt, phrases, on_missing=on_missing)  # type: ignore[arg-type]

    def text_regions(self, token_map: TokenMap, phrases: Sequence[str]) -> tuple[tuple[int, ...], ...]:
        clip = token_map.indices
        if self.text_encoder_3 is None:  # the T5 segment is zeros
            return clip
        t5 = map_phrases(self.tokenizer_3, token_map.prompt, phrases).indices
        offset = self.tokenizer.model_max_length
        return tuple(tuple(sorted(set(c) | set(t))) for c, t in zip(clip, sequence_positions(t5, offset)))

    def text_words(self, token_map: TokenMap) -> tuple[int, ...]:
        clip = (0, *token_map.word_positions(self.tokenizer.model_max_length))  # start token and words
        if self.text_encoder_3 is None:
            return clip
        t5 = self.tokenizer_3(token_map.prompt, max_length=self.t5_tokens, truncation=True).input_ids
        offset = self.tokenizer.model_max_length
        return (*clip, *(offset + i for i in range(len(t5) - 1)))  # T5 has no start token; its end token is last

    def text_layout(self) -> JointLayout:
        return sd3_text_layout(self.tokenizer.model_max_length, self.t5_tokens)

    def set_timesteps(self, num_steps: int, latent_hw: tuple[int, int]) -> torch.Tensor:
        extra = {}
        if self.scheduler.config.get("use_dynamic_shifting", False):
            extra["mu"] = flux_mu(self.scheduler, latent_hw[0] * latent_hw[1] // 4)
        self.scheduler.set_timesteps(num_steps, device=self._execution_device, **extra)
        return self.scheduler.timesteps

    def denoise(self, x, t, embeddings, mask=None, added=None, extra=None) -> torch.Tensor:
        assert added is not None
        transformer = self.transformer
        timestep = torch.as_tensor(t, device=x.device).float().expand(x.shape[0])
        return transformer(
            hidden_states=x.to(transformer.dtype),
            timestep=timestep,
            encoder_hidden_states=embeddings.to(transformer.dtype),
            pooled_projections=added["pooled"].to(transformer.dtype),
            joint_attention_kwargs=extra,
            return_dict=False,
        )[0]


def sd3_text_layout(clip_tokens: int, t5_tokens: int) -> JointLayout:
    """SD3's joint sequence: image tokens, then the CLIP context (``clip_tokens``) and the T5 one; a ``text`` map
    presents the CLIP columns, where a phrase's positions are the same for every method (and for training)."""
    return JointLayout(clip_tokens + t5_tokens, text_first=False, text_columns=tuple(range(clip_tokens)))


def flux_mu(scheduler: Any, image_tokens: int) -> float:
    """FLUX's timestep shift: linear in the image-token count, from the scheduler's config (diffusers'
    ``calculate_shift``: 0.5 at 256 tokens, 1.15 at 4096)."""
    config = scheduler.config
    base_len, max_len = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    base_shift, max_shift = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
    slope = (max_shift - base_shift) / (max_len - base_len)
    return image_tokens * slope + base_shift - slope * base_len


def pack(latents: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` -> FLUX's tokens ``(B, h/2 * w/2, 4C)`` (2x2 patches, row-major)."""
    b, c, h, w = latents.shape
    return latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
    """The inverse of :func:`pack`."""
    b, _, d = tokens.shape
    h, w = latent_hw
    return tokens.view(b, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, d // 4, h, w)


def image_ids(latent_hw: tuple[int, int], device) -> torch.Tensor:
    """FLUX's RoPE ids of the image tokens: ``(h/2 * w/2, 3)`` = (0, row, column)."""
    h, w = latent_hw[0] // 2, latent_hw[1] // 2
    ids = torch.zeros(h, w, 3)
    ids[..., 1] = torch.arange(h)[:, None]
    ids[..., 2] = torch.arange(w)[None, :]
    return ids.reshape(h * w, 3).to(device)


class LayoutFluxPipeline(LayoutDiTPipeline):
    r"""Layout-grounded generation on FLUX.1 components (``FluxTransformer2DModel``, CLIP-L pooled, T5,
    ``FlowMatchEulerDiscreteScheduler``). Build it with ``LayoutPipeline.from_pretrained(folder)``."""

    model_cpu_offload_seq = "text_encoder->text_encoder_2->transformer->vae"  # type: ignore[assignment]
    _optional_components: list[str] = []
    default_guidance_scale = 3.5
    default_image_size = 1024
    uses_cfg = False

    def __init__(
        self,
        scheduler: FlowMatchEulerDiscreteScheduler,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: Any,
        text_encoder_2: T5EncoderModel,
        tokenizer_2: Any,
        transformer: FluxTransformer2DModel,
    ):
        DiffusionPipeline.__init__(self)
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=tokenizer,
            tokenizer_2=tokenizer_2,
            transformer=transformer,
            scheduler=scheduler,
        )
        parts: Any = self  # diffusers registers the modules at run time: mypy cannot type them
        self.vae_scale_factor = 2 ** (len(parts.vae.config.block_out_channels) - 1)
        self.model_defaults: dict[str, Any] = {}

    @property
    def t5_tokens(self) -> int:
        return _t5_length(self.tokenizer_2, FLUX_T5_TOKENS)

    @torch.no_grad()
    def encode_prompt(self, prompts: Sequence[str]) -> torch.Tensor:
        ids = _ids(self.tokenizer_2, prompts, self.t5_tokens, self.text_encoder_2.device)
        return self.text_encoder_2(ids)[0]

    @torch.no_grad()
    def encode_conditioning(self, prompts: Sequence[str], size: tuple[int, int]):
        ids = _ids(self.tokenizer, prompts, self.tokenizer.model_max_length, self.text_encoder.device)
        pooled = self.text_encoder(ids).pooler_output
        return self.encode_prompt(prompts), {"pooled": pooled}

    def guidance_inputs(self, added: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
        if not self.transformer.config.guidance_embeds:
            return added
        return {**added, "guidance": torch.full((len(added["pooled"]),), float(scale), device=added["pooled"].device)}

    def token_map(self, prompt: str, phrases: Sequence[str], *, on_missing: str = "error") -> TokenMap:
        t5 = map_phrases(self.tokenizer_2, prompt, phrases, on_missing=on_missing)  # type: ignore[arg-type]
        start = self.tokenizer_2.pad_token_id  # an empty column stands where a start token would
        return TokenMap(t5.prompt, (start, *t5.input_ids), sequence_positions(t5.indices, 1), pads_with_end=False)

    def text_regions(self, token_map: TokenMap, phrases: Sequence[str]) -> tuple[tuple[int, ...], ...]:
        return sequence_positions(token_map.indices, -1)

    def text_words(self, token_map: TokenMap) -> tuple[int, ...]:
        return tuple(p - 1 for p in token_map.word_positions(self.t5_tokens + 1))  # shown one column right

    def text_layout(self) -> JointLayout:
        n = self.t5_tokens
        return JointLayout(n, text_first=True, text_columns=(None, *range(n)))

    def set_timesteps(self, num_steps: int, latent_hw: tuple[int, int]) -> torch.Tensor:
        sigmas = np.linspace(1.0, 1 / num_steps, num_steps)
        extra = {}
        if self.scheduler.config.get("use_dynamic_shifting", False):
            extra["mu"] = flux_mu(self.scheduler, latent_hw[0] * latent_hw[1] // 4)
        self.scheduler.set_timesteps(sigmas=sigmas, device=self._execution_device, **extra)
        return self.scheduler.timesteps

    def denoise(self, x, t, embeddings, mask=None, added=None, extra=None) -> torch.Tensor:
        assert added is not None
        transformer = self.transformer
        dtype = transformer.dtype
        latent_hw = (x.shape[-2], x.shape[-1])
        timestep = torch.as_tensor(t, device=x.device).float().expand(x.shape[0]) / 1000
        guidance = added.get("guidance")
        out = transformer(
            hidden_states=pack(x).to(dtype),
            timestep=timestep.to(dtype),
            guidance=None if guidance is None else guidance.to(dtype),
            pooled_projections=added["pooled"].to(dtype),
            encoder_hidden_states=embeddings.to(dtype),
            txt_ids=torch.zeros(embeddings.shape[1], 3, device=x.device, dtype=dtype),
            img_ids=image_ids(latent_hw, x.device).to(dtype),
            joint_attention_kwargs=extra,
            return_dict=False,
        )[0]
        return unpack(out, latent_hw)
