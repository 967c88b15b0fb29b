"""Tiny random-weight pipelines built in code (no downloads, no files): for tests, benchmarks of overhead and
examples. Their images mean nothing; their shapes, code paths and timings are those of the real architectures.

    from layoutguide.testing import tiny_pipeline
    pipe = tiny_pipeline()        # the shapes architecture at tiny widths: 16x16 latents, 64 px images
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

from .layout import Layout
from .methods import GradientMethod, GuidanceMethod, StepPlan
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
    parts["unet"] = sd_shaped_unet()
    parts["vae"] = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 4, 8, 8),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=128,
    )
    return parts


def sd_shaped_unet(*, sample_size: int = 16, layers_per_block: int = 1, sd2: bool = False) -> UNet2DConditionModel:
    """Stable Diffusion's UNet block layout at tiny widths: three cross-attention levels and a plain one, the mid block
    at the fourth level. ``sd2``: SD 2.x's linear projections and per-level head counts; ``layers_per_block=2`` and
    ``sample_size`` 64 / 96 give SD's real layer counts at 512 / 768 px (five layers at the 16x16 / 24x24 level)."""
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=layers_per_block,
        cross_attention_dim=32,
        attention_head_dim=(2, 2, 4, 4) if sd2 else 2,
        use_linear_projection=sd2,
        norm_num_groups=4,
    )


def sdxl_shaped_unet(*, sample_size: int = 128) -> UNet2DConditionModel:
    """SDXL's UNet block layout at tiny widths (no attention at the latent's own level, cross-attention at the
    next two, the mid block at the last), without its added text/time embeddings: for layer-selection checks."""
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(8, 8, 16),
        layers_per_block=2,
        transformer_layers_per_block=(1, 2, 2),
        cross_attention_dim=32,
        attention_head_dim=(2, 2, 4),
        use_linear_projection=True,
        norm_num_groups=4,
    )


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


def one_step_guidance(inner: GuidanceMethod, step: int, plan: StepPlan) -> GuidanceMethod:
    """A gradient method with ``inner``'s maps, state, loss and update, guiding at ``step`` only with a fixed
    ``plan`` (the contract's public hooks only): tests drive one guidance step of any method through the pipeline."""

    class OneStep(GradientMethod):
        name = f"{inner.name}@step{step}"
        needs_layout = inner.needs_layout

        def attention_requests(self):
            return inner.attention_requests()

        def activate(self, pipe, ctx):
            return inner.activate(pipe, ctx)

        def plan(self, state, at):
            return plan if at == step else None

        def loss(self, state, at, step_plan, maps):
            return inner.loss(state, at, step_plan, maps)

        def update(self, state, at, step_plan, latents, grad):
            return inner.update(state, at, step_plan, latents, grad)

    return OneStep()


def guide_losses(
    pipe: LayoutPipeline,
    method: GuidanceMethod,
    layout: Layout,
    iterations: int = 8,
    step_size: float = 100.0,
    step: int = 0,
    n_steps: int = 10,
    info: dict[str, Any] | None = None,
) -> list[float]:
    """Run ``iterations`` guidance updates of ``method`` at one fixed step (through the pipeline call); return the
    loss after each."""
    plan = StepPlan(iterations, step_size, info or {"reference_step": 0, "target": None})
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    out = pipe(
        layout=layout,
        method=one_step_guidance(method, step, plan),
        num_inference_steps=n_steps,
        guidance_scale=1.0,
        latents=x,
        output_type="latent",
        progress=False,
    )
    assert out.guidance is not None  # the pipeline always returns its guidance log
    return [losses[0] for losses in out.guidance[step]["losses"]]
