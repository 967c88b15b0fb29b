"""The benchmark's files: written atomically with the user's umask, read back tolerating damage.

A run killed at any point leaves at most a temporary file (never half an image or half a ``results.json``), but a
disk that filled up, a copy that stopped early or a hand edit can still leave a damaged file behind. Reading
here never trusts a file: a damaged one is reported and redone, never a traceback.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from ..layout import atomic_write_bytes, atomic_write_text

Report = Callable[[str], None]  # where the one-line notes on repaired files go


# one atomic, umask-respecting writer for the whole library (layout.py's)
write_bytes = atomic_write_bytes
write_text = atomic_write_text


def write_json(path: str | os.PathLike, data: Any, *, sort_keys: bool = False) -> None:
    write_text(path, json.dumps(data, indent=1, sort_keys=sort_keys) + "\n")


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def image_ok(path: Path) -> bool:
    """Whether ``path`` is a whole, decodable image (an empty or truncated PNG is not)."""
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except (OSError, ValueError, SyntaxError):  # PIL's errors for unreadable, truncated or malformed files
        return False


def read_json(path: Path, report: Report, what: str) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when there is none, or when it is damaged (said through ``report``)."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        report(f"{path} is damaged (not a JSON object): {what}")
        return None
    return data


def read_jsonl(path: Path, report: Report, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """The records of a JSON-lines file that parse and carry ``keys``; when some do not (a torn last line from a
    killed run), the file is rewritten without them, so that the next appended record starts on a line of its own."""
    if not path.exists():
        return []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    records, damaged = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and all(k in record for k in keys):
            records.append(record)
        else:
            damaged += 1
    if damaged:
        report(f"{path}: dropped {damaged} damaged line(s) (a run killed while writing); the rest is kept")
    if damaged or (lines and not path.read_bytes().endswith(b"\n")):
        write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    return records


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
