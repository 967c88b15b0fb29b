"""Does a method's accuracy depend on how a layout's phrases are written?

Each shapes-world box layout of the benchmark suite is run with its phrases in every form of
``layoutguide.phrase_forms`` (bare "red circle", article "a red circle", determiner "the red circle", caps
"A Red Circle,"; the prompt is never changed) under every method, with the same initial noise per layout, and
scored by the exact evaluator against the layout's boxes. A method robust to phrase form scores the same on
every form.

    python benchmarks/phrase_forms.py run --methods zestguide,refocus --forms bare,article --n 8 --label before \\
        --out docs/results/phrase-forms/results-before.json
    python benchmarks/phrase_forms.py indices --out before.json   # token indices of every benchmark layout
    python benchmarks/phrase_forms.py compare-indices before.json after.json  # -> indices.json (counts)
    python benchmarks/phrase_forms.py report   # merges results-*.json into results.json, writes report.md

``run`` adds one entry per (label, model, method, form, suite seed) to ``results.json`` (written atomically after
every entry; a rerun skips the entries already there, so an interrupted run resumes). ``--label`` names the code
state measured ("before": the token selection before phrase forms were handled). A layout whose phrase the
library refuses (``PhraseNotFoundError``: "the red circle" is not in "a red circle and ...") makes no image: its
regions count as missed and the entry records how many layouts were refused. ``report`` writes ``report.md``:
token selection per benchmark suite and form, object-in-box per method x form and each form's difference from bare
form, then ``notes.md`` of the same folder.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).resolve().parent.parent / "src" / "layoutguide" / "weights"
FORMS = ("bare", "article", "determiner", "caps")
TOLERANCE = 0.03  # a method counts as robust when every form is within this of its bare-form rate


def entry_key(label: str, model: str, method: str, form: str, seed: int, n: int) -> str:
    return f"{label}|{model}|{method}|{form}|seed{seed}|n{n}"


def load_results(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {"entries": {}}


def measure(pipe, layouts, method: str, form: str, seed: int, batch_size: int) -> dict[str, Any]:
    """Object-in-box and colour accuracy of ``method`` on ``layouts`` with phrases in ``form``."""
    from layoutguide.phrase_forms import with_phrase_form
    from layoutguide.shapes.evaluate import aggregate, evaluate
    from layoutguide.tokens import PhraseNotFoundError, map_phrases

    formed = [with_phrase_form(layout, form) for layout in layouts]
    runnable, refused = [], []
    for k, layout in enumerate(formed):
        try:
            map_phrases(pipe.tokenizer, layout.prompt, layout.phrases)
            runnable.append(k)
        except PhraseNotFoundError:
            refused.append(k)
    scores: dict[int, Any] = {}
    t0 = time.perf_counter()
    for start in range(0, len(runnable), batch_size):
        chunk = runnable[start : start + batch_size]
        result = pipe(
            layout=[formed[k] for k in chunk],
            method=method,
            seed=[seed * 100_000 + k for k in chunk],
            progress=False,
        )
        for k, image in zip(chunk, result.images):
            scores[k] = evaluate(image, layouts[k])  # scored against the bare layout: same boxes, same kinds
    seconds = time.perf_counter() - t0
    summary = aggregate([scores[k] for k in runnable]) if runnable else {}
    per_image = [scores[k].object_in_box if k in scores else 0.0 for k in range(len(layouts))]
    colour = [scores[k].colour_acc if k in scores else 0.0 for k in range(len(layouts))]
    return {
        "object_in_box": sum(per_image) / len(per_image),
        "colour_acc": sum(colour) / len(colour),
        "object_in_box_runnable": summary.get("object_in_box"),
        "refused": len(refused),
        "n": len(layouts),
        "per_image_object_in_box": per_image,
        "seconds_per_image": seconds / max(1, len(runnable)),
    }


def run(args: argparse.Namespace) -> None:
    from layoutguide.bench import shapes_suite
    from layoutguide.layout import atomic_write_text
    from layoutguide.loading import load_pipeline

    model_dir = SHIPPED / args.model if (SHIPPED / args.model).is_dir() else Path(args.model)
    pipe = load_pipeline(str(model_dir))
    pipe.set_progress_bar_config(disable=True)
    results = load_results(args.out)
    command = "python benchmarks/phrase_forms.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    for seed in args.seeds:
        layouts = [s.layout(with_masks=False) for s in shapes_suite(args.n, seed)]
        for method in args.methods.split(","):
            for form in args.forms.split(","):
                key = entry_key(args.label, args.model, method, form, seed, args.n)
                if key in results["entries"]:
                    continue
                entry = measure(pipe, layouts, method, form, seed, args.batch_size)
                entry.update(label=args.label, model=args.model, method=method, form=form, seed=seed, command=command)
                results["entries"][key] = entry
                atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")
                print(f"{key}: object-in-box {entry['object_in_box']:.3f} (refused {entry['refused']})", flush=True)


def benchmark_layouts() -> dict[str, list]:
    """Every layout of the shipped benchmarks: box suite, mask suite and the rule planner's relation layouts."""
    from layoutguide.bench import relation_prompts, shapes_suite
    from layoutguide.planner import get_planner

    planner = get_planner("rule")
    suites = {
        "shapes_suite(200, 0)": [s.layout(with_masks=False) for s in shapes_suite(200, 0)],
        "shapes_suite(32, 2, n_objects=(1, 3))": [
            s.layout(with_masks=False) for s in shapes_suite(32, 2, n_objects=(1, 3))
        ],
    }
    for seed in (0, 1, 2):
        suites[f"rule planner on relation_prompts(96, {seed})"] = [
            planner.plan(prompt).layout for prompt, *_ in relation_prompts(96, seed)
        ]
    return suites


