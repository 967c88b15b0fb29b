"""Text-to-layout planning: turn a prompt into a :class:`~layoutguide.layout.Layout`.

Two planners share one interface, ``plan(prompt) -> PlanResult``:

* :class:`RuleBasedPlanner` (default): offline and deterministic. It parses English object lists with counts and
  adjectives ("two dogs and a cat") and spatial relations ("a red circle to the left of a blue square", "the cat is
  on top of the table", "a dog between a car and a chair", "a cat on the left"), then places boxes on a grid so that
  every relation holds with a clear margin. Modules: ``vocabulary`` (the English it reads), ``scan`` (typed
  tokens), ``parse`` and ``link`` (noun phrases and relations), ``geometry`` and ``placement`` (the box solver),
  ``rule`` (the planner).
* :class:`LLMPlanner` (``llm``): asks a chat model for boxes with an Attention-Refocusing-style few-shot prompt
  (``prompt``: methods.md 1.7, ``name: (x0, y0, x1, y1)`` corners on a 512x512 canvas, plus LMD's
  ``Background prompt:`` / ``Negative prompt:`` lines), parses whatever comes back (``reply``:
  :func:`parse_llm_reply`), re-asks once on malformed output, and caches replies on disk as JSON (``cache``).
  Backends: :class:`OpenAIChatBackend` (``openai_client``: any OpenAI-compatible HTTP server, standard library
  only, with a whole-request deadline) and :class:`TransformersBackend` (``transformers_backend``: a local causal LM).

No torch at import time: the CLI imports this package.
"""

from __future__ import annotations

import os

from .cache import default_cache_dir
from .llm import TEMPLATE_VERSION, ChatBackend, LLMPlanner
from .openai_client import MAX_REDIRECTS, MAX_RESPONSE_BYTES, OpenAIChatBackend
from .prompt import DEFAULT_EXAMPLES, SYSTEM_MESSAGE, USER_PREFIX, build_messages, load_examples
from .reply import MAX_NESTING, MAX_REPLY_CHARS, parse_llm_reply, phrases_missing
from .result import CANVAS, Planner, PlannerError, PlanResult
from .rule import RuleBasedPlanner
from .transformers_backend import TransformersBackend

__all__ = [
    "CANVAS",
    "DEFAULT_TIMEOUT",
    "DEFAULT_EXAMPLES",
    "MAX_NESTING",
    "MAX_REDIRECTS",
    "MAX_REPLY_CHARS",
    "MAX_RESPONSE_BYTES",
    "PLANNERS",
    "SYSTEM_MESSAGE",
    "TEMPLATE_VERSION",
    "USER_PREFIX",
    "ChatBackend",
    "LLMPlanner",
    "OpenAIChatBackend",
    "PlanResult",
    "Planner",
    "PlannerError",
    "RuleBasedPlanner",
    "TransformersBackend",
    "build_messages",
    "default_cache_dir",
    "get_planner",
    "load_examples",
    "parse_llm_reply",
    "phrases_missing",
]

PLANNERS = ("rule", "openai", "transformers")
DEFAULT_TIMEOUT = 60.0  # seconds per request to an OpenAI-compatible server


def get_planner(
    name: str = "rule",
    *,
    base_url: str | None = None,
    llm_model: str | None = None,
    api_key: str | None = None,
    examples_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    timeout: float | None = None,
    max_retries: int = 3,
    backoff: float = 1.0,
    max_new_tokens: int = 256,
    device: str = "cpu",
) -> Planner:
    """A planner by name: ``rule`` (offline), ``openai`` (OpenAI-compatible server: ``base_url`` defaults to
    ``$OPENAI_BASE_URL`` or https://api.openai.com/v1) or ``transformers`` (local model ``llm_model``).

    ``timeout`` (openai; default 60) is the deadline in seconds for each HTTP attempt as a whole, however slowly the
    server answers; failed attempts are retried ``max_retries`` times. The transformers backend runs locally and
    takes no timeout."""
    if name in ("rule", "transformers") and timeout is not None:
        raise PlannerError(f"timeout only applies to the openai planner (a server), not {name!r}")
    if name == "rule":
        options = {
            "base_url": base_url,
            "llm_model": llm_model,
            "examples_path": examples_path,
            "api_key": api_key,
        }
        given = [name for name, value in options.items() if value is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise PlannerError(f"{', '.join(given)} only {verb} to the openai and transformers planners, not 'rule'")
        return RuleBasedPlanner()
    backend: ChatBackend
    if name == "openai":
        url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        backend = OpenAIChatBackend(
            url,
            llm_model or "",
            api_key=api_key,
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            max_retries=max_retries,
            backoff=backoff,
        )
    elif name == "transformers":
        backend = TransformersBackend(llm_model or "", max_new_tokens=max_new_tokens, device=device)
    else:
        raise PlannerError(f"unknown planner {name!r}; choose one of {', '.join(PLANNERS)}")
    return LLMPlanner(backend, examples_path=examples_path, cache_dir=cache_dir, cache=cache)
