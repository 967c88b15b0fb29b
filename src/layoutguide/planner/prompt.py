"""The LLM planner's chat template: Attention Refocusing's system message and user turn (methods.md 1.7), few-shot
examples (built in, or from a JSON file) and :func:`build_messages`."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .result import PlannerError

SYSTEM_MESSAGE = (
    "You are an intelligent bounding box generator. I will give you a caption for an image. Place every object the "
    "caption mentions on a 512x512 canvas: the top-left corner is (0, 0) and the bottom-right corner is (512, 512). "
    "Answer with one line per object in the form 'name: (x_min, y_min, x_max, y_max)' with integer pixel corners, "
    "x_min < x_max and y_min < y_max. Use the caption's own words for each name. Respect the relative sizes, "
    "positions and counts in the caption: an object 'to the left of' another has a smaller x, one 'above' another a "
    "smaller y, and 'three cats' needs three separate 'cats' lines. Boxes should not overlap unless the caption says "
    "one object is on another. Then add a line 'Background prompt: ...' describing the scene without the objects, and "
    "a line 'Negative prompt: ...' (it may be empty). Do not write anything else."
)
USER_PREFIX = (
    "Provide box coordinates for an image with "  # AR's user turn, with the missing space fixed (methods.md 1.7)
)

DEFAULT_EXAMPLES: list[dict[str, Any]] = [
    {
        "prompt": "a red circle to the left of a blue square",
        "objects": [["red circle", [48, 176, 208, 336]], ["blue square", [304, 176, 464, 336]]],
        "background": "a plain white background",
        "negative": "",
    },
    {
        "prompt": "three cats on the field",
        "objects": [["cats", [40, 240, 168, 400]], ["cats", [192, 232, 320, 392]], ["cats", [344, 248, 472, 408]]],
        "background": "a grassy field",
        "negative": "",
    },
    {
        "prompt": "a cat on top of a table",
        "objects": [["cat", [186, 110, 326, 250]], ["table", [96, 250, 416, 440]]],
        "background": "a living room",
        "negative": "",
    },
    {
        "prompt": "a dog between a car and a chair",
        "objects": [["car", [16, 200, 176, 360]], ["dog", [192, 232, 320, 360]], ["chair", [336, 184, 496, 360]]],
        "background": "a street",
        "negative": "",
    },
]


def _example_reply(example: dict[str, Any]) -> str:
    if "reply" in example:
        return str(example["reply"])
    lines = [f"{name}: ({', '.join(str(int(round(float(v)))) for v in box)})" for name, box in example["objects"]]
    lines.append(f"Background prompt: {example.get('background', '')}")
    lines.append(f"Negative prompt: {example.get('negative', '')}")
    return "\n".join(lines)


def load_examples(path: str | os.PathLike) -> tuple[list[dict[str, Any]], str | None]:
    """In-context examples from a JSON file: a list of examples, or ``{"system": ..., "examples": [...]}``.

    An example is ``{"prompt": ..., "objects": [[name, [x0, y0, x1, y1]], ...], "background": ..., "negative": ...}``
    (corners on the 512x512 canvas) or ``{"prompt": ..., "reply": "<the assistant's reply verbatim>"}``.
    """
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PlannerError(f"examples file {str(path)!r} does not exist") from None
    except (OSError, ValueError) as e:
        raise PlannerError(f"examples file {str(path)!r} is not readable JSON: {e}") from None
    system = None
    if isinstance(data, dict):
        system = data.get("system")
        if system is not None and not isinstance(system, str):
            raise PlannerError(f"examples file {str(path)!r}: 'system' must be text")
        data = data.get("examples")
    if not isinstance(data, list):
        raise PlannerError(
            f"examples file {str(path)!r}: expected a list of examples or {{'system', 'examples': [...]}}"
        )
    for i, ex in enumerate(data):
        if not isinstance(ex, dict) or not isinstance(ex.get("prompt"), str):
            raise PlannerError(f"examples file {str(path)!r}: example {i} needs a 'prompt' string")
        if "reply" in ex:
            if not isinstance(ex["reply"], str):
                raise PlannerError(f"examples file {str(path)!r}: example {i}: 'reply' must be text")
            continue
        objects = ex.get("objects")
        ok = isinstance(objects, list) and all(
            isinstance(o, (list, tuple))
            and len(o) == 2
            and isinstance(o[0], str)
            and isinstance(o[1], (list, tuple))
            and len(o[1]) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in o[1])
            for o in objects
        )
        if not ok:
            raise PlannerError(
                f"examples file {str(path)!r}: example {i} needs 'objects': [[name, [x0, y0, x1, y1]], ...] "
                "(512 px corners) or a 'reply' string"
            )
    return data, system


def build_messages(
    prompt: str, examples: Sequence[dict[str, Any]] | None = None, system: str | None = None
) -> list[dict[str, str]]:
    """Chat messages: system, then one user/assistant pair per example, then the prompt."""
    messages = [{"role": "system", "content": system or SYSTEM_MESSAGE}]
    for ex in DEFAULT_EXAMPLES if examples is None else examples:
        messages.append({"role": "user", "content": USER_PREFIX + ex["prompt"]})
        messages.append({"role": "assistant", "content": _example_reply(ex)})
    messages.append({"role": "user", "content": USER_PREFIX + prompt})
    return messages
