"""HRS and DrawBench prompts with the GPT-4 boxes the Attention Refocusing repository ships.

``--data`` is that repository's ``data_evaluate_LLM`` folder: ``HRS/{counting_prompts,spatial_compositions_prompts,
size_compositions_prompts}.csv`` (the HRS prompts and their ground truth), ``gpt_generated_box/*.p`` (``{prompt:
(object names, boxes)}``, boxes xyxy on a 512 px canvas) and ``gpt_generated_box_drawbench/{counting,spatial}.p``.
``gpt_generated_box/color.p`` gives the colour prompts. Scoring follows the repository's ``eval_metrics``: counting
is precision / recall / F1 of per-kind counts (``calc_counting_acc.py``); spatial and size take each named object's
best detection and check the prompt's relations between box edges or areas (``calc_spatial_relation_acc.py``,
``calc_size_comp_acc.py``); colour takes each object's best detection and asks its colour (the repository classifies
hue on MaskDINO masks); levels are the CSV's thirds (easy, medium, hard) as there. The pickles are read with an
unpickler that accepts plain data only.
"""

from __future__ import annotations

import csv
import io
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ...errors import InputError
from ..detectors.base import Detection
from .base import ColourCheck, Entry, Metric, PublicSuite, by_label, colour_of, kept, make_layout, mean, words

CANVAS = 512
LEVELS = ("easy", "medium", "hard")
BOX_FILES = {
    "hrs-counting": ("HRS/counting_prompts.csv", ("counting.p", "counting_500_1499.p", "counting_1500_2499.p")),
    "hrs-spatial": ("HRS/spatial_compositions_prompts.csv", ("spatial.p", "spatial_2.p")),
    "hrs-size": ("HRS/size_compositions_prompts.csv", ("size.p",)),
}
ABOVE = ("on", "above", "over", "top", "on top of")
BELOW = ("below", "beneath", "under", "underneath")
RIGHT = ("on the right of", "right", "to the right of")
LEFT = ("on the left of", "left", "to the left of")
BIGGER, SMALLER = ("larger", "bigger"), ("smaller",)
SAME_COLOUR = {"gray": "grey"}  # the colour check's spelling
COLOUR_WORDS = (
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
    "brown",
    "black",
    "white",
    "gray",
    "grey",
)


class _PlainData(pickle.Unpickler):
    """Plain containers, strings and numbers only: a pickle naming any class or function is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise InputError(f"data: the box pickle names {module}.{name}; only plain lists, dicts and numbers are read")


def read_box_pickle(path: Path) -> dict[str, Any]:
    try:
        data = _PlainData(io.BytesIO(path.read_bytes())).load()
    except InputError:
        raise
    except Exception as e:  # a damaged pickle raises anything from EOFError to UnpicklingError
        raise InputError(f"data: {path} is not a readable box pickle ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise InputError(f"data: {path} is not a mapping of prompt -> (objects, boxes)")
    return data


def read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return [{k: (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"data: {path} is not a readable CSV file: {e}") from None


def colour_and_noun(name: str, prompt: str) -> tuple[str, str] | None:
    """``"red car"`` -> ``("red", "car")``; ``"car"`` in "a red car" -> the same; None without a colour word."""
    first, _, rest = name.lower().strip().partition(" ")
    if first in COLOUR_WORDS and rest:
        return SAME_COLOUR.get(first, first), rest
    said = words(prompt)
    noun = words(name)
    for i in range(1, len(said)):
        if said[i : i + len(noun)] == noun and said[i - 1] in COLOUR_WORDS:
            return SAME_COLOUR.get(said[i - 1], said[i - 1]), " ".join(noun)
    return None


def _edges(rel: str, a, b) -> bool:
    """The repository's checks between boxes ``a`` and ``b`` (xyxy, y down); ``between`` is handled by caller."""
    if rel in RIGHT:
        return a[2] > b[2]
    if rel in LEFT:
        return a[0] < b[0]
    if rel in ABOVE:
        return a[1] < b[1] or a[3] < b[3]
    if rel in BELOW:
        return a[3] > b[3] or a[1] > b[1]
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    if rel in BIGGER:
        return area_a > area_b
    if rel in SMALLER:
        return area_a < area_b
    raise InputError(f"data: relation {rel!r} is not one HRS checks")


def _between(a, b, c) -> bool:
    return any(
        (_edges(r1, a, b) and _edges(r2, a, c))
        for r1, r2 in (("right", "left"), ("left", "right"), ("below", "above"), ("above", "below"))
    )


