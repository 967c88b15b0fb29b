"""Write `bench shapes`' layouts as a COCO-MIG file (MIG_Bench's JSON), so that `bench suite --detector shapes` can be
checked against `bench shapes` on the same layouts and seeds (docs/results/public-suite-shapes.md).

    python benchmarks/shapes_as_mig.py --n 8 --seed 0 --out bench-out/shapes-as-mig.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from layoutguide.bench import shapes_layout_suite
from layoutguide.bench.files import write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    data = {
        str(k): {"caption": lay.prompt, "segment": [{"label": r.phrase, "bbox": list(r.box)} for r in lay.regions]}
        for k, lay in enumerate(shapes_layout_suite(args.n, args.seed).layouts)
    }
    write_text(args.out, json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out} ({args.n} layouts, suite seed {args.seed})")


if __name__ == "__main__":
    main()
