"""Public layout suites (``layoutguide bench suite``): each read from the files its authors publish (downloaded by the
user; nothing is fetched at run time), scored with a detector of :mod:`layoutguide.bench.detectors`, and reported
with every difference from its paper's protocol.

- :mod:`.mig`: COCO-MIG; :mod:`.hrs`: HRS and DrawBench with Attention Refocusing's GPT-4 boxes; :mod:`.nsr`:
  NSR-1K; :mod:`.coco_format`: COCO val2017 and LayoutBench (COCO AP through pycocotools)
- :mod:`.run`: generate -> detect -> score per image, ``--shard i/N`` and ``accelerate`` splits; :mod:`.report`:
  ``bench merge``, tables per method and level, the grid
"""

from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from .base import ColourCheck, Entry, Metric, PublicSuite
from .coco_format import CocoBoxes
from .hrs import BOX_FILES, Hrs
from .mig import MATCHINGS, CocoMig
from .nsr import Nsr1k

SUITES = (
    "coco-mig",
    *BOX_FILES,
    "hrs-colour",
    "drawbench-counting",
    "drawbench-spatial",
    "nsr-1k",
    "coco",
    "layoutbench",
)


def load_suite(name: str, data: str | Path, *, matching: str = "max-iou") -> PublicSuite:
    """Suite ``name`` read from ``data`` (a file or folder as its authors publish it)."""
    path = Path(data).expanduser()
    if name not in SUITES:
        raise InputError(f"suite: unknown {name!r}; choose one of {', '.join(SUITES)}")
    if not path.exists():
        raise InputError(f"data: {path} does not exist; docs/benchmarks.md says where to get {name}'s files")
    if name == "coco-mig":
        return CocoMig.read(path, matching)
    if matching != "max-iou":
        raise InputError(f"matching: only coco-mig has a choice of matching; leave it out for {name}")
    if name.startswith(("hrs-", "drawbench-")):
        return Hrs.read(name, path)
    if name == "nsr-1k":
        return Nsr1k.read(path)
    return CocoBoxes.read(name, path)


__all__ = ["MATCHINGS", "SUITES", "ColourCheck", "Entry", "Metric", "PublicSuite", "load_suite"]
