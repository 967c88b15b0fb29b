"""Shared fixtures: tiny random-weight pipelines built in code and saved to local folders (no downloads)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from layoutguide.layout import Layout, Region
from layoutguide.loading import load_pipeline
from layoutguide.pipeline import LayoutPipeline
from layoutguide.testing import sd_scheduler, tiny_sd_pipeline, tiny_shapes_components  # noqa: F401 (tests import)
from layoutguide.testing import sharp_pipeline as build_sharp_pipeline
from layoutguide.testing import tiny_pipeline as build_tiny_pipeline


@pytest.fixture(scope="session")
def tiny_pipe() -> LayoutPipeline:
    """The shapes architecture at tiny widths: 16x16 latents, attention at 16x16, 8x8 and 4x4 (mid)."""
    return build_tiny_pipeline()


@pytest.fixture(scope="session")
def tiny_sd_pipe() -> LayoutPipeline:
    return tiny_sd_pipeline()


@pytest.fixture(scope="session")
def shipped() -> LayoutPipeline:
    """The shipped shapes model, loaded once for every test that uses it."""
    return load_pipeline(device="cpu")


@pytest.fixture(scope="session")
def shipped_gligen() -> LayoutPipeline:
    """The shipped shapes GLIGEN model, loaded once for every test that uses it."""
    return load_pipeline("shapes-gligen", device="cpu")


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
    """A tiny pipeline with sharpened attention (q/k scaled by 4): guidance gradients not vanishingly small."""
    return build_sharp_pipeline()


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
