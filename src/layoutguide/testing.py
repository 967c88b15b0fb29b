"""Tiny random-weight pipelines built in code (no downloads, no files): for tests, benchmarks of overhead and
examples. Their images mean nothing; their shapes, code paths and timings are those of the real architectures.

    from layoutguide.testing import tiny_pipeline
    pipe = tiny_pipeline()        # the shapes architecture at tiny widths: 16x16 latents, 64 px images
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

from .pipeline import LayoutPipeline
from .shapes.model import ModelConfig, build_components


def sd_scheduler() -> DDIMScheduler:
    """Stable Diffusion 1.x's DDIM settings (the shapes model's cosine schedule makes random weights explode)."""
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def tiny_shapes_components(seed: int = 0, *, gated: bool = False) -> dict[str, Any]:
    """The shapes model's components at tiny widths (``gated``: with GLIGEN's gated layers), SD's DDIM scheduler."""
    return {**build_components(ModelConfig.tiny(), seed=seed, gated=gated), "scheduler": sd_scheduler()}


def tiny_sd_components(seed: int = 0) -> dict[str, Any]:
    """Stable Diffusion's block layout (3 cross-attention down blocks + a plain one, f=8 VAE), tiny widths."""
    parts = tiny_shapes_components(seed)
    torch.manual_seed(seed)
    parts["unet"] = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    parts["vae"] = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 4, 8, 8),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=128,
    )
    return parts


def tiny_pipeline(seed: int = 0, *, gated: bool = False) -> LayoutPipeline:
    """The shapes architecture at tiny widths: 16x16 latents, attention at 16x16, 8x8 and 4x4 (mid)."""
    return LayoutPipeline(**tiny_shapes_components(seed, gated=gated))


def tiny_sd_pipeline(seed: int = 0) -> LayoutPipeline:
    """Stable Diffusion 1.x's UNet and VAE layout at tiny widths."""
    return LayoutPipeline(**tiny_sd_components(seed))


def sharp_pipeline(seed: int = 0, factor: float = 4.0) -> LayoutPipeline:
    """A tiny pipeline with sharpened attention (q/k scaled by ``factor``) so that guidance gradients are not
    vanishingly small."""
    parts = tiny_shapes_components(seed)
    unet = parts["unet"]
    with torch.no_grad():
        for name, module in unet.named_modules():
            if name.endswith(("attn1", "attn2")):
                module.to_q.weight.mul_(factor)
                module.to_k.weight.mul_(factor)
    unet.requires_grad_(False)
    return LayoutPipeline(**parts)
