"""Imports every detector module so each registers itself (``base.load_detector`` imports this)."""

from . import shapes  # noqa: F401
