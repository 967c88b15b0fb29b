"""Shared fixtures: tiny random-weight pipelines built in code and saved to local folders (no downloads)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from layoutguide.layout import Layout, Region
from layoutguide.pipeline import LayoutPipeline
from layoutguide.shapes.model import ModelConfig, build_components


def sd_scheduler():
    """Stable Diffusion 1.x's DDIM settings (the shapes model's cosine schedule makes random weights explode)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def tiny_shapes_components(seed: int = 0) -> dict:
    return {**build_components(ModelConfig.tiny(), seed=seed), "scheduler": sd_scheduler()}


def tiny_sd_components(seed: int = 0) -> dict:
    """Stable Diffusion's block layout (3 cross-attention down blocks + a plain one, f=8 VAE), tiny widths."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

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


@pytest.fixture(scope="session")
def tiny_pipe() -> LayoutPipeline:
    """The shapes architecture at tiny widths: 16x16 latents, attention at 16x16, 8x8 and 4x4 (mid)."""
    return LayoutPipeline(**tiny_shapes_components())


@pytest.fixture(scope="session")
def tiny_sd_pipe() -> LayoutPipeline:
    return LayoutPipeline(**tiny_sd_components())


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, tiny_pipe) -> str:
    path = tmp_path_factory.mktemp("tiny-pipe")
    tiny_pipe.save_pretrained(path)
    return str(path)


@pytest.fixture
def two_region_layout() -> Layout:
    return Layout(
        prompt="a red circle and a blue square",
        regions=(Region("red circle", box=(0.05, 0.1, 0.45, 0.6)), Region("blue square", box=(0.55, 0.4, 0.95, 0.9))),
        width=64,
        height=64,
    )


@pytest.fixture(scope="session")
def sharp_pipe() -> LayoutPipeline:
    """A tiny pipeline with sharpened attention (q/k scaled by 4): guidance gradients are not vanishingly small."""
    pipe = LayoutPipeline(**tiny_shapes_components(seed=0))
    with torch.no_grad():
        for name, module in pipe.unet.named_modules():
            if name.endswith(("attn1", "attn2")):
                module.to_q.weight.mul_(4)
                module.to_k.weight.mul_(4)
    pipe.unet.requires_grad_(False)
    return pipe


def one_step_guidance(inner, step: int, plan):
    """A gradient method with ``inner``'s maps, state, loss and update, guiding at ``step`` only with a fixed
    ``plan`` (the contract's public hooks only)."""
    from layoutguide.methods import GradientMethod

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
    pipe, method, layout, iterations: int = 8, step_size: float = 100.0, step: int = 0, n_steps: int = 10, info=None
):
    """Run ``iterations`` guidance updates of ``method`` at one fixed step (through the pipeline call); return the
    loss after each."""
    from layoutguide.methods import StepPlan

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
    return [losses[0] for losses in out.guidance[step]["losses"]]
