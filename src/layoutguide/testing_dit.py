"""Tiny random-weight SD3 and FLUX.1 pipelines built in code, tokenizers included (no downloads, no files): for
tests and overhead benchmarks of the DiT loop. Their images mean nothing; their code paths are the real ones.

    from layoutguide.testing_dit import tiny_sd3_pipeline, tiny_flux_pipeline
    sd3 = tiny_sd3_pipeline()    # SD3's three text encoders, joint blocks, CFG: 16x16 latents, 128 px, 8x8 tokens
    sd35 = tiny_sd3_pipeline(sd35=True)  # SD3.5's blocks: an image-only attn2 in block 0, RMS q/k norms
    flux = tiny_flux_pipeline()  # FLUX's double- and single-stream blocks, RoPE, guidance embedding: the same sizes
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel, SD3Transformer2DModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection, PreTrainedTokenizerFast, T5Config, T5EncoderModel

from .shapes.model import build_tokenizer
from .shapes.world import vocabulary
from .testing import _text_encoder

T5_TOKENS = 32  # the tiny T5 tokenizer's length (SD3 takes 256 tokens, FLUX.1-dev 512)


def t5_tokenizer(max_length: int = T5_TOKENS) -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer over the shapes vocabulary with T5's conventions: no start token, ``</s>`` after
    the text, ``<pad>`` (id 0) padding, lower-cased words split on whitespace and punctuation."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    words = ["<pad>", "</s>", "<unk>", *sorted({w.lower() for w in vocabulary()} | {",", "."})]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    model = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    model.normalizer = normalizers.Lowercase()
    model.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    model.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=model,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def _t5(tokenizer: Any, width: int = 32) -> T5EncoderModel:
    config = T5Config(
        vocab_size=len(tokenizer), d_model=width, d_kv=8, d_ff=2 * width, num_layers=1, num_heads=2, pad_token_id=0
    )
    return T5EncoderModel(config)


def _vae(shift: float, scale: float, latent_channels: int = 4) -> AutoencoderKL:
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 4, 8, 8),
        latent_channels=latent_channels,
        norm_num_groups=4,
        sample_size=128,
        shift_factor=shift,
        scaling_factor=scale,
    )


def tiny_sd3_components(seed: int = 0, sd35: bool = False) -> dict[str, Any]:
    """SD3's structure at tiny widths: CLIP-L and CLIP-G stand-ins (16 wide, 16-d projections), a T5 (32 wide), two
    joint blocks (the last context-pre-only) with 2 heads of 8, 2x2 patches, SD3's VAE shift and scale, shift 3.
    ``sd35``: SD3.5-medium's blocks instead: RMS q/k norms and dual attention (an image-only ``attn2``) in block 0."""
    sd35_blocks: dict[str, Any] = dict(dual_attention_layers=(0,), qk_norm="rms_norm") if sd35 else {}
    clip_l, clip_g = build_tokenizer(), build_tokenizer()
    clip_g.pad_token = "!"  # OpenCLIP-bigG pads with "!", as on SDXL
    t5_tok = t5_tokenizer()
    torch.manual_seed(seed)
    return dict(
        transformer=SD3Transformer2DModel(
            sample_size=16,
            patch_size=2,
            in_channels=4,
            out_channels=4,
            num_layers=2,
            attention_head_dim=8,
            num_attention_heads=2,
            joint_attention_dim=32,
            caption_projection_dim=16,
            pooled_projection_dim=32,
            pos_embed_max_size=16,
            **sd35_blocks,
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(0.0609, 1.5305),
        text_encoder=_text_encoder(CLIPTextModelWithProjection, clip_l, 16, 2, 2, 16, "quick_gelu"),
        tokenizer=clip_l,
        text_encoder_2=_text_encoder(CLIPTextModelWithProjection, clip_g, 16, 2, 2, 16, "gelu"),
        tokenizer_2=clip_g,
        text_encoder_3=_t5(t5_tok),
        tokenizer_3=t5_tok,
    )


# FLUX.1-dev's scheduler/scheduler_config.json (black-forest-labs/FLUX.1-dev): its resolution-dependent shift
FLUX_DEV_SCHEDULER: dict[str, Any] = dict(
    shift=3.0,
    use_dynamic_shifting=True,
    base_shift=0.5,
    max_shift=1.15,
    base_image_seq_len=256,
    max_image_seq_len=4096,
)


def tiny_flux_components(seed: int = 0) -> dict[str, Any]:
    """FLUX.1's structure at tiny widths: CLIP-L stand-in (pooled, 16 wide), a T5 (32 wide), one double-stream and
    two single-stream blocks with 2 heads of 8 (RoPE axes 2+2+4), the guidance embedding, FLUX's VAE shift and scale
    and its resolution-dependent timestep shift."""
    clip = build_tokenizer()
    t5_tok = t5_tokenizer()
    torch.manual_seed(seed)
    return dict(
        transformer=FluxTransformer2DModel(
            patch_size=1,
            in_channels=16,
            num_layers=1,
            num_single_layers=2,
            attention_head_dim=8,
            num_attention_heads=2,
            joint_attention_dim=32,
            pooled_projection_dim=16,
            guidance_embeds=True,
            axes_dims_rope=(2, 2, 4),
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_DEV_SCHEDULER),
        vae=_vae(0.1159, 0.3611),
        text_encoder=_text_encoder(CLIPTextModel, clip, 16, 2, 2, 16, "quick_gelu"),
        tokenizer=clip,
        text_encoder_2=_t5(t5_tok),
        tokenizer_2=t5_tok,
    )


def _evaluating(parts: dict[str, Any]) -> dict[str, Any]:
    """Modules in eval mode, as ``from_pretrained`` leaves them (T5's dropout is on in a freshly built model)."""
    for part in parts.values():
        if isinstance(part, torch.nn.Module):
            part.eval()
    return parts


def tiny_sd3_pipeline(seed: int = 0, sd35: bool = False):
    from .backbones.dit_families import LayoutSD3Pipeline

    return LayoutSD3Pipeline(**_evaluating(tiny_sd3_components(seed, sd35)))


def tiny_flux_pipeline(seed: int = 0):
    from .backbones.dit_families import LayoutFluxPipeline

    pipe = LayoutFluxPipeline(**_evaluating(tiny_flux_components(seed)))
    pipe.default_image_size = 128  # the tiny transformer's size (FLUX has no sample_size)
    return pipe
