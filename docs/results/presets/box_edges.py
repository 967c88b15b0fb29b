"""Cells of the 16x16 box masks under box_edges="cover" (ours) and "truncate" (official int(b*16)) on the shapes
benchmark suite: how much larger our masks are. Run: PYTHONPATH=src python docs/results/presets/box_edges.py"""

import numpy as np

from layoutguide.bench.suites import shapes_layout_suite

for seed in (0, 1):
    suite = shapes_layout_suite(200, seed, max_objects=4, use_masks=False)
    cover, trunc = [], []
    for layout in suite.layouts:
        cover += list(layout.rasterize(16, 16).reshape(len(layout.regions), -1).sum(1))
        trunc += list(layout.rasterize(16, 16, box_edges="truncate").reshape(len(layout.regions), -1).sum(1))
    ratio = np.array(cover) / np.array(trunc)
    print(
        f"suite seed {seed}: {len(cover)} boxes, mean cells cover {np.mean(cover):.1f}"
        f" vs truncate {np.mean(trunc):.1f}"
        f" (+{100 * (np.mean(cover) / np.mean(trunc) - 1):.0f}%); per box +{100 * (np.median(ratio) - 1):.0f}% median,"
        f" +{100 * (np.percentile(ratio, 90) - 1):.0f}% at the 90th percentile"
    )
