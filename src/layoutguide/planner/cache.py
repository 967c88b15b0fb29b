"""The LLM planner's reply cache: one JSON file per (model, prompt, template), written atomically.

A file is used only when its recorded prompt and model match; an unreadable or mismatched file is ignored with a
note and overwritten by the next answer. Failures are never cached.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..layout import Layout, atomic_write_text
from .result import PlanResult

CACHE_VERSION = 1
MAX_CACHE_FILE_BYTES = 1024 * 1024  # a cached plan is a few KB; a bigger file is not ours


def default_cache_dir() -> Path:
    """``$LAYOUTGUIDE_PLAN_CACHE``, else ``$XDG_CACHE_HOME/layoutguide/plans``, else ``~/.cache/layoutguide/plans``."""
    if os.environ.get("LAYOUTGUIDE_PLAN_CACHE"):
        return Path(os.environ["LAYOUTGUIDE_PLAN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "layoutguide" / "plans"


class PlanCache:
    """Cached plans in ``folder``, keyed by the sha256 of (model id, prompt, template hash)."""

    def __init__(self, folder: str | os.PathLike, model_id: str, template_hash: str):
        self.folder = Path(folder)
        self.model_id, self.template_hash = model_id, template_hash

    def path(self, prompt: str) -> Path:
        key = json.dumps([self.model_id, prompt, self.template_hash])
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def load(self, prompt: str, notes: list[str]) -> PlanResult | None:
        """The cached plan, or None (with a note when a file was there but unusable)."""
        path = self.path(prompt)
        if not path.exists():
            return None
        try:
            if path.stat().st_size > MAX_CACHE_FILE_BYTES:
                raise ValueError(f"over {MAX_CACHE_FILE_BYTES} bytes")
            data = json.loads(path.read_text())
            if data.get("prompt") != prompt or data.get("model") != self.model_id:
                raise ValueError("key mismatch")
            return PlanResult(
                Layout.from_dict(data["layout"]), list(data.get("notes", [])) + [f"from cache {path}"], False
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            notes.append(f"ignored unreadable cache file {path} ({e})")
            return None

    def store(self, prompt: str, reply: str, layout: Layout, notes: list[str]) -> None:
        """Write the plan; a failure to write becomes a note, never an error."""
        path = self.path(prompt)
        record: dict[str, Any] = {
            "version": CACHE_VERSION,
            "model": self.model_id,
            "prompt": prompt,
            "template_hash": self.template_hash,
            "reply": reply,
            "notes": [n for n in notes if not n.startswith("ignored unreadable cache file")],
            "layout": layout.to_dict(),
        }
        try:
            atomic_write_text(path, json.dumps(record, indent=2) + "\n")
        except OSError as e:
            notes.append(f"could not write the cache file {path}: {e}")
