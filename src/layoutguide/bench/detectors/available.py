"""Imports every detector module so each registers itself (``base.load_detector`` imports this). The modules
import their heavy packages (transformers' models, ultralytics) only when a detector is built."""

from . import grounding_dino, owlv2, shapes, yolo  # noqa: F401
