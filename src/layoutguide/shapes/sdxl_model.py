"""The shapes-world model with Stable Diffusion XL's architecture, scaled down, and its trainer.

What is SDXL's and kept (diffusers' ``stabilityai/stable-diffusion-xl-base-1.0`` configs):
- two CLIP text encoders whose penultimate hidden states are concatenated on the feature axis (CLIP-L 768 +
  OpenCLIP-bigG 1280 -> 2048; here 48 + 80 -> 128), the second a ``CLIPTextModelWithProjection`` whose projected
  end-token embedding is the pooled text embedding (1280; here 80);
- added conditioning ``addition_embed_type="text_time"``: the pooled embedding and six size ids (original size,
  crop top-left, target size), each id through a sinusoidal embedding of ``addition_time_embed_dim`` (256; here 32);
- the UNet block structure: no attention in the first down block (``DownBlock2D``), transformer depth growing in the
  deeper blocks (SDXL - / 2 / 10, mid 10; here - / 2 / 2, mid 2), linear projections in the transformers, channels
  in SDXL's 1 : 2 : 4 ratio;
- the second tokenizer pads with ``!`` (OpenCLIP's padding), the first with the end token;
- the unconditional branch may be all zeros (SDXL's ``force_zeros_for_empty_prompt``).

What is the shapes world's: the word-level tokenizer, the cosine DDIM schedule and a factor-2 autoencoder. SDXL
keeps SD's factor-8 autoencoder but samples at twice SD's side (1024 vs 512), so its latent grid is twice SD's and
its two attention resolutions (64 and 32 at 1024 px) are the same grids as SD's two finest (at 512 px). The shapes
SD model has a factor-4 autoencoder (16x16 latents, attention at 16x16 and 8x8); the world stays 64 px, so this
model's factor-2 autoencoder doubles the latent side (32x32) and its attention lands on the same 16x16 and 8x8 grids.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any

import torch

from .model import build_scheduler, build_tokenizer, build_vae

ZERO_UNCOND_SHARE = 0.5  # of the empty captions in training: zero embeddings (SDXL's uncond) instead of encoding ""


@dataclasses.dataclass
class SDXLModelConfig:
    """Widths of the SDXL-architecture shapes model. ``tiny()`` gives the random-weight test model."""

    image_size: int = 64
    latent_channels: int = 4
    vae_channels: tuple[int, ...] = (16, 32)  # two blocks: one downsample, factor 2 (32x32 latents)
    unet_channels: tuple[int, ...] = (32, 64, 128)  # SDXL's 320 / 640 / 1280: 1 : 2 : 4
    # SDXL has 2; the shapes SD model has 1 where SD has 2. With 1, this UNet has the shapes SD UNet's parameter count
    # (5.87 M vs 5.93 M); a training step costs 1.4-1.7x the SD one (its first block runs at 32x32;
    # benchmarks/sdxl_shapes_step_time.py, docs/models/shapes-sdxl.md).
    layers_per_block: int = 1
    transformer_depth: tuple[int, ...] = (0, 2, 2)  # per down block; the mid block takes the last; SDXL 0, 2, 10
    head_dim: int = 32  # SDXL: 64 (5 / 10 / 20 heads)
    text_width: int = 48  # CLIP-L 768
    text_width_2: int = 80  # OpenCLIP-bigG 1280; also its projection (pooled) width, as in SDXL
    text_layers: int = 3  # the penultimate layer's states are used, as in SDXL
    text_heads: int = 4
    time_embed_dim: int = 32  # addition_time_embed_dim, SDXL 256
    norm_groups: int = 16

    @classmethod
    def tiny(cls) -> SDXLModelConfig:
        return cls(
            vae_channels=(8, 16),
            unet_channels=(16, 32, 32),
            layers_per_block=1,
            transformer_depth=(0, 2, 2),
            head_dim=8,
            text_width=16,
            text_width_2=16,
            text_layers=2,
            text_heads=2,
            time_embed_dim=8,
            norm_groups=8,
        )

    @property
    def cross_attention_dim(self) -> int:
        return self.text_width + self.text_width_2


def _text_encoder(config: SDXLModelConfig, tokenizer: Any, width: int, projection: bool) -> torch.nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=width * 4,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        max_position_embeddings=77,
        projection_dim=width,
        hidden_act="gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModelWithProjection(text_config) if projection else CLIPTextModel(text_config)


def build_sdxl_components(config: SDXLModelConfig | None = None, *, seed: int = 0) -> dict[str, Any]:
    """Fresh (random-weight) components of a ``StableDiffusionXLPipeline``: unet, vae, text_encoder(_2),
    tokenizer(_2), scheduler."""
    from diffusers import UNet2DConditionModel

    config = config or SDXLModelConfig()
    tokenizer = build_tokenizer()
    tokenizer_2 = build_tokenizer()
    tokenizer_2.pad_token = "!"  # OpenCLIP's padding, as SDXL's second tokenizer
    torch.manual_seed(seed)
    text_encoder = _text_encoder(config, tokenizer, config.text_width, projection=False)
    text_encoder_2 = _text_encoder(config, tokenizer_2, config.text_width_2, projection=True)
    vae = build_vae(config)
    n = len(config.vae_channels)
    depth = list(config.transformer_depth)
    down = tuple("DownBlock2D" if d == 0 else "CrossAttnDownBlock2D" for d in depth)
    unet = UNet2DConditionModel(
        sample_size=config.image_size // 2 ** (n - 1),
        in_channels=config.latent_channels,
        out_channels=config.latent_channels,
        down_block_types=down,
        up_block_types=tuple(b.replace("Down", "Up") for b in reversed(down)),
        block_out_channels=config.unet_channels,
        layers_per_block=config.layers_per_block,
        transformer_layers_per_block=[max(1, d) for d in depth],
        # diffusers' name for the number of heads (SDXL's config uses it so: 5, 10, 20)
        attention_head_dim=[max(1, c // config.head_dim) for c in config.unet_channels],
        cross_attention_dim=config.cross_attention_dim,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=config.time_embed_dim,
        projection_class_embeddings_input_dim=config.text_width_2 + 6 * config.time_embed_dim,
        norm_num_groups=config.norm_groups,
    )
    scheduler = build_scheduler()
    return dict(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        scheduler=scheduler,
    )


def encode_prompts(
    tokenizers: Sequence[Any], encoders: Sequence[torch.nn.Module], captions: list[str], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL's text conditioning, as diffusers' ``StableDiffusionXLPipeline.encode_prompt`` builds it: each
    encoder's penultimate hidden states, concatenated on the feature axis ``(B, 77, D1 + D2)``, and the last
    encoder's projected end-token embedding ``(B, D2)`` (the pooled embedding)."""
    states, pooled = [], None
    for tokenizer, encoder in zip(tokenizers, encoders):
        ids = tokenizer(
            captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        out = encoder(ids.to(device), output_hidden_states=True)
        pooled = out[0]
        states.append(out.hidden_states[-2])
    assert pooled is not None
    return torch.cat(states, dim=-1), pooled


def size_ids(batch: int, image_size: int, device: torch.device) -> torch.Tensor:
    """SDXL's added time ids ``(B, 6)``: original size, crop top-left, target size. Every shapes scene is rendered
    whole at its size, so original = target = the image size and the crop is (0, 0), which is also what the SDXL
    pipeline passes by default."""
    ids = torch.tensor([image_size, image_size, 0, 0, image_size, image_size], dtype=torch.float32, device=device)
    return ids.expand(batch, 6)


def zero_empty_captions(
    hidden: torch.Tensor, pooled: torch.Tensor, captions: list[str], rng: random.Random | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the conditioning of empty captions, as SDXL's pipeline does for its unconditional branch
    (``force_zeros_for_empty_prompt``). With ``rng`` (training) only a :data:`ZERO_UNCOND_SHARE` of them, so the
    model also learns the encoding of "" as unconditional and either pipeline convention samples it."""
    keep = torch.tensor(
        [bool(c) or (rng is not None and rng.random() >= ZERO_UNCOND_SHARE) for c in captions], device=hidden.device
    )
    return hidden * keep[:, None, None], pooled * keep[:, None]
