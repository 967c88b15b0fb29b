"""The shapes-world model with Stable Diffusion 3's architecture (an MMDiT), scaled down.

What is SD3's and kept (diffusers' ``stabilityai/stable-diffusion-3.5-medium`` configs): ``SD3Transformer2DModel``
(joint attention over ``[image, text]`` tokens, 2x2 patches, AdaLN-zero timestep and pooled-text conditioning, the
last block context-pre-only, RMS q/k norms as SD3.5); three text encoders: CLIP-L and OpenCLIP-bigG stand-ins whose
penultimate states are concatenated (768 + 1280; here 48 + 80 = 128) and whose projections make the pooled text, and
a T5 encoder whose states follow them in the text sequence (4096 wide, 256 tokens; here 128 wide, 32 tokens); the
second CLIP tokenizer pads with ``!``; rectified flow (``x_t = (1 - s) x_0 + s e``, velocity target ``e - x_0``)
with logit-normal training times (SD3 paper, m = 0, s = 1) and a flow-matching Euler sampler.

What is the shapes world's: word-level tokenizers over its vocabulary (CLIP-style and T5-style), and the factor-2
autoencoder of the SDXL shapes model: 64 px scenes give 32x32 latents and, with 2x2 patches, a 16x16 token grid,
the grid the shapes models' attention maps are read at. Sampling shift 1.0 (SD3's 3.0 is for 4096 image tokens;
this model has 256).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .model import build_tokenizer, build_vae
from .sdxl_model import _text_encoder  # the SDXL shapes model's CLIP builder: SD3's two CLIPs are SDXL's


@dataclasses.dataclass
class MMDiTModelConfig:
    """Widths of the MMDiT shapes model. ``tiny()`` gives the random-weight test model."""

    image_size: int = 64
    latent_channels: int = 4
    vae_channels: tuple[int, ...] = (16, 32)  # factor 2: 32x32 latents, 16x16 tokens
    layers: int = 8  # SD3.5-medium: 24
    heads: int = 4  # SD3.5-medium: 24 of 64
    head_dim: int = 32
    text_width: int = 48  # CLIP-L 768
    text_width_2: int = 80  # OpenCLIP-bigG 1280; both are also their projections' widths, as in SD3
    text_layers: int = 3  # the penultimate layer's states are used, as in SD3
    text_heads: int = 4
    t5_layers: int = 2
    t5_tokens: int = 32  # SD3: 256
    norm_groups: int = 16

    @classmethod
    def tiny(cls) -> MMDiTModelConfig:
        return cls(
            vae_channels=(8, 16),
            layers=2,
            heads=2,
            head_dim=8,
            text_width=8,
            text_width_2=8,
            text_layers=2,
            text_heads=2,
            t5_layers=1,
            t5_tokens=16,
            norm_groups=8,
        )

    @property
    def width(self) -> int:
        """The transformer's width, also T5's (SD3's joint_attention_dim is T5's 4096)."""
        return self.heads * self.head_dim


def build_scheduler():
    """Flow-matching Euler, shift 1 (see the module docstring)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)


def build_mmdit_components(config: MMDiTModelConfig | None = None, *, seed: int = 0) -> dict[str, Any]:
    """Fresh (random-weight) components of a ``StableDiffusion3Pipeline``: transformer, vae, text_encoder(_2, _3),
    tokenizer(_2, _3), scheduler."""
    from diffusers import SD3Transformer2DModel
    from transformers import T5Config, T5EncoderModel

    from ..testing_dit import t5_tokenizer

    config = config or MMDiTModelConfig()
    tokenizer, tokenizer_2 = build_tokenizer(), build_tokenizer()
    tokenizer_2.pad_token = "!"  # OpenCLIP's padding, as SD3's second tokenizer
    tokenizer_3 = t5_tokenizer(config.t5_tokens)
    torch.manual_seed(seed)
    latent_side = config.image_size // 2 ** (len(config.vae_channels) - 1)
    transformer = SD3Transformer2DModel(
        sample_size=latent_side,
        patch_size=2,
        in_channels=config.latent_channels,
        out_channels=config.latent_channels,
        num_layers=config.layers,
        attention_head_dim=config.head_dim,
        num_attention_heads=config.heads,
        joint_attention_dim=config.width,
        caption_projection_dim=config.width,
        pooled_projection_dim=config.text_width + config.text_width_2,
        pos_embed_max_size=latent_side // 2,
        qk_norm="rms_norm",
    )
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer_3),
            d_model=config.width,
            d_kv=config.head_dim,
            d_ff=4 * config.width,
            num_layers=config.t5_layers,
            num_heads=config.heads,
            pad_token_id=tokenizer_3.pad_token_id,
            dropout_rate=0.0,
        )
    )
    vae = build_vae(config)
    vae.register_to_config(shift_factor=0.0)  # SD3's pipelines read it; the shapes autoencoder needs no shift
    return dict(
        transformer=transformer,
        vae=vae,
        text_encoder=_text_encoder(config, tokenizer, config.text_width, projection=True),  # type: ignore[arg-type]
        text_encoder_2=_text_encoder(config, tokenizer_2, config.text_width_2, projection=True),  # type: ignore[arg-type]
        text_encoder_3=t5,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        tokenizer_3=tokenizer_3,
        scheduler=build_scheduler(),
    )
