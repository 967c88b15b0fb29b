"""The LLM planner: few-shot template (:mod:`.prompt`), a chat backend, reply parsing (:mod:`.reply`) with one
re-ask on malformed output, and a reply cache (:mod:`.cache`)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ..layout import Layout, LayoutError
from .cache import PlanCache, default_cache_dir
from .prompt import DEFAULT_EXAMPLES, SYSTEM_MESSAGE, USER_PREFIX, build_messages, load_examples
from .reply import parse_reply, phrases_missing
from .result import PlannerError, PlanResult

TEMPLATE_VERSION = 1


class ChatBackend(Protocol):
    model_id: str

    def chat(self, messages: list[dict[str, str]]) -> str: ...


class LLMPlanner:
    """Layouts from a chat model: few-shot template, robust parsing, one re-ask on malformed output, a JSON cache.

    ``backend`` is anything with ``model_id`` and ``chat(messages) -> str`` (:class:`OpenAIChatBackend`,
    :class:`TransformersBackend`). ``examples_path`` replaces the built-in examples (see :func:`load_examples`).
    Replies are cached in ``cache_dir`` under the sha256 of (model id, prompt, template hash); ``cache=False`` turns
    the cache off.
    """

    name = "llm"

    def __init__(
        self,
        backend: ChatBackend,
        *,
        examples_path: str | os.PathLike | None = None,
        examples: Sequence[dict[str, Any]] | None = None,
        system: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        cache: bool = True,
    ):
        self.backend = backend
        file_system = None
        if examples_path is not None:
            examples, file_system = load_examples(examples_path)
        self.examples = list(DEFAULT_EXAMPLES if examples is None else examples)
        self.system = system or file_system or SYSTEM_MESSAGE
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.cache = cache
        template = {
            "version": TEMPLATE_VERSION,
            "system": self.system,
            "prefix": USER_PREFIX,
            "examples": self.examples,
        }
        self.template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
        self._cache = PlanCache(self.cache_dir, backend.model_id, self.template_hash)

    def cache_path(self, prompt: str) -> Path:
        return self._cache.path(prompt)

    def _ask(self, prompt: str, notes: list[str]) -> tuple[str, Layout, list[str]]:
        """The reply used, its layout and parse notes; one re-ask, with the parse error, when the first is unusable."""
        messages = build_messages(prompt, self.examples, self.system)
        reply = self.backend.chat(messages)
        try:
            layout, parse_notes = parse_reply(reply, prompt)
            return reply, layout, parse_notes
        except LayoutError as first:
            notes.append(f"re-asked once: the first reply could not be parsed ({first})")
            retry = messages + [
                {"role": "assistant", "content": reply},
                {
                    "role": "user",
                    "content": f"Your answer could not be used: {first}. Answer again with only one line per object, "
                    "'name: (x_min, y_min, x_max, y_max)' with integer corners on the 512x512 canvas "
                    "(x_min < x_max, y_min < y_max), then 'Background prompt: ...' and 'Negative prompt: ...'.",
                },
            ]
        second = self.backend.chat(retry)
        try:
            layout, parse_notes = parse_reply(second, prompt)
        except LayoutError as e:
            raise PlannerError(
                f"{self.backend.model_id} gave no usable layout for {prompt!r} after one re-ask: {e}\n"
                f"raw reply:\n{second[:4000]}\nfirst reply:\n{reply[:2000]}"
            ) from None
        return second, layout, parse_notes

    def plan(self, prompt: str) -> PlanResult:
        if not isinstance(prompt, str) or not prompt.strip():
            raise PlannerError("the prompt is empty; give a text prompt such as 'a cat to the left of a dog'")
        notes: list[str] = []
        if self.cache:
            cached = self._cache.load(prompt, notes)
            if cached is not None:
                return cached
        reply, layout, parse_notes = self._ask(prompt, notes)
        notes.extend(parse_notes)
        missing = phrases_missing(layout)
        if missing:
            notes.append(
                f"phrase(s) {missing} do not occur in the prompt; edit them or generate with append_missing_phrases"
            )
        if self.cache:
            self._cache.store(prompt, reply, layout, notes)
        return PlanResult(layout, notes, False)
