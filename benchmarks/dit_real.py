"""One denoising step of a real-architecture transformer (random weights) through the DiT loop, SD3.5-medium or
FLUX.1-dev at their real widths: time and peak memory of plain sampling, regional attention, refocus on joint
attention and regional+refocus, interleaved A B C D A B C D in one process.

    nice -n 10 python benchmarks/dit_real.py --size 256 --repeats 2 --out docs/results/dit/real-architecture
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dit_real.py --family flux --double 2 --single 4 --size 256 \
        --repeats 3 --out docs/results/dit/real-architecture/flux-2x4-256
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dit_real.py --family flux --double 2 --single 4 --size 512 \
        --repeats 5 --methods none,regional --out docs/results/dit/real-architecture/flux-2x4-512
    python benchmarks/dit_real.py --device cuda --size 1024 --steps 28 --repeats 3 --out OUT   # one GPU
    python benchmarks/dit_real.py --size 128 --save-to FOLDER      # then: layoutguide generate --model FOLDER ...

On CUDA the modules are built on the GPU (random initialisation there takes seconds, not minutes), times are taken
after ``torch.cuda.synchronize`` and memory is the allocator's peak (above the loaded weights, and in all); a method
that runs out of GPU memory is recorded as such and the others go on. ``--attention-blocks`` sets the blocks the
gradient methods read, as a model's ``layoutguide.json`` ``attention_blocks`` does (default: every block).

SD3.5-medium: ``SD3Transformer2DModel`` with its configuration (24 joint blocks of 24 heads x 64, dual attention in
blocks 0-12, RMS q/k norms: 2.24 B parameters as built); tiny CLIP stand-ins (the transformer's compute does not
depend on them) and no T5, whose 256 tokens are then zeros as in diffusers. ``--layers`` keeps the widths with
fewer blocks.

FLUX.1-dev: ``FluxTransformer2DModel`` with its configuration (24 heads x 128 = 3072 wide, T5 width 4096, pooled
768, guidance embedding, RoPE axes 16+56+56) and ``--double`` double-stream / ``--single`` single-stream blocks
(FLUX.1-dev: 19 + 38, 11.9 B parameters, which with activations do not fit this machine's 24 GiB). Every block of
a kind is the same module with the same inputs, and regional masks and refocus's recorded maps act per block, so a
method's extra work per step is a sum over blocks: the per-kind ratios carry to 19 + 38 (the embedders, a few
per cent of the compute, are the part that does not scale). The text encoders are tiny stand-ins at FLUX's
interface widths (CLIP-L's 768-wide pooled output; a one-layer 4096-wide T5 whose tokenizer gives FLUX.1-dev's 512
tokens), so the joint sequence is FLUX's: 512 text tokens + the image tokens.

The VAE is tiny (latents only are returned). SD3 runs with CFG off (``guidance_scale=1``) so each call is one
transformer forward; FLUX.1-dev's guidance is an embedding (one forward at 3.5). Refocus adds its guidance forwards
and backwards (early stop off). Each round times every method once; ratios are per round (same load) and their
median is reported with the fastest/fastest ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from layoutguide.backbones.dit import LayoutDiTPipeline
from layoutguide.bench.memory import PeakMemory
from layoutguide.layout import Layout, atomic_write_text
from layoutguide.shapes.model import build_tokenizer
from layoutguide.spec import split_methods
from layoutguide.testing import _text_encoder, default_dtype
from layoutguide.testing_dit import FLUX_DEV_SCHEDULER, _vae, t5_tokenizer

LAYOUT = Layout.from_dict(
    {
        "prompt": "a red circle and a blue square",
        "regions": [
            {"phrase": "red circle", "box": [0.05, 0.1, 0.45, 0.5]},
            {"phrase": "blue square", "box": [0.55, 0.5, 0.95, 0.9]},
        ],
    }
)
METHODS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "regional": None,
    "regional[region_text=separate]": None,  # each phrase encoded alone and appended for the masked steps
    "refocus": {"early_stop": False},
    "regional+refocus": {"refocus": {"early_stop": False}},
}
# FLUX.1-dev's transformer/config.json (black-forest-labs/FLUX.1-dev); its scheduler's is testing_dit's
FLUX_DEV = dict(
    patch_size=1,
    in_channels=64,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=4096,
    pooled_projection_dim=768,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
FLUX_T5_TOKENS = 512  # FluxPipeline's max_sequence_length for FLUX.1-dev


def sd35_medium_pipeline(dtype: torch.dtype, layers: int = 24, device: str = "cpu") -> LayoutDiTPipeline:
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextModelWithProjection

    from layoutguide.backbones.dit_families import LayoutSD3Pipeline

    clip_l, clip_g = build_tokenizer(), build_tokenizer()
    clip_g.pad_token = "!"
    torch.manual_seed(0)
    with default_dtype(dtype), torch.device(device):
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
    return LayoutSD3Pipeline(**parts).to(device)


def flux_dev_pipeline(
    dtype: torch.dtype,
    double: int = 19,
    single: int = 38,
    t5_tokens: int = FLUX_T5_TOKENS,
    device: str = "cpu",
    **widths: Any,
) -> LayoutDiTPipeline:
    """FLUX.1-dev's transformer with ``double`` + ``single`` blocks (``widths`` override its configuration: tests
    build the same code path narrow), tiny text encoders at FLUX's interface widths, a tiny 16-channel VAE."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    from layoutguide.backbones.dit_families import LayoutFluxPipeline

    config = {**FLUX_DEV, **widths}
    clip, t5_tok = build_tokenizer(), t5_tokenizer(t5_tokens)
    torch.manual_seed(0)
    with default_dtype(dtype), torch.device(device):
        transformer = FluxTransformer2DModel(num_layers=double, num_single_layers=single, **config)
        clip_l = _text_encoder(CLIPTextModel, clip, config["pooled_projection_dim"], 1, 2, 16, "quick_gelu")
        t5 = T5EncoderModel(
            T5Config(
                vocab_size=len(t5_tok),
                d_model=config["joint_attention_dim"],
                d_kv=8,
                d_ff=16,
                num_layers=1,
                num_heads=2,
                pad_token_id=0,
            )
        )
    vae = _vae(0.1159, 0.3611, latent_channels=config["in_channels"] // 4)  # tiny: only latents are returned
    for module in (transformer, clip_l, t5):
        module.requires_grad_(False).eval()
    pipe = LayoutFluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_DEV_SCHEDULER),
        vae=vae,
        text_encoder=clip_l,
        tokenizer=clip,
        text_encoder_2=t5,
        tokenizer_2=t5_tok,
        transformer=transformer,
    )
    return pipe.to(device)


