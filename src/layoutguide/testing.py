"""Tiny random-weight pipelines built in code (no downloads, no files): for tests, benchmarks of overhead and
examples. Their images mean nothing; their shapes, code paths and timings are those of the real architectures.

    from layoutguide.testing import tiny_pipeline
    pipe = tiny_pipeline()        # the shapes architecture at tiny widths: 16x16 latents, 64 px images
    xl = tiny_sdxl_pipeline()     # SDXL's block layout and conditioning at tiny widths: 16x16 latents, 128 px
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast

import torch
from diffusers import AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from .layout import Layout
from .methods import GradientMethod, GuidanceMethod, StepPlan
from .pipeline import LayoutPipeline
from .shapes.model import ModelConfig, build_components, build_tokenizer


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


def sdxl_scheduler() -> EulerDiscreteScheduler:
    """SDXL base 1.0's scheduler: Euler with SD's scaled-linear betas and leading timestep spacing."""
    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
        interpolation_type="linear",
        use_karras_sigmas=False,
        prediction_type="epsilon",
    )


def sdxl_tokenizers() -> tuple[Any, Any]:
    """Two CLIP tokenizers over one vocabulary (the shapes words) that differ only in padding, as SDXL's CLIP-L
    (``<|endoftext|>``) and OpenCLIP-bigG (``!``) tokenizers do."""
    second = build_tokenizer()
    second.pad_token = "!"
    return build_tokenizer(), second


def _text_encoder(cls: type, tokenizer: Any, width: int, layers: int, heads: int, projection: int, act: str) -> Any:
    return cls(
        CLIPTextConfig(
            vocab_size=max(len(tokenizer), 49408 if width >= 768 else 0),
            hidden_size=width,
            intermediate_size=width * 4,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            max_position_embeddings=77,
            projection_dim=projection,
            hidden_act=act,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def _sdxl_unet(channels, heads, depth, text_width: int, time_dim: int, pooled: int, groups: int, size: int):
    """SDXL's UNet layout: no attention in the first down block, transformer depth ``depth`` per level."""
    return UNet2DConditionModel(
        sample_size=size,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=channels,
        layers_per_block=2,
        transformer_layers_per_block=depth,
        attention_head_dim=heads,  # diffusers' name; it is the number of heads
        cross_attention_dim=text_width,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=6 * time_dim + pooled,
        norm_num_groups=groups,
    )


def tiny_sdxl_components(seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """SDXL's structure at tiny widths: two text encoders (16 + 32 wide, the second with a 16-d pooled projection),
    a text-time UNet with attention at 1/2 and 1/4 of the latent (depths 1 and 2), an f=8 VAE, SDXL's Euler."""
    tokenizer, tokenizer_2 = sdxl_tokenizers()
    vae = tiny_sd_components(seed)["vae"].to(dtype)
    torch.manual_seed(seed)
    with default_dtype(dtype):
        text_encoder = _text_encoder(CLIPTextModel, tokenizer, 16, 2, 2, 16, "quick_gelu")
        text_encoder_2 = _text_encoder(CLIPTextModelWithProjection, tokenizer_2, 32, 2, 2, 16, "gelu")
        unet = _sdxl_unet((8, 16, 16), (2, 2, 4), (1, 1, 2), 48, 4, 16, 4, size=16)
    return dict(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=sdxl_scheduler(),
    )


def tiny_sdxl_pipeline(seed: int = 0) -> LayoutPipeline:
    """SDXL's conditioning and block layout at tiny widths: 16x16 latents (128 px), attention at 8x8 and 4x4."""
    from .backbones.sdxl import LayoutXLPipeline

    return LayoutXLPipeline(**tiny_sdxl_components(seed))


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Create parameters in ``dtype`` (a 2.6 B-parameter UNet built in bfloat16 never holds its float32 copy)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def sdxl_base_components(seed: int = 0, dtype: torch.dtype = torch.float32, device: str = "cpu") -> dict[str, Any]:
    """SDXL base 1.0's architecture with random weights, built in ``dtype``: the UNet of
    ``stabilityai/stable-diffusion-xl-base-1.0`` (2.57 B parameters: 320/640/1280 channels, transformer depths
    1/2/10, 2048-d cross-attention, 256-d time ids, 1280-d pooled text), CLIP ViT-L/14 and OpenCLIP ViT-bigG/14
    text encoders (123 M and 695 M), SDXL's VAE (83.7 M, scaling factor 0.13025, float32 upcast) and its Euler
    scheduler. Tokenizers are the shapes vocabulary's (no download): the token ids differ from CLIP's, the compute
    does not. ``device="meta"`` builds the modules without storage (sizes and layer counts in seconds)."""
    tokenizer, tokenizer_2 = sdxl_tokenizers()
    torch.manual_seed(seed)
    with default_dtype(dtype), torch.device(device):
        text_encoder = _text_encoder(CLIPTextModel, tokenizer, 768, 12, 12, 768, "quick_gelu")
        text_encoder_2 = _text_encoder(CLIPTextModelWithProjection, tokenizer_2, 1280, 32, 20, 1280, "gelu")
        unet = _sdxl_unet((320, 640, 1280), (5, 10, 20), (1, 2, 10), 2048, 256, 1280, 32, size=128)
        vae = AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=4,
            norm_num_groups=32,
            sample_size=1024,
            scaling_factor=0.13025,
            force_upcast=True,
        )
    return dict(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=sdxl_scheduler(),
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


def sd15_unet(*, gated: bool = False) -> UNet2DConditionModel:
    """Stable Diffusion 1.5's UNet at full size with random weights (``gated``: GLIGEN's fusers added); under
    ``torch.device("meta")`` it is built without storage, for counting."""
    return UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
        attention_type="gated" if gated else "default",
    )


def sd15_random_pipeline(seed: int = 0, *, gated: bool = False, dtype: torch.dtype = torch.float32) -> LayoutPipeline:
    """Stable Diffusion 1.5's architecture at full size with random weights (``gated``: GLIGEN's fusers and position
    net added), built in code: for measuring cost at real model size without downloading weights. The text encoder
    is CLIP ViT-L/14's text tower (12 layers, width 768) over the shapes world's word-level tokenizer; the VAE is
    SD's (f=8), so 512 px images have 64x64 latents. About 1.1 G parameters, 4.3 GB in fp32."""
    from transformers import CLIPTextConfig, CLIPTextModel

    from .shapes.model import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    )
    unet = sd15_unet(gated=gated)
    parts = dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=sd_scheduler())
    for module in cast(list[torch.nn.Module], [unet, vae, text_encoder]):
        module.requires_grad_(False).eval()
        if dtype != torch.float32:
            module.to(dtype)
    return LayoutPipeline(**parts)


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
