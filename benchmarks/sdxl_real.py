"""Every method for one denoising step on SDXL base's real architecture with random weights: peak memory and time.

    nice -n 10 python benchmarks/sdxl_real.py --height 512 --dtype bf16 --out docs/results/sdxl/real-architecture

The pipeline is :func:`layoutguide.testing.sdxl_base_components` (2.57 B-parameter UNet, both text encoders, VAE),
saved with ``save_pretrained`` and loaded back through ``layoutguide.loading.load_pipeline`` (the path
``layoutguide generate --model SDXL_FOLDER`` takes) unless ``--no-save``. Each method runs one step (one guidance
iteration where the method's options allow it) on a two-region layout; the peak is measured per method in the same
process (:class:`layoutguide.bench.memory.PeakMemory`: CUDA's allocator peak, or on the CPU the resident-set growth
above the loaded pipeline, sampled every 20 ms). Writes ``results.json`` and ``report.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

# Methods and the options that keep one step to one guidance iteration (peaks are per iteration; time is not)
METHODS: dict[str, dict[str, dict[str, Any]]] = {
    "none": {},
    "refocus": {},
    "boxdiff": {"boxdiff": {"guided_fraction": 1.0}},
    "layout-guidance": {"layout-guidance": {"max_iterations": 1}},
    "attend-excite": {"attend-excite": {"max_refinement": 0, "guided_fraction": 1.0}},
    "zestguide": {},
    "pww": {},
    "densediffusion": {},
    "zestguide+pww": {},
    "pww+refocus": {},
}
PROMPT = "a red circle and a blue square"


def level_options(name: str, latent_side: int) -> dict[str, Any]:
    """Layer options that read SDXL's published levels (factor 4, and 2 for ZestGuide's up layers; docs/methods.md
    "SDXL") at reduced sizes, where the absolute sides 16/32 pick other levels. ZestGuide chooses its places by
    absolute side too (down+up at sides <= 16), so below 512 px it also reads the factor-2 down layers."""
    quarter, half = latent_side // 4, latent_side // 2
    if name in ("refocus", "boxdiff", "layout-guidance", "attend-excite"):
        return {"resolution": quarter}
    if name == "zestguide":
        return {"resolutions": (quarter, half)}
    return {}


def two_region_layout(prompt: str = PROMPT):
    from layoutguide.layout import Layout, Region

    return Layout(
        prompt=prompt,
        regions=[
            Region(phrase="red circle", box=(0.1, 0.1, 0.5, 0.55)),
            Region(phrase="blue square", box=(0.5, 0.45, 0.9, 0.9)),
        ],
    )


def run_methods(
    pipe: Any, height: int, methods: dict[str, dict[str, dict[str, Any]]], seed: int = 0
) -> list[dict[str, Any]]:
    """One step of every method on ``pipe``: per method its peak memory (MiB), seconds, guidance iterations,
    attention layers read and whether the latents stayed finite."""
    from layoutguide.attention import attention_layers, select_layers
    from layoutguide.bench.memory import PeakMemory

    layout = two_region_layout()
    latent = (height // pipe.vae_scale_factor,) * 2
    # warm-up (not measured): first-call allocations would otherwise count against the first method
    pipe(layout=layout, num_inference_steps=1, height=height, width=height, output_type="latent", progress=False)
    rows = []
    for name, base in methods.items():
        members = name.split("+")
        own = {m: {**base.get(m, {}), **level_options(m, latent[0])} for m in members}
        options: dict[str, Any] | None = own if len(members) > 1 else own[name]
        method = pipe.method_with_defaults(None if name == "none" else name, options)
        requests = method.requests()
        read = {layer.name for r in requests for layer in select_layers(pipe.unet, r, latent)}
        factors = sorted({info.factor for info in attention_layers(pipe.unet) if info.name in read})
        with PeakMemory(pipe.device) as peak:
            start = time.perf_counter()
            out = pipe(
                layout=layout,
                method=None if name == "none" else name,
                method_options=options if name != "none" else None,
                num_inference_steps=1,
                height=height,
                width=height,
                seed=seed,
                output_type="latent",
                progress=False,
            )
            seconds = time.perf_counter() - start
        latents = out.images
        assert isinstance(latents, torch.Tensor)
        rows.append(
            {
                "method": name,
                "peak_mib": round(peak.peak_bytes / 2**20),
                "seconds": round(seconds, 1),
                "iterations": sum(len(g.get("losses", [])) for g in out.guidance or []),
                "layers_read": len(read),
                "layer_factors": factors,
                "finite": bool(torch.isfinite(latents).all()),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def parameters(pipe: Any) -> dict[str, float]:
    names = ("unet", "text_encoder", "text_encoder_2", "vae")
    return {n: round(sum(p.numel() for p in getattr(pipe, n).parameters()) / 1e6, 1) for n in names}


def counts(height: int, dtype_name: str) -> str:
    """Parameters, weight memory and the attention layers each method reads at ``height`` px, from a storage-less
    (meta device) build of the architecture: no weights, no compute."""
    from layoutguide.attention import attention_layers, select_layers
    from layoutguide.loading import DTYPES
    from layoutguide.methods import get_method
    from layoutguide.testing import sdxl_base_components

    parts = sdxl_base_components(dtype=DTYPES[dtype_name], device="meta")
    sizes = {
        n: sum(p.numel() for p in parts[n].parameters()) for n in ("unet", "text_encoder", "text_encoder_2", "vae")
    }
    total = sum(sizes.values())
    unet, latent = parts["unet"], (height // 8, height // 8)
    lines = ["| component | parameters |", "|---|---|"] + [f"| {n} | {v / 1e6:.2f} M |" for n, v in sizes.items()]
    lines += [
        f"| total | {total / 1e6:.2f} M = {total * 4 / 2**30:.1f} GiB fp32, {total * 2 / 2**30:.1f} GiB bf16/fp16 |"
    ]
    cross = sum(1 for layer in attention_layers(unet) if layer.kind == "cross")
    lines += [
        "",
        f"cross-attention layers in the UNet: {cross}",
        "",
        f"| method | layers read at {height} px |",
        "|---|---|",
    ]
    for name in ("refocus", "boxdiff", "attend-excite", "layout-guidance", "zestguide"):
        method = get_method(name)  # default options: what a call at this size reads today
        read = {layer for request in method.requests() for layer in select_layers(unet, request, latent)}
        per_role = {role: sum(1 for layer in read if layer.role == role) for role in sorted({x.role for x in read})}
        lines.append(f"| {name} | {per_role} |")
    return "\n".join(lines)


def report(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    plain = next(r for r in rows if r["method"] == "none")
    load = "build" if "--no-save" in info["command"] else "build, save, reload"
    lines = [
        "# Every method on SDXL base's real architecture (random weights), one step",
        "",
        f"Command: `{info['command']}`",
        "",
        f"Device {info['device']}, dtype {info['dtype']}, {info['height']}x{info['height']} px "
        f"(latent {info['height'] // 8}), parameters (M): {info['parameters_m']}; weights resident "
        f"{info['weights_gib']:.1f} GiB. Load ({load}) took "
        f"{info['load_seconds']:.0f} s.",
        "",
        "Peak = memory above the loaded pipeline during the call (CPU: resident-set growth sampled every 20 ms; "
        "CUDA: allocator peak). With weights = that peak plus the weights' bytes: what a card or a machine must hold "
        "(activation memory of plain sampling is small beside the weights, so the growth ratio overstates what a "
        "user sees). Time is on a shared, loaded machine: compare ratios within this table only.",
        "",
        "| method | peak MiB | x plain | with weights, GiB | x plain | seconds | guidance iterations | layers "
        "the loss reads | factors | finite |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    weights_mib = info["weights_gib"] * 1024
    for r in rows:
        ratio = r["peak_mib"] / plain["peak_mib"] if plain["peak_mib"] else math.nan
        total = (weights_mib + r["peak_mib"]) / (weights_mib + plain["peak_mib"])
        lines.append(
            f"| {r['method']} | {r['peak_mib']} | {ratio:.2f} | {(weights_mib + r['peak_mib']) / 1024:.2f} | "
            f"{total:.2f} | {r['seconds']} | {r['iterations']} | {r['layers_read']} | {r['layer_factors']} | "
            f"{r['finite']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=512, help="image side in px (SDXL's native is 1024)")
    parser.add_argument("--dtype", default="bf16", help="fp32, bf16 (CPU) or fp16 (CUDA)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--arch", default="base", help="base (SDXL base 1.0's sizes) or tiny (a smoke test)")
    parser.add_argument("--no-save", action="store_true", help="skip the save_pretrained/load_pipeline round trip")
    parser.add_argument("--count-only", action="store_true", help="build on the meta device; print sizes and layers")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.count_only:
        print(counts(args.height, args.dtype))
        return
    if args.out is None:
        parser.error("--out is required")

    from layoutguide.backbones.sdxl import LayoutXLPipeline
    from layoutguide.layout import atomic_write_text
    from layoutguide.loading import load_pipeline, pick_dtype
    from layoutguide.testing import sdxl_base_components, tiny_sdxl_components

    dtype = pick_dtype(args.dtype, torch.device(args.device))  # warns for bf16 on a CPU without bf16 instructions
    start = time.perf_counter()
    build = sdxl_base_components if args.arch == "base" else tiny_sdxl_components
    pipe: Any = LayoutXLPipeline(**build(dtype=dtype))
    if not args.no_save:
        with tempfile.TemporaryDirectory() as folder:
            pipe.save_pretrained(folder)
            del pipe
            pipe = load_pipeline(folder, device=args.device, dtype=args.dtype)
    pipe = pipe.to(args.device)
    pipe.set_progress_bar_config(disable=True)
    load_seconds = time.perf_counter() - start
    weights = sum(
        p.numel() * p.element_size()
        for n in ("unet", "text_encoder", "text_encoder_2", "vae")
        for p in getattr(pipe, n).parameters()
    )
    print(f"loaded {type(pipe).__name__} in {load_seconds:.0f} s", flush=True)
    chosen = {m: METHODS.get(m, {}) for m in args.methods.split(",")}
    rows = run_methods(pipe, args.height, chosen)
    info = {
        "command": shlex.join(["python", *sys.argv]),
        "device": f"{args.device} ({platform.processor() or platform.machine()})",
        "dtype": args.dtype,
        "height": args.height,
        "parameters_m": parameters(pipe),
        "weights_gib": weights / 2**30,
        "load_seconds": load_seconds,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "results.json", json.dumps({"info": info, "methods": rows}, indent=2) + "\n")
    atomic_write_text(args.out / "report.md", report(rows, info))
    print(report(rows, info))


if __name__ == "__main__":
    main()
