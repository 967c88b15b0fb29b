"""Components of the shapes-world model: a word-level CLIP tokenizer, a small CLIP text encoder, a small
AutoencoderKL (64x64 RGB <-> 16x16x4 latents, factor 4) and a small UNet2DConditionModel.

All are standard diffusers/transformers classes, so the saved folder loads with
``LayoutPipeline.from_pretrained(path)`` exactly like Stable Diffusion. The same builders, with smaller
widths, give the tiny random-weight pipelines the tests use.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

from .world import vocabulary

# CLIP's byte-to-unicode table (GPT-2 style): printable stand-ins for all 256 bytes.


def _bytes_to_unicode() -> list[str]:
    bs = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def tokenizer_files(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP BPE vocabulary in which every word of ``words`` is one token and anything else falls back
    to single characters (so unknown words still tokenise, into several tokens).

    Layout: 256 byte characters, their ``</w>`` forms, one merged token per merge, then the two specials,
    the same order as OpenAI's CLIP vocabulary.
    """
    chars = _bytes_to_unicode()
    vocab_list = chars + [c + "</w>" for c in chars]
    merges: list[tuple[str, str]] = []
    known = set(vocab_list)
    for word in words:
        # Apply the merges so far (as the tokenizer will), then join what is left left to right. Every new
        # merge ranks after all earlier ones, so the words already added keep their single tokens.
        pieces = _apply_bpe(list(word[:-1]) + [word[-1] + "</w>"], {m: r for r, m in enumerate(merges)})
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            merged = pair[0] + pair[1]
            if merged not in known:
                merges.append(pair)
                vocab_list.append(merged)
                known.add(merged)
            pieces = [merged] + pieces[2:]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab_list)}, merges


def _apply_bpe(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    while len(pieces) > 1:
        pairs = [(ranks.get(p, len(ranks)), i) for i, p in enumerate(zip(pieces, pieces[1:]))]
        rank, i = min(pairs)
        if rank == len(ranks):
            break
        pieces = pieces[:i] + [pieces[i] + pieces[i + 1]] + pieces[i + 2 :]
    return pieces


def build_tokenizer(words: list[str] | None = None):
    """A ``CLIPTokenizer`` (max length 77) over the shapes vocabulary, built from vocab.json + merges.txt."""
    from transformers import CLIPTokenizer

    vocab, merges = tokenizer_files(words or vocabulary())
    with tempfile.TemporaryDirectory() as d:
        Path(d, "vocab.json").write_text(json.dumps(vocab))
        Path(d, "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
        tokenizer = CLIPTokenizer.from_pretrained(d, model_max_length=77)
    return tokenizer


@dataclasses.dataclass
class ModelConfig:
    """Widths of the shapes model. ``tiny()`` gives the random-weight test model."""

    image_size: int = 64
    latent_channels: int = 4
    vae_channels: tuple[int, ...] = (16, 32, 64)  # three blocks: two downsamples, factor 4
    unet_channels: tuple[int, ...] = (64, 128, 128)  # attention at 16x16 and 8x8 (+ mid at 4x4)
    unet_heads: int = 4
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    norm_groups: int = 16

    @classmethod
    def tiny(cls) -> ModelConfig:
        return cls(
            vae_channels=(8, 16, 16),
            unet_channels=(16, 32, 32),
            unet_heads=2,
            text_width=32,
            text_heads=2,
            norm_groups=8,
        )


def build_components(config: ModelConfig | None = None, *, seed: int = 0, gated: bool = False) -> dict:
    """Fresh (random-weight) components for a LayoutPipeline: unet, vae, text_encoder, tokenizer, scheduler."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    config = config or ModelConfig()
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.text_width,
            intermediate_size=config.text_width * 2,
            num_hidden_layers=config.text_layers,
            num_attention_heads=config.text_heads,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    vae = build_vae(config)
    n = len(config.vae_channels)
    factor = 2 ** (n - 1)
    unet = UNet2DConditionModel(
        sample_size=config.image_size // factor,
        in_channels=config.latent_channels,
        out_channels=config.latent_channels,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=config.unet_channels,
        layers_per_block=1,
        cross_attention_dim=config.text_width,
        attention_head_dim=config.unet_heads,  # diffusers' name; it is the number of heads
        norm_num_groups=config.norm_groups,
        attention_type="gated" if gated else "default",
    )
    scheduler = build_scheduler()
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)


def build_scheduler():
    """The shapes models' sampler (both architectures): DDIM on the cosine schedule, epsilon prediction."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="epsilon",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        # as SD; "trailing" starts at t=999 where the cosine alphabar is 2e-9 and x0 explodes
        timestep_spacing="leading",
    )


def build_vae(config):
    """The shapes models' autoencoder: one ResNet layer per level, ``config.vae_channels`` wide (a
    :class:`ModelConfig` or the SDXL-architecture model's config: both carry the same autoencoder fields)."""
    from diffusers import AutoencoderKL

    n = len(config.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=config.vae_channels,
        layers_per_block=1,
        latent_channels=config.latent_channels,
        norm_num_groups=config.norm_groups,
        sample_size=config.image_size,
    )
