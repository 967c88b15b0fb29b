"""Write a shapes GLIGEN variant whose gated path dominates: every fuser's two residuals (gated self-attention and
dense) scaled by ``--factor``, nothing else changed. A training-free stand-in for a longer or faster grounding
stage (larger gates, larger fuser outputs), used to test ReGround's claim on a model that shows description
omission (docs/results/reground-omission/report.md). Stored as the shipped model is: an overlay of
``gligen_layers.safetensors`` on the shapes base.

    python benchmarks/amplified_fusers.py --factor 2 --out runs/models/amp-2
    layoutguide bench shapes --model runs/models/amp-2 --methods none,gligen,reground --n 32 --seed 1 --steps 10
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

# The last linear layer of each residual branch: scaling its weight and bias scales the branch's output exactly.
RESIDUAL_OUTPUTS = (".fuser.attn.to_out.0.", ".fuser.ff.net.2.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=Path("src/layoutguide/weights/shapes-gligen"))
    parser.add_argument("--factor", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from safetensors.torch import load_file, save_file

    if args.factor <= 0:
        raise SystemExit(f"--factor must be positive, got {args.factor:g}")
    if args.out.resolve() == args.source.resolve():
        raise SystemExit("--out must differ from --source")
    layers = load_file(args.source / "gligen_layers.safetensors")
    scaled = {
        name: (value * args.factor if any(key in name for key in RESIDUAL_OUTPUTS) else value).contiguous()
        for name, value in layers.items()
    }
    n_scaled = sum(any(key in name for key in RESIDUAL_OUTPUTS) for name in layers)
    if n_scaled == 0:
        raise SystemExit(f"{args.source}: no fuser output layers found; give a shapes GLIGEN overlay folder")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("overlay.json", "layoutguide.json"):
        shutil.copyfile(args.source / name, args.out / name)
    tmp = args.out / ".gligen_layers.safetensors.tmp"
    save_file(scaled, str(tmp), metadata={"fuser_residual_factor": f"{args.factor:g}"})
    tmp.replace(args.out / "gligen_layers.safetensors")
    print(f"wrote {args.out} ({n_scaled} tensors scaled by {args.factor:g})")


if __name__ == "__main__":
    main()
