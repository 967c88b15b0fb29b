"""Why 2 of 64 tuned ZestGuide images of the preset run score differently from the published n=200 run: entry 3 of
the seed-0 box suite generated alone, and in a batch of 8 (entries 0-7), compared with the batch-of-16 image of
bench-out/presets/box-shapes-s0-n64 (commands.sh stage sd) and scored.
Run: PYTHONPATH=src python docs/results/presets/batch_rounding.py"""

import numpy as np
from PIL import Image

from layoutguide.bench.suites import shapes_layout_suite
from layoutguide.loading import load_pipeline
from layoutguide.shapes.evaluate import evaluate

pipe = load_pipeline("shapes", device="cpu")
suite = shapes_layout_suite(64, 0)
saved = np.asarray(Image.open("bench-out/presets/box-shapes-s0-n64/images/zestguide/0003.png").convert("RGB"))
for entries in ([3], list(range(8))):
    out = pipe(
        layout=[suite.layouts[k] for k in entries],
        method="zestguide",
        seed=[suite.seeds[k] for k in entries],
        progress=False,
    )
    image = out.images[entries.index(3)]
    diff = np.abs(np.asarray(image.convert("RGB")).astype(int) - saved.astype(int))
    score = evaluate(image, suite.layouts[3])
    print(
        f"batch of {len(entries)}: max pixel difference to the batch-of-16 image {diff.max()}, mean {diff.mean():.3f};"
        f" object-in-box {score.object_in_box:.3f}, IoU {score.mean_iou:.4f}"
    )
