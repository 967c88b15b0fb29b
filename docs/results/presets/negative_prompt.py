"""The official presets at their own sampling but without their negative prompt (an explicit ``negative_prompt=""``
wins over the preset's): the first 16 layouts of the seed-0 box suite, the same seeds as commands.sh stage sd.
Prints object-in-box and blank images (no detection) per row, to set beside the n=64 run's first 16 entries
(per_image.csv, run box-shapes-s0-n64). Run: PYTHONPATH=src python docs/results/presets/negative_prompt.py"""

from layoutguide.bench.suites import shapes_layout_suite
from layoutguide.loading import load_pipeline
from layoutguide.shapes.evaluate import aggregate, evaluate

N = 16
pipe = load_pipeline("shapes", device="cpu")
suite = shapes_layout_suite(N, 0)
for method in ("zestguide[preset=official]", "refocus[preset=official]"):
    out = pipe(layout=list(suite.layouts), method=method, seed=list(suite.seeds), negative_prompt="", progress=False)
    scores = [evaluate(image, layout) for image, layout in zip(out.images, suite.layouts)]
    summary = aggregate(scores)
    blank = sum(s.n_detections == 0 for s in scores)
    print(
        f"{method} without its negative prompt, n={N}: object-in-box {summary['object_in_box']:.3f},"
        f" found {summary['found_rate']:.3f}, colour {summary['colour_acc']:.3f}, blank {blank}"
    )