def indices(args: argparse.Namespace) -> None:
    """Write every benchmark layout's token indices, per tokenizer and phrase form, to ``--out`` (JSON)."""
    from transformers import CLIPTokenizer

    from layoutguide.errors import LayoutguideError
    from layoutguide.layout import atomic_write_text
    from layoutguide.phrase_forms import with_phrase_form
    from layoutguide.tokens import map_phrases

    table: dict[str, Any] = {}
    for model in ("shapes", "shapes-gligen"):
        tokenizer = CLIPTokenizer.from_pretrained(SHIPPED / model / "tokenizer")
        for suite, layouts in benchmark_layouts().items():
            for form in args.forms.split(","):
                rows: list[Any] = []
                for layout in layouts:
                    layout = with_phrase_form(layout, form)
                    try:
                        rows.append([list(i) for i in map_phrases(tokenizer, layout.prompt, layout.phrases).indices])
                    except LayoutguideError as e:
                        rows.append(str(e))
                table[f"{model} | {suite} | {form}"] = rows
    atomic_write_text(args.out, json.dumps(table) + "\n")


def compare_indices(args: argparse.Namespace) -> None:
    """Per (tokenizer, suite, form): layouts refused and layouts whose indices changed between two ``indices``
    files (before, after), and layouts whose indices in the second differ from its bare form; printed and written."""
    from layoutguide.layout import atomic_write_text

    before, after = json.loads(args.before.read_text()), json.loads(args.after.read_text())
    rows = []
    for key in before:
        bare = after[key.rsplit(" | ", 1)[0] + " | bare"]
        model, suite, form = key.split(" | ")
        row = {
            "model": model,
            "suite": suite,
            "form": form,
            "layouts": len(before[key]),
            "refused_before": sum(isinstance(x, str) for x in before[key]),
            "refused_after": sum(isinstance(x, str) for x in after[key]),
            "changed": sum(x != y for x, y in zip(before[key], after[key])),
            "differ_from_bare_after": sum(x != y for x, y in zip(after[key], bare)),
        }
        rows.append(row)
        print(row)
    atomic_write_text(args.summary, json.dumps(rows, indent=1) + "\n")


