"""Detectors for the public-suite harness (``layoutguide bench suite``): one interface (:mod:`.base`), one file per
detector, each registering itself; :mod:`.available` lists them."""

from __future__ import annotations

from .base import DETECTORS, Box, Detection, Detector, load_detector, register

__all__ = ["DETECTORS", "Box", "Detection", "Detector", "load_detector", "register"]
