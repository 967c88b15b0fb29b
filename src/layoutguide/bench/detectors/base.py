"""What every detector of the public-suite harness gives and takes: one interface, one registry.

A detector answers "where are these things in this image?": it takes an image and the label texts a suite asks
about ("apple", "red apple", "circle") and returns one :class:`Detection` per object it finds, each naming the label
it answers. Scoring (matching, IoU thresholds, colour checks, AP) is the suite's, never the detector's, so adding a
detector is one file that registers a factory with :func:`register`; ``load_detector(name, weights)`` builds it.

Weights are always a local path the user gives: the harness never downloads at run time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ...errors import InputError

Box = tuple[float, float, float, float]  # x0, y0, x1, y1, relative to the image (0-1), far edge exclusive


@dataclasses.dataclass(frozen=True, eq=False)
class Detection:
    """One object found: the ``label`` it answers (one of the labels asked, verbatim), its ``box`` (relative xyxy),
    the detector's ``score`` (0-1), a boolean ``mask`` of the image's size when the detector segments, and the
    attributes the detector knows exactly (``{"colour": "red"}`` from the shapes world's evaluator); a suite that
    needs an attribute the detector does not give measures it itself (a colour check)."""

    label: str
    box: Box
    score: float
    mask: np.ndarray | None = None
    attributes: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "box": [round(float(v), 6) for v in self.box],
            "score": round(float(self.score), 6),
        }
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        return out


class Detector(Protocol):
    """``name``: the registry key; ``description``: one line for reports (model, weights, thresholds)."""

    name: str
    description: str

    def detect(self, image: Image.Image, labels: Sequence[str]) -> list[Detection]:
        """Every object of ``labels`` found in ``image``; each detection's ``label`` is one of ``labels``."""
        ...


DetectorFactory = Callable[..., Detector]  # (weights: str | None, device: str, **options) -> Detector
DETECTORS: dict[str, DetectorFactory] = {}


def register(name: str) -> Callable[[DetectorFactory], DetectorFactory]:
    """Decorator: make ``factory`` loadable as ``load_detector(name, ...)``."""

    def add(factory: DetectorFactory) -> DetectorFactory:
        if name in DETECTORS:
            raise ValueError(f"detector {name!r} is registered twice")
        DETECTORS[name] = factory
        return factory

    return add


def load_detector(name: str, weights: str | None = None, *, device: str = "cpu", **options: Any) -> Detector:
    """The detector registered as ``name``, built from the local ``weights`` path (file or folder)."""
    from . import available  # noqa: F401  (imports every detector module, which registers it)

    if name not in DETECTORS:
        raise InputError(f"detector: unknown {name!r}; choose one of {', '.join(sorted(DETECTORS))}")
    return DETECTORS[name](weights, device, **options)
