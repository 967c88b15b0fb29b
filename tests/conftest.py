"""Shared fixtures: tiny random-weight pipelines built in code and saved to local folders (no downloads)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from layoutguide.layout import Layout, Region
from layoutguide.loading import load_pipeline
from layoutguide.pipeline import LayoutPipeline
from layoutguide.testing import sd_scheduler, tiny_sd_pipeline, tiny_shapes_components  # noqa: F401 (tests import)
from layoutguide.testing import sharp_pipeline as build_sharp_pipeline
from layoutguide.testing import tiny_pipeline as build_tiny_pipeline


@pytest.fixture(scope="session")
def tiny_pipe() -> LayoutPipeline:
    """The shapes architecture at tiny widths: 16x16 latents, attention at 16x16, 8x8 and 4x4 (mid)."""
    return build_tiny_pipeline()


@pytest.fixture(scope="session")
def tiny_sd_pipe() -> LayoutPipeline:
    return tiny_sd_pipeline()


@pytest.fixture(scope="session")
def shipped() -> LayoutPipeline:
    """The shipped shapes model, loaded once for every test that uses it."""
    return load_pipeline(device="cpu")


@pytest.fixture(scope="session")
def shipped_gligen() -> LayoutPipeline:
    """The shipped shapes GLIGEN model, loaded once for every test that uses it."""
    return load_pipeline("shapes-gligen", device="cpu")


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, tiny_pipe) -> str:
    path = tmp_path_factory.mktemp("tiny-pipe")
    tiny_pipe.save_pretrained(path)
    return str(path)


@pytest.fixture
def two_region_layout() -> Layout:
    return Layout(
        prompt="a red circle and a blue square",
        regions=(Region("red circle", box=(0.05, 0.1, 0.45, 0.6)), Region("blue square", box=(0.55, 0.4, 0.95, 0.9))),
        width=64,
        height=64,
    )


@pytest.fixture(scope="session")
def sharp_pipe() -> LayoutPipeline:
    """A tiny pipeline with sharpened attention (q/k scaled by 4): guidance gradients not vanishingly small."""
    return build_sharp_pipeline()


BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def load_benchmark() -> Iterator[Callable[[str], ModuleType]]:
    """``load_benchmark(name)``: ``benchmarks/<name>.py`` as a module, with the benchmarks folder on the path while
    the test module runs (their imports of one another)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))

        def load(name: str) -> ModuleType:
            spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module

        yield load
