"""Every method for one step on SDXL base's real architecture (random weights, 128 px), with its peak memory recorded:
the run behind docs/results/sdxl/real-architecture (benchmarks/sdxl_real.py). bf16 where the CPU has bf16
instructions (8 GB of RAM); elsewhere fp32 (14 GB), because bf16 convolutions there fall back to a generic kernel
about 150x slower than fp32: on such a CI machine this test in bf16 ran past CI's 90 minutes; in fp32 it took
310 s here, alone on the two cores."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("sdxl_real")


@pytest.mark.slow
def test_every_method_runs_on_real_architecture_sdxl(bench):
    from layoutguide.backbones.sdxl import LayoutXLPipeline
    from layoutguide.loading import cpu_has_native_bf16
    from layoutguide.testing import sdxl_base_components

    dtype = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    pipe = LayoutXLPipeline(**sdxl_base_components(dtype=dtype))
    pipe.set_progress_bar_config(disable=True)
    assert 2.5e9 < sum(p.numel() for p in pipe.unet.parameters()) < 2.6e9  # SDXL base's UNet: 2.567 B
    rows = bench.run_methods(pipe, 128, bench.METHODS)
    assert [r["method"] for r in rows] == list(bench.METHODS)
    for row in rows:
        assert row["peak_mib"] >= 0 and row["finite"], row
        gradient = row["method"] not in ("none", "pww", "densediffusion")
        assert (row["iterations"] > 0) == gradient, row
        if gradient:  # SDXL's published levels: factor 4 (and ZestGuide's factor-2 up layers)
            assert row["layer_factors"] == ([2, 4] if "zestguide" in row["method"] else [4]), row
