"""Does the colour check read colours exactly as MIG_Bench's OpenCV code does? Every one of the 16,777,216 RGB
colours is converted by ``layoutguide.bench.detectors.colour.opencv_hsv`` and by ``cv2.cvtColor(COLOR_RGB2HSV)``,
and tested against each colour range by ``in_colour`` and by ``cv2.inRange`` (MIG_Bench's call). Needs OpenCV
(``pip install opencv-python-headless``); the colour check itself does not.

    python benchmarks/hsv_vs_opencv.py --out docs/results/detectors-hsv.md
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from layoutguide.bench.detectors.colour import COLOUR_RANGES, in_colour, opencv_hsv


def compare() -> tuple[int, dict[str, int], dict[str, int]]:
    import cv2

    hsv_mismatches = 0
    range_mismatches = dict.fromkeys(COLOUR_RANGES, 0)
    members = dict.fromkeys(COLOUR_RANGES, 0)
    g, b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    for r in range(256):  # one red value at a time: 65,536 colours per chunk
        rgb = np.stack([np.full_like(g, r), g, b], axis=-1).astype(np.uint8)
        ours, theirs = opencv_hsv(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        hsv_mismatches += int(np.any(ours != theirs, axis=-1).sum())
        for name, ranges in COLOUR_RANGES.items():
            reference = np.zeros(rgb.shape[:2], dtype=bool)
            for low, high in ranges:
                reference |= cv2.inRange(theirs, np.array(low), np.array(high)) > 0
            range_mismatches[name] += int((in_colour(ours, name) != reference).sum())
            members[name] += int(reference.sum())
    return hsv_mismatches, range_mismatches, members


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the report here (markdown); else print it")
    args = parser.parse_args()
    import cv2

    start = time.perf_counter()
    hsv_mismatches, range_mismatches, members = compare()
    lines = [
        "# The colour check's HSV against OpenCV's, on every RGB colour",
        "",
        "`python benchmarks/hsv_vs_opencv.py --out docs/results/detectors-hsv.md` "
        f"(OpenCV {cv2.__version__}; {time.perf_counter() - start:.0f} s on a shared CPU).",
        "",
        f"- HSV triples that differ from `cv2.cvtColor(COLOR_RGB2HSV)`: **{hsv_mismatches}** of 16,777,216.",
        "",
        "| colour | colours in range (cv2.inRange) | share of all colours | disagreements with cv2.inRange |",
        "|---|---:|---:|---:|",
    ]
    for name in COLOUR_RANGES:
        share = members[name] / 2**24
        lines.append(f"| {name} | {members[name]:,} | {share:.1%} | {range_mismatches[name]} |")
    text = "\n".join(lines) + "\n"
    if args.out is None:
        print(text, end="")
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=args.out.parent, delete=False, suffix=".partial") as tmp:
        tmp.write(text)
    os.replace(tmp.name, args.out)  # atomic: never half a report
    print(text, end="")


if __name__ == "__main__":
    main()