def report(args: argparse.Namespace) -> None:
    """Merge ``results-*.json`` (and ``indices.json``) of ``--dir`` into ``results.json`` and write ``report.md``."""
    from layoutguide.layout import atomic_write_text

    entries: dict[str, Any] = {}
    for path in sorted(args.dir.glob("results-*.json")):
        entries.update(load_results(path)["entries"])
    index_rows = json.loads((args.dir / "indices.json").read_text()) if (args.dir / "indices.json").exists() else []
    merged = {"entries": entries, "token_indices": index_rows}
    atomic_write_text(args.dir / "results.json", json.dumps(merged, indent=1) + "\n")
    lines = ["# Object-in-box by phrase form", "", __doc__.split("\n\n")[0].strip(), ""]
    if index_rows:
        lines += [
            "## Token selection on every shipped benchmark layout",
            "",
            "| tokenizer | layouts | n | form | refused before | indices changed | differ from bare form after |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['model']} | {r['suite']} | {r['layouts']} | {r['form']} | {r['refused_before']} | {r['changed']} | "
            f"{r['differ_from_bare_after']} |"
            for r in index_rows
        ]
        lines.append("")
    groups: dict[tuple, dict[str, dict[str, Any]]] = {}
    for e in entries.values():
        groups.setdefault((e["label"], e["model"], e["seed"], e["n"], e["method"]), {})[e["form"]] = e
    lines += [
        "## Object-in-box (box layouts, exact evaluator)",
        "",
        "| code | model | suite seed | n | method | " + " | ".join(FORMS) + " | worst form - bare | layouts refused |",
        "|---|---|---|---|---|" + "---|" * len(FORMS) + "---|---|",
    ]
    for (label, model, seed, n, method), by_form in sorted(groups.items()):
        cells = [f"{by_form[f]['object_in_box']:.3f}" if f in by_form else "-" for f in FORMS]
        bare = by_form.get("bare", {}).get("object_in_box")
        others = [e["object_in_box"] for f, e in by_form.items() if f != "bare"]
        gap = f"{min(others) - bare:+.3f}" if bare is not None and others else "-"
        refused = max(e["refused"] for e in by_form.values())
        lines.append(
            f"| {label} | {model} | {seed} | {n} | {method} | " + " | ".join(cells) + f" | {gap} | {refused} |"
        )
    commands = sorted({e["command"] for e in entries.values()})
    lines += ["", "Reproduce:", "", "```", *commands, "```", ""]
    notes = args.dir / "notes.md"
    if notes.exists():
        lines += [notes.read_text()]
    atomic_write_text(args.dir / "report.md", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="measure and add entries to results.json")
    run_parser.add_argument("--model", default="shapes", help="shapes, shapes-gligen or a model folder")
    run_parser.add_argument("--methods", default="refocus,zestguide")
    run_parser.add_argument("--forms", default=",".join(FORMS))
    run_parser.add_argument("--n", type=int, default=48)
    run_parser.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0])
    run_parser.add_argument("--batch-size", type=int, default=8)
    run_parser.add_argument("--label", default="after")
    run_parser.add_argument("--out", type=Path, default=Path("docs/results/phrase-forms/results.json"))
    report_parser = sub.add_parser("report", help="merge results-*.json into results.json, write report.md")
    report_parser.add_argument("--dir", type=Path, default=Path("docs/results/phrase-forms"))
    indices_parser = sub.add_parser("indices", help="write every benchmark layout's token indices (JSON)")
    indices_parser.add_argument("--forms", default=",".join(FORMS))
    indices_parser.add_argument("--out", type=Path, required=True)
    compare_parser = sub.add_parser("compare-indices", help="count layouts whose indices differ between two files")
    compare_parser.add_argument("before", type=Path)
    compare_parser.add_argument("after", type=Path)
    compare_parser.add_argument("--summary", type=Path, default=Path("docs/results/phrase-forms/indices.json"))
    args = parser.parse_args()
    commands = {"run": run, "report": report, "indices": indices, "compare-indices": compare_indices}
    commands[args.command](args)


if __name__ == "__main__":
    main()