def time_methods(
    pipe: LayoutDiTPipeline,
    methods: dict[str, dict[str, Any] | None],
    rounds: int,
    size: int,
    guidance: float,
    steps: int = 1,
    after_round: Any = None,
) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """Seconds and peak memory growth (bytes: the CUDA allocator's, or the CPU's resident set) of ``steps`` steps per
    method, methods interleaved within each round; ``after_round(times, peaks)`` after each round. A method that runs
    out of CUDA memory gets no time and is not run again (``peaks`` holds -1 for it)."""
    device = pipe.transformer.device
    times: dict[str, list[float]] = {m: [] for m in methods}
    peaks: dict[str, list[int]] = {m: [] for m in methods}
    for _ in range(rounds):
        for method, options in methods.items():
            if -1 in peaks[method]:
                continue
            try:
                with PeakMemory(device) as memory:
                    start = time.perf_counter()
                    pipe(
                        layout=LAYOUT,
                        method=method,
                        method_options=options,
                        num_inference_steps=steps,
                        guidance_scale=guidance,
                        height=size,
                        width=size,
                        output_type="latent",
                        progress=False,
                    )
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    times[method].append(time.perf_counter() - start)
            except torch.cuda.OutOfMemoryError as e:  # recorded, and the other methods go on
                peaks[method].append(-1)
                print(method, "out of memory:", str(e).splitlines()[0], flush=True)
                torch.cuda.empty_cache()
                continue
            peaks[method].append(memory.peak_bytes)
            print(method, round(times[method][-1], 2), f"{memory.peak_bytes / 2**30:.2f} GiB", flush=True)
        if after_round is not None:
            after_round(times, peaks)
    return times, peaks


