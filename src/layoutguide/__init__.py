"""layoutguide: training-free layout-grounded text-to-image generation on one loop.

Heavy modules (torch, diffusers) load on first use, so ``from layoutguide import Layout`` stays light.
"""

from __future__ import annotations

from .layout import Layout, LayoutError, Region

__version__ = "0.1.0"
__all__ = ["Layout", "LayoutError", "Region", "LayoutPipeline", "load_pipeline", "get_method", "__version__"]


def __getattr__(name: str):
    if name == "LayoutPipeline":
        from .pipeline import LayoutPipeline

        return LayoutPipeline
    if name == "load_pipeline":
        from .loading import load_pipeline

        return load_pipeline
    if name == "get_method":
        from .methods import get_method

        return get_method
    raise AttributeError(f"module 'layoutguide' has no attribute {name!r}")
