"""What every public suite gives the harness: its entries (layouts read from the authors' files), what to ask the
detector for each, how one image is scored, how scores add up, and how it differs from its paper's protocol.

A suite's per-image score is a JSON object (written beside the image, so a killed run resumes per image and shards
merge by reading files); :meth:`PublicSuite.aggregate` turns a list of them into the numbers of a table row, so the
same function serves one process, a shard, an ``accelerate`` process and ``bench merge``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...errors import InputError
from ...layout import Layout, Region
from ...shapes.evaluate import box_iou  # noqa: F401  (re-exported: the one box IoU of the library)
from ..detectors.base import Box, Detection

# (image, box relative xyxy, mask or None) -> a basic colour word ("red"): the harness's colour check
ColourCheck = Callable[[Image.Image, Box, "np.ndarray | None"], str]
ARTICLES = ("a ", "an ", "the ", "one ")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One prompt of a suite: its layout (what the model is given), the ``level`` it is reported under and what
    the suite's scoring needs beyond the layout (``meta``: counts, relations, the file's own ids)."""

    key: str
    layout: Layout
    level: str = "all"
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Metric:
    """A table column: ``key`` in the aggregate, its header, and whether it is a rate (printed as 0.000)."""

    key: str
    header: str
    fmt: str = "{:.3f}"


class PublicSuite:
    """Base of every suite format: subclasses set ``name``, ``metrics``, ``score_threshold`` and implement
    :meth:`labels`, :meth:`score` and :meth:`aggregate`; :meth:`describe` and :meth:`differences` go in the report."""

    name = ""
    metrics: tuple[Metric, ...] = ()
    score_threshold = 0.0  # detections below this score are ignored (the paper's detector threshold)
    colour_names: tuple[str, ...] | None = None  # the colours the suite asks about (the colour check picks among them)
    paper = ""

    def __init__(self, entries: Sequence[Entry], source: str, notes: Sequence[str] = ()) -> None:
        if not entries:
            raise InputError(f"data: {source} holds no {self.name} prompts; give the suite's file as published")
        self.entries = tuple(entries)
        self.source = source
        self.notes = list(notes)  # protocol differences found while reading (missing prompts, skipped entries)

    def __len__(self) -> int:
        return len(self.entries)

    def level_key(self, level: str) -> Any:
        """Order of the per-level tables (the file's order of first appearance unless a suite says otherwise)."""
        return 0

    def describe(self) -> str:
        return " ".join((self.__doc__ or "").strip().split("\n\n")[0].split())

    def differences(self, detector: str) -> list[str]:
        """Every way this run differs from the paper's protocol; the subclass adds its own."""
        return [*self.notes]

    def labels(self, entry: Entry) -> list[str]:
        raise NotImplementedError

    def score(self, entry: Entry, image: Image.Image, detections: list[Detection], colour: ColourCheck) -> dict:
        raise NotImplementedError

    def aggregate(self, records: Sequence[dict], entries: Sequence[Entry]) -> dict[str, float]:
        """``records[i]`` is the score of an image of ``entries[i]`` (entries repeat, one per sample)."""
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------------- helpers


def strip_article(phrase: str) -> str:
    text = " ".join(phrase.strip().split())
    lowered = text.lower()
    for article in ARTICLES:
        if lowered.startswith(article):
            return text[len(article) :]
    return text


def clamp_box(box: Sequence[float], where: str) -> tuple[float, float, float, float]:
    """A published box clamped to the canvas (GPT-4's boxes sometimes cross it); a degenerate one is an error."""
    try:
        x0, y0, x1, y1 = (min(1.0, max(0.0, float(v))) for v in box)
    except (TypeError, ValueError):
        raise InputError(f"data: {where}: box {box!r} is not four numbers") from None
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"data: {where}: box {list(box)} has no area; fix or remove that entry")
    return (x0, y0, x1, y1)


def make_layout(prompt: str, phrases: Sequence[str], boxes: Sequence[Sequence[float]], where: str) -> Layout:
    regions = tuple(Region(p, clamp_box(b, f"{where}, {p!r}")) for p, b in zip(phrases, boxes))
    return Layout(prompt=prompt, regions=regions)


def read_json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"data: {path} is not a readable JSON file ({what}): {e}") from None


def kept(detections: Sequence[Detection], threshold: float) -> list[Detection]:
    return [d for d in detections if d.score >= threshold]


def by_label(detections: Sequence[Detection]) -> dict[str, list[Detection]]:
    out: dict[str, list[Detection]] = {}
    for d in detections:
        out.setdefault(d.label, []).append(d)
    return out


def colour_of(image: Image.Image, detection: Detection, colour: ColourCheck) -> str:
    """The detector's exact colour when it knows it (the shapes evaluator), else the harness's colour check."""
    return detection.attributes.get("colour") or colour(image, detection.box, detection.mask)


def mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def harness_colour_check(names: Sequence[str] | None = None) -> ColourCheck:
    """The colour check of :mod:`layoutguide.bench.detectors.colour`: the dominant colour among ``names`` (its basic
    colour words when None); where that module is not installed, a check that says so when a suite first needs a
    colour the detector did not give."""
    try:
        from ..detectors.colour import dominant_colour  # type: ignore[import-not-found,unused-ignore]
    except ImportError:

        def missing(image: Image.Image, box: Box, mask: np.ndarray | None = None) -> str:
            raise InputError(
                "detector: it gives no colours and the colour check (layoutguide.bench.detectors.colour) is not "
                "installed; use a detector that reports colours or update layoutguide"
            )

        return missing

    def check(image: Image.Image, box: Box, mask: np.ndarray | None = None) -> str:
        return str(dominant_colour(image, box, mask) if names is None else dominant_colour(image, box, mask, names))

    return check