def summarise(times: dict[str, list[float]]) -> dict[str, Any]:
    """Per-round ratios to ``none`` (each from one round, under one load), their median, fastest/fastest."""
    times = {m: v for m, v in times.items() if v}  # a method out of memory has no times
    if not times.get("none"):
        return {}
    per_round = {m: [round(t / n, 3) for t, n in zip(v, times["none"])] for m, v in times.items()}
    return {
        "ratio_per_round": per_round,
        "median_ratio_per_round": {m: round(statistics.median(r), 3) for m, r in per_round.items()},
        "ratio_fastest": {m: round(min(v) / min(times["none"]), 3) for m, v in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=("sd35", "flux"), default="sd35")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="rounds, each timing every method once")
    parser.add_argument("--steps", type=int, default=1, help="denoising steps per call (1: the step ratio)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed one-step rounds of every method first")
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--layers", type=int, default=24, help="SD3.5: joint blocks (24: SD3.5-medium); fewer keep its widths"
    )
    parser.add_argument("--double", type=int, default=19, help="FLUX: double-stream blocks (19: FLUX.1-dev)")
    parser.add_argument("--single", type=int, default=38, help="FLUX: single-stream blocks (38: FLUX.1-dev)")
    parser.add_argument(
        "--attention-blocks",
        default=None,
        help="comma-separated blocks the gradient methods read (layoutguide.json attention_blocks; default: all)",
    )
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="comma-separated method specs (with options in brackets), e.g. " + ", ".join(METHODS),
    )
    parser.add_argument("--out", type=Path, help="results folder (results.json)")
    parser.add_argument(
        "--save-to",
        type=Path,
        help="write the built pipeline as a diffusers folder (save_pretrained, with a layoutguide.json whose "
        "image_size is --size) for `layoutguide generate --model FOLDER`, instead of timing",
    )
    args = parser.parse_args()
    if (args.out is None) == (args.save_to is None):
        parser.error("give one of --out (time the methods) or --save-to (write the folder)")
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    t0 = time.perf_counter()
    if args.family == "flux":
        pipe, guidance = flux_dev_pipeline(dtype, args.double, args.single, device=args.device), 3.5
    else:
        pipe, guidance = sd35_medium_pipeline(dtype, args.layers, device=args.device), 1.0
    blocks_read = None
    if args.attention_blocks:
        blocks_read = [int(b) for b in args.attention_blocks.split(",")]
        pipe.model_defaults = {**pipe.model_defaults, "attention_blocks": blocks_read}
    build_s = time.perf_counter() - t0
    if args.save_to is not None:
        pipe.save_pretrained(args.save_to)
        defaults = {"image_size": args.size, **({"attention_blocks": blocks_read} if blocks_read else {})}
        atomic_write_text(args.save_to / "layoutguide.json", json.dumps(defaults, indent=2) + "\n")
        print(f"built in {build_s:.0f} s, saved to {args.save_to}")
        return
    params = sum(p.numel() for p in pipe.transformer.parameters())
    chosen = {m: METHODS.get(m) for m in split_methods(args.methods)}
    blocks = {"layers": args.layers} if args.family == "sd35" else {"double": args.double, "single": args.single}
    cuda = args.device.startswith("cuda")

    def result(times: dict[str, list[float]], peaks: dict[str, list[int]]) -> dict[str, Any]:
        loaded = torch.cuda.memory_allocated() if cuda else 0
        return {
            "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
            "family": args.family,
            "transformer_parameters": params,
            "size": args.size,
            "steps": args.steps,
            "warmup_rounds": args.warmup,
            **blocks,
            "attention_blocks": blocks_read,
            "dtype": args.dtype,
            "device": torch.cuda.get_device_name() if cuda else "cpu",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "build_seconds": round(build_s, 1),
            "rounds_done": min(len(v) for v in times.values()),
            "seconds": {m: [round(t, 3) for t in v] for m, v in times.items()},
            "median_seconds": {m: round(statistics.median(v), 3) for m, v in times.items() if v},
            **summarise(times),
            "out_of_memory": [m for m, v in peaks.items() if -1 in v],
            ("peak_cuda_growth_gib" if cuda else "peak_rss_growth_gib"): {
                m: round(max(v) / 2**30, 2) for m, v in peaks.items() if v and -1 not in v
            },
            **(
                {
                    "loaded_cuda_gib": round(loaded / 2**30, 2),
                    "peak_cuda_total_gib": {
                        m: round((loaded + max(v)) / 2**30, 2) for m, v in peaks.items() if v and -1 not in v
                    },
                }
                if cuda
                else {}
            ),
            "process_peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "load_average_at_end": os.getloadavg(),
        }

    def write(times: dict[str, list[float]], peaks: dict[str, list[int]]) -> dict[str, Any]:
        args.out.mkdir(parents=True, exist_ok=True)  # after every round: a run stopped midway keeps what it did
        summary = result(times, peaks)
        atomic_write_text(args.out / "results.json", json.dumps(summary, indent=2) + "\n")
        return summary

    if args.warmup:  # first calls pay for CUDA's kernel selection and allocator growth
        time_methods(pipe, chosen, args.warmup, args.size, guidance, 1)
    times, peaks = time_methods(pipe, chosen, args.repeats, args.size, guidance, args.steps, after_round=write)
    print(json.dumps(write(times, peaks), indent=2))


if __name__ == "__main__":
    main()
