"""``bench merge``: the score files of one or more run folders (shards, ``accelerate`` processes) -> one
``results.json``, ``report.md`` (a table per method and per level, the detector named, every protocol difference)
and ``grid.png``. A one-process run ends with the same function, so its report and a merged one are the same."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ...errors import InputError
from ...viz import draw_layout, grid
from ..files import Report, png_bytes, read_json, write_bytes, write_json, write_text
from ..runner import image_path
from .base import Entry, PublicSuite

EXAMPLES = 6
TILE = 256  # every tile the same size, whatever the model's resolution
SHARED = ("model", "suite", "data", "detector", "score_threshold", "matching", "n", "samples", "seed", "steps")


def _run_record(folder: Path, report: Report) -> dict[str, Any]:
    record = read_json(folder / "run.json", report, "this folder cannot be merged")
    if not record or not isinstance(record.get("settings"), dict) or "suite" not in record["settings"]:
        raise InputError(f"folders: {folder} holds no bench suite run (no run.json); give the --out of a bench suite")
    return record


def merge_folders(folders: Sequence[Path], out: Path, *, report: Report = print) -> dict[str, Any]:
    """Aggregate every method's scores found in ``folders`` (the same run's shards) and write the report to ``out``."""
    from . import load_suite
    from .run import flat_indices, score_path

    if not folders:
        raise InputError("folders: give at least one bench suite output folder")
    runs = [_run_record(Path(f), report) for f in folders]
    settings = runs[0]["settings"]
    for folder, run in zip(folders[1:], runs[1:]):
        for key in SHARED:
            if run["settings"].get(key) != settings.get(key):
                raise InputError(
                    f"folders: {folder} was made with {key}={run['settings'].get(key)!r}, {folders[0]} with "
                    f"{settings.get(key)!r}; merge only shards of one run"
                )
    suite = load_suite(settings["suite"], settings["data"], matching=settings.get("matching") or "max-iou")
    default_threshold = suite.score_threshold
    suite.score_threshold = settings["score_threshold"]
    run_notes = read_json(Path(folders[0]) / "command.json", report, "the command is left out") or {}
    given = [m for m in run_notes.get("methods") or [] if isinstance(m, str)]  # the command's order (run.json sorts)
    methods = list(dict.fromkeys([*given, *(label for run in runs for label in run["methods"])]))
    items = flat_indices(len(suite), settings["n"], settings["samples"])
    results: dict[str, Any] = {"config": settings, "methods": {}, "levels": {}}
    where: dict[str, dict[int, Path]] = {}
    for label in methods:
        records, entries, where[label] = [], [], {}
        missing = 0
        for k in items:
            found = next((Path(f) for f in folders if score_path(Path(f), label, k).exists()), None)
            record = read_json(score_path(found, label, k), report, "score it again") if found else None
            if record is None:
                missing += 1
                continue
            where[label][k] = found  # type: ignore[assignment]
            records.append(record)
            entries.append(suite.entries[k % len(suite)])
        if missing:
            raise InputError(
                f"folders: {missing} of {len(items)} images of {label} have no score in "
                f"{', '.join(map(str, folders))}; "
                "finish every shard (rerun the same command) and merge again"
            )
        results["methods"][label] = suite.aggregate(records, entries)
        results["levels"][label] = {}
        for level in sorted(dict.fromkeys(e.level for e in entries), key=suite.level_key):
            pairs = [(r, e) for r, e in zip(records, entries) if e.level == level]
            results["levels"][label][level] = suite.aggregate([r for r, _ in pairs], [e for _, e in pairs])
    differences = suite.differences(settings["detector"])
    if settings["score_threshold"] != default_threshold:
        differences.append(f"score threshold: {settings['score_threshold']}, the protocol's is {default_threshold}")
    if run_notes.get("prompts_with_phrases_appended"):
        differences.append(
            f"prompts: {run_notes['prompts_with_phrases_appended']} lacked a region's phrase, which was appended "
            '("prompt, phrase", LMD+\'s rule) so that the methods can ground it'
        )
    results["differences"] = differences
    results["describe"] = suite.describe()
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    _write_grid(suite, items, where, out)
    command = run_notes.get("command")
    write_text(out / "report.md", report_text(suite, results, command, len(folders)))
    return results


def _cell(value: Any, fmt: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def table(suite: PublicSuite, rows: dict[str, dict[str, float]], first: str) -> str:
    lines = [
        f"| {first} | " + " | ".join(m.header for m in suite.metrics) + " |",
        "|---" * (len(suite.metrics) + 1) + "|",
    ]
    for name, values in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(values.get(m.key), m.fmt) for m in suite.metrics) + " |")
    return "\n".join(lines)


def report_text(suite: PublicSuite, results: dict[str, Any], command: str | None, n_folders: int) -> str:
    cfg = results["config"]
    lines = [
        f"# {suite.name}",
        "",
        results["describe"],
        "",
        f"Data: `{cfg['data']}` ({len(suite)} prompts in the file; n={cfg['n'] or 'all'}, {cfg['samples']} sample(s) "
        f"per prompt, seed {cfg['seed']}). Detector: **{cfg['detector']}** ({cfg['detector_description']}), "
        f"score >= {cfg['score_threshold']}. Protocol: {suite.paper}."
        + (f" Merged from {n_folders} folders." if n_folders > 1 else ""),
        "",
        table(suite, results["methods"], "method"),
        "",
    ]
    for label, levels in results["levels"].items():
        if len(levels) > 1:
            lines += [f"## {label}, per level", "", table(suite, levels, "level"), ""]
    lines += ["## Differences from the paper's protocol", ""]
    lines += [f"- {d}" for d in results["differences"]] or ["- none"]
    lines += ["", "![the first prompts, every method, layout drawn](grid.png)", ""]
    if command:
        lines += ["Reproduce:", "", "```", command, "```", ""]
    return "\n".join(lines)


def _write_grid(suite: PublicSuite, items: list[int], where: dict[str, dict[int, Path]], out: Path) -> None:
    firsts = [k for k in items if k < len(suite)][:EXAMPLES]
    tiles, captions = [], []
    for k in firsts:
        entry: Entry = suite.entries[k]
        tiles.append(draw_layout(Image.new("RGB", (TILE, TILE), "white"), entry.layout))
        captions.append(entry.layout.prompt[:40])
        for label, folders in where.items():
            with Image.open(image_path(folders[k] / "images" / label, k)) as image:
                tiles.append(draw_layout(image.convert("RGB").resize((TILE, TILE)), entry.layout, labels=False))
            captions.append(label)
    if tiles:
        write_bytes(out / "grid.png", png_bytes(grid(tiles, columns=len(where) + 1, captions=captions)))
