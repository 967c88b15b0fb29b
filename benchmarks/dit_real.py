"""One denoising step of SD3.5-medium's real transformer (random weights) through the DiT loop: time of plain
sampling, regional attention and refocus on joint attention, interleaved A B A B in one process.

    nice -n 10 python benchmarks/dit_real.py --size 256 --repeats 2 --out docs/results/dit/real-architecture

The transformer is ``SD3Transformer2DModel`` with SD3.5-medium's configuration (24 joint blocks of 24 heads x 64,
dual attention in blocks 0-12, RMS q/k norms: 2.24 B parameters as built); the text encoders are tiny CLIP
stand-ins (the transformer's compute does not depend on them) with no T5, whose 256 tokens are then zeros as in
diffusers; the VAE is tiny (latents only are returned). CFG is off (``guidance_scale=1``) so each call is one
transformer forward (plus the guidance forward and backward for refocus). ``--layers`` keeps the widths with fewer
blocks. FLUX.1's 12 B transformer does not fit this machine's 24 GiB in bf16 with activations; it needs a GPU
session.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from layoutguide.backbones.dit_families import LayoutSD3Pipeline
from layoutguide.layout import Layout, atomic_write_text
from layoutguide.shapes.model import build_tokenizer
from layoutguide.testing import _text_encoder, default_dtype
from layoutguide.testing_dit import _vae

LAYOUT = Layout.from_dict(
    {
        "prompt": "a red circle and a blue square",
        "regions": [
            {"phrase": "red circle", "box": [0.05, 0.1, 0.45, 0.5]},
            {"phrase": "blue square", "box": [0.55, 0.5, 0.95, 0.9]},
        ],
    }
)
METHODS = {"none": None, "regional": None, "refocus": {"early_stop": False}}


def sd35_medium_pipeline(dtype: torch.dtype, layers: int = 24) -> LayoutSD3Pipeline:
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextModelWithProjection

    clip_l, clip_g = build_tokenizer(), build_tokenizer()
    clip_g.pad_token = "!"
    torch.manual_seed(0)
    with default_dtype(dtype):
        transformer = SD3Transformer2DModel(
            sample_size=128,
            patch_size=2,
            in_channels=16,
            out_channels=16,
            num_layers=layers,
            attention_head_dim=64,
            num_attention_heads=24,
            joint_attention_dim=4096,
            caption_projection_dim=1536,
            pooled_projection_dim=2048,
            pos_embed_max_size=384,
            dual_attention_layers=tuple(range(min(13, layers - 1))),
            qk_norm="rms_norm",
        )
        encoders = [
            _text_encoder(CLIPTextModelWithProjection, tok, 64, 1, 2, 1024, "gelu") for tok in (clip_l, clip_g)
        ]
    vae = _vae(0.0609, 1.5305, latent_channels=16)  # tiny: only latents are returned
    parts = dict(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae)
    parts.update(text_encoder=encoders[0], tokenizer=clip_l, text_encoder_2=encoders[1], tokenizer_2=clip_g)
    for module in (transformer, *encoders):
        module.requires_grad_(False).eval()
    return LayoutSD3Pipeline(**parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument(
        "--layers", type=int, default=24, help="joint blocks (24: SD3.5-medium); fewer keep its widths, cost less"
    )
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, from: " + ", ".join(METHODS))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    t0 = time.perf_counter()
    pipe = sd35_medium_pipeline(dtype, args.layers)
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in pipe.transformer.parameters())
    chosen = {m: METHODS[m] for m in args.methods.split(",")}
    times: dict[str, list[float]] = {m: [] for m in chosen}
    for _ in range(args.repeats):
        for method, options in chosen.items():
            start = time.perf_counter()
            pipe(
                layout=LAYOUT,
                method=method,
                method_options=options,
                num_inference_steps=1,
                guidance_scale=1.0,
                height=args.size,
                width=args.size,
                output_type="latent",
                progress=False,
            )
            times[method].append(time.perf_counter() - start)
            print(method, round(times[method][-1], 2), flush=True)
    best = {m: min(v) for m, v in times.items()}
    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "transformer_parameters": params,
        "size": args.size,
        "layers": args.layers,
        "dtype": args.dtype,
        "build_seconds": round(build_s, 1),
        "seconds": times,
        "ratio_to_none": {m: round(best[m] / best["none"], 3) for m in best} if "none" in best else {},
        "median_ratio_to_none": {
            m: round(statistics.median(times[m]) / statistics.median(times["none"]), 3) for m in times
        }
        if "none" in times
        else {},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "results.json", json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
