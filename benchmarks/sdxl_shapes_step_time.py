"""Training-step cost of the SDXL-architecture shapes UNet against the shipped SD-architecture one, side by side.

    OMP_NUM_THREADS=1 python benchmarks/sdxl_shapes_step_time.py --reps 3

One forward and backward pass of text encoder(s) + UNet at the trainer's batch (32), random weights, the two models
interleaved (A B A B ...) in one process so that a shared machine's load hits both alike: the ratio is the figure,
not the seconds. Prints parameter counts and each repetition's seconds.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    from layoutguide.shapes.model import build_components
    from layoutguide.shapes.sdxl_model import build_sdxl_components, encode_prompts, size_ids

    cpu = torch.device("cpu")
    captions = ["a red circle and two blue squares"] * args.batch
    sd, xl = build_components(), build_sdxl_components()

    def sd_step() -> None:
        ids = sd["tokenizer"](captions, padding="max_length", max_length=77, return_tensors="pt").input_ids
        z = torch.randn(args.batch, 4, sd["unet"].config.sample_size, sd["unet"].config.sample_size)
        out = sd["unet"](z, torch.randint(0, 1000, (args.batch,)), sd["text_encoder"](ids)[0]).sample
        out.mean().backward()

    def xl_step() -> None:
        hidden, pooled = encode_prompts(
            [xl["tokenizer"], xl["tokenizer_2"]], [xl["text_encoder"], xl["text_encoder_2"]], captions, cpu
        )
        side = xl["unet"].config.sample_size
        out = xl["unet"](
            torch.randn(args.batch, 4, side, side),
            torch.randint(0, 1000, (args.batch,)),
            hidden,
            added_cond_kwargs={"text_embeds": pooled, "time_ids": size_ids(args.batch, 64, cpu)},
        ).sample
        out.mean().backward()

    for name, parts in (("sd", sd), ("sdxl", xl)):
        print(f"{name}: UNet {sum(p.numel() for p in parts['unet'].parameters()) / 1e6:.2f} M parameters")
    times: dict[str, list[float]] = {"sd": [], "sdxl": []}
    for _ in range(args.reps):
        for name, step in (("sd", sd_step), ("sdxl", xl_step)):
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name}: " + ", ".join(f"{v:.2f}" for v in values) + " s per step")
    ratios = [x / s for s, x in zip(times["sd"], times["sdxl"])]
    print("sdxl / sd per repetition: " + ", ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    main()