def relations_hold(kind: str, rels: list[str], boxes: list) -> bool:
    """HRS's spatial / size verdict for 2-4 objects (the objects' order is the CSV's)."""
    n = len(boxes)
    if n == 2:
        return _edges(rels[0], boxes[0], boxes[1])
    if kind == "spatial" and len(rels) == 1:  # "between": the first object(s) between the last two
        return all(_between(boxes[i], boxes[-2], boxes[-1]) for i in range(n - 2))
    if n == 3:
        return _edges(rels[0], boxes[0], boxes[1]) and _edges(rels[1], boxes[0], boxes[2])
    if kind == "size":
        first = _edges(rels[0], boxes[0], boxes[1]) and _edges(rels[0], boxes[0], boxes[2])
        return first and _edges(rels[1], boxes[0], boxes[3])
    return all(_edges(rels[0], boxes[i], boxes[2]) for i in (0, 1)) and all(
        _edges(rels[1], boxes[i], boxes[3]) for i in (0, 1)
    )


class Hrs(PublicSuite):
    """HRS (Bakr et al., ICCV 2023) counting, spatial and size prompts, and DrawBench counting and spatial prompts,
    with the GPT-4 layouts of Attention Refocusing: are the objects drawn in the asked number, relation or size?"""

    paper = "HRS-Bench / Attention Refocusing (Phung et al., CVPR 2024), data_evaluate_LLM/eval_metrics"
    score_threshold = 0.5  # UniDet's demo threshold in the repository's detection step

    def __init__(self, name: str, entries: Sequence[Entry], source: str, notes: Sequence[str] = ()):
        self.name = name
        self.kind = name.split("-", 1)[1]
        if self.kind == "counting":
            self.metrics = (Metric("f1", "F1"), Metric("precision", "precision"), Metric("recall", "recall"))
        elif self.kind == "colour":
            self.colour_names = COLOUR_WORDS
            self.metrics = (Metric("accuracy", "accuracy (every object)"), Metric("object_accuracy", "objects"))
        else:
            self.metrics = (Metric("accuracy", "accuracy"), Metric("present", "all objects detected"))
        super().__init__(entries, source, notes)

    @classmethod
    def read(cls, name: str, folder: Path) -> Hrs:
        if not folder.is_dir():
            raise InputError(f"data: give Attention Refocusing's data_evaluate_LLM folder for {name}, not {folder}")
        if name.startswith("drawbench"):
            return cls._read_drawbench(name, folder)
        if name == "hrs-colour":
            return cls._read_colour(folder)
        csv_name, pickles = BOX_FILES[name]
        boxes: dict[str, Any] = {}
        found = [folder / "gpt_generated_box" / p for p in pickles if (folder / "gpt_generated_box" / p).is_file()]
        if not found:
            raise InputError(f"data: {folder / 'gpt_generated_box'} has none of {', '.join(pickles)}")
        for path in found:
            boxes.update(read_box_pickle(path))
        rows = read_csv(folder / csv_name)
        entries, missing = [], 0
        third = max(1, len(rows) // 3)
        for k, row in enumerate(rows):
            prompt = next((row[c] for c in ("synthetic_prompt", "meta_prompt") if row.get(c) in boxes), None)
            if prompt is None:
                missing += 1
                continue
            names, pixel_boxes = boxes[prompt]
            relative = [[v / CANVAS for v in box] for box in pixel_boxes]
            layout = make_layout(prompt, [str(n) for n in names], relative, f"{name} prompt {k}")
            meta = cls._truth(name, row)
            entries.append(Entry(str(k), layout, LEVELS[min(k // third, 2)], meta))
        notes = []
        if missing:
            notes.append(
                f"prompts: {len(rows) - missing} of {len(rows)} ({name}: the GPT-4 box files lack {missing}); "
                "accuracy is over the prompts with boxes, the paper's over all"
            )
        return cls(name, entries, str(folder), notes)

    @staticmethod
    def _truth(name: str, row: dict[str, str]) -> dict[str, Any]:
        if name == "hrs-counting":
            counts = [(row["obj1"], int(row["n1"] or 0)), (row.get("obj2", ""), int(row.get("n2") or 0))]
            return {"counts": [[name, k] for name, k in counts if name and k > 0]}
        objs = [row[f"obj{i}"] for i in range(1, 5) if row.get(f"obj{i}")]
        rels = [row[f"rel{i}"] for i in (1, 2) if row.get(f"rel{i}")]
        return {"objects": objs, "relations": rels}

    @classmethod
    def _read_colour(cls, folder: Path) -> Hrs:
        """HRS colour prompts from ``gpt_generated_box/color.p`` alone (the repository ships no colour CSV): each
        object named "COLOUR NOUN", or a NOUN with the colour word just before it in the prompt."""
        path = folder / "gpt_generated_box" / "color.p"
        if not path.is_file():
            raise InputError(
                f"data: {path} is missing (HRS colour prompts' GPT-4 boxes in Attention Refocusing's repo)"
            )
        entries, skipped = [], 0
        for k, (prompt, (names, pixel_boxes)) in enumerate(read_box_pickle(path).items()):
            objects = [colour_and_noun(str(n), str(prompt)) for n in names]
            if not objects or any(o is None for o in objects):
                skipped += 1
                continue
            relative = [[v / CANVAS for v in box] for box in pixel_boxes]
            layout = make_layout(str(prompt), [str(n) for n in names], relative, f"hrs-colour prompt {k}")
            entries.append(Entry(str(k), layout, f"{len(names)} objects", {"coloured": objects}))
        notes = ["ground truth: each object's colour as GPT-4's layout names it (no colour CSV is shipped)"]
        if skipped:
            notes.append(f"prompts: {skipped} colour prompts skipped (an object without a colour word)")
        return cls("hrs-colour", entries, str(folder), notes)

    @classmethod
    def _read_drawbench(cls, name: str, folder: Path) -> Hrs:
        kind = name.split("-", 1)[1]
        path = folder / "gpt_generated_box_drawbench" / f"{kind}.p"
        if not path.is_file():
            raise InputError(f"data: {path} is missing (DrawBench's GPT-4 boxes in Attention Refocusing's repo)")
        entries, skipped = [], 0
        for k, (prompt, (names, pixel_boxes)) in enumerate(read_box_pickle(path).items()):
            names = [str(n) for n in names]
            relative = [[v / CANVAS for v in box] for box in pixel_boxes]
            layout = make_layout(str(prompt), names, relative, f"{name} prompt {k}")
            if kind == "counting":
                meta: dict[str, Any] = {"counts": [[n, names.count(n)] for n in dict.fromkeys(names)]}
            else:
                rel = next((r for r in (*RIGHT, *LEFT, *BELOW, *ABOVE) if f" {r} " in f" {prompt.lower()} "), None)
                unique = list(dict.fromkeys(names))
                if rel is None or len(unique) != 2:
                    skipped += 1
                    continue
                meta = {"objects": unique, "relations": [rel]}
            entries.append(Entry(str(k), layout, f"{len(names)} objects", meta))
        notes = ["ground truth: DrawBench ships none for these boxes; counts are the GPT-4 layout's own"]
        if skipped:
            notes.append(f"prompts: {skipped} DrawBench spatial prompts skipped (no two objects and one relation)")
        return cls(name, entries, str(folder), notes)

    def differences(self, detector: str) -> list[str]:
        out = super().differences(detector)
        out.append(f"detector: {detector} at score >= {self.score_threshold}, not UniDet (the paper's)")
        return out

    def labels(self, entry: Entry) -> list[str]:
        if "coloured" in entry.meta:
            return list(dict.fromkeys(noun for _, noun in entry.meta["coloured"]))
        if "counts" in entry.meta:
            return [name for name, _ in entry.meta["counts"]]
        return list(dict.fromkeys(entry.meta["objects"]))

    def score(self, entry: Entry, image: Image.Image, detections: list[Detection], colour: ColourCheck) -> dict:
        found = by_label(kept(detections, self.score_threshold))
        if "coloured" in entry.meta:
            right = []
            for want, noun in entry.meta["coloured"]:
                top = max(found.get(noun, []), key=lambda d: d.score, default=None)
                right.append(top is not None and colour_of(image, top, colour).lower() == want)
            return {"objects": right}
        if "counts" in entry.meta:
            return {"counts": [[n, len(found.get(n, []))] for n, n_true in entry.meta["counts"]]}
        best = {name: max(ds, key=lambda d: d.score).box for name, ds in found.items() if ds}
        objects = entry.meta["objects"]
        if not all(o in best for o in objects):
            return {"present": False, "ok": False}
        ok = relations_hold(
            self.kind, [" ".join(words(r)) for r in entry.meta["relations"]], [best[o] for o in objects]
        )
        return {"present": True, "ok": bool(ok)}

    def aggregate(self, records: Sequence[dict], entries: Sequence[Entry]) -> dict[str, float]:
        if self.kind == "counting":
            tp = fp = fn = 0
            for record, entry in zip(records, entries):
                for (_, n_true), (_, n_seen) in zip(entry.meta["counts"], record["counts"]):
                    tp, fp, fn = tp + min(n_true, n_seen), fp + max(n_seen - n_true, 0), fn + max(n_true - n_seen, 0)
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + fn) if tp + fn else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            return {"f1": f1, "precision": precision, "recall": recall}
        if self.kind == "colour":
            return {
                "accuracy": mean([float(all(r["objects"])) for r in records]),
                "object_accuracy": mean([float(o) for r in records for o in r["objects"]]),
            }
        return {
            "accuracy": mean([float(r["ok"]) for r in records]),
            "present": mean([float(r["present"]) for r in records]),
        }
