"""Pictures people read: a region drawn alone (a heatmap tile) keeps the number and colour it has in the layout."""

from __future__ import annotations

import numpy as np
from PIL import Image

from layoutguide.layout import Layout, Region
from layoutguide.viz import PALETTE, region_heatmaps

LAYOUT = Layout(
    "a red circle and a blue square",
    (Region("red circle", box=(0.1, 0.1, 0.45, 0.5)), Region("blue square", box=(0.5, 0.5, 0.9, 0.9))),
    width=64,
    height=64,
)


def colours(tile: Image.Image) -> set[tuple[int, int, int]]:
    return {tuple(int(v) for v in c) for c in np.asarray(tile.convert("RGB")).reshape(-1, 3)}


def test_each_heatmap_tile_has_its_regions_colour_not_the_first_ones():
    maps = np.random.default_rng(0).random((8, 8, 77)).astype(np.float32)
    tiles = region_heatmaps(Image.new("RGB", (64, 64)), LAYOUT, maps, [[2, 3], [6, 7]], size=128)
    assert PALETTE[0] in colours(tiles[0]) and PALETTE[1] not in colours(tiles[0])
    assert PALETTE[1] in colours(tiles[1]) and PALETTE[0] not in colours(tiles[1])
