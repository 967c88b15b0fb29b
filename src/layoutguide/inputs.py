"""Checks on the arguments of one pipeline call, before anything is computed, and the image size a layout implies.

Every refusal is an :class:`~layoutguide.errors.InputError` naming the Python argument and the fix. ``0`` never
means "the default" (``num_inference_steps=0`` used to run the model's 30 steps, ``height=0`` gave 64 px): None is
the default; anything else must be a real value. Prompts longer than the text encoder's window are not refused
(diffusers and Stable Diffusion truncate them too, and LLM planners write long prompts) but they are no longer cut
silently: a :class:`PromptTruncatedWarning` names the words the model will not see.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InputError
from .layout import Layout


class PromptTruncatedWarning(UserWarning):
    """A prompt is longer than the text encoder's window; the message names the words that are dropped."""


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_positive_int(name: str, value: Any, *, default_note: str = "or None for the default") -> None:
    if not _is_int(value) or value < 1:
        raise InputError(f"{name} must be a positive integer ({default_note}), got {value!r}")


def check_finite_options(options: Any, field: str = "method_options") -> None:
    """Refuse NaN and infinity anywhere in (nested) method options: a NaN threshold silently disables a check, an
    infinite scale blacks out the image."""
    if isinstance(options, Mapping):
        for key, value in options.items():
            check_finite_options(value, f"{field}[{key!r}]")
    elif isinstance(options, (list, tuple)):
        for i, value in enumerate(options):
            check_finite_options(value, f"{field}[{i}]")
    elif isinstance(options, numbers.Real) and not isinstance(options, bool) and not math.isfinite(options):
        raise InputError(f"{field} is {options!r}; give a finite number")
    elif isinstance(options, str) and options.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
        raise InputError(f"{field} is {options!r}; give a finite number")


def check_call_inputs(
    pipe: Any,
    *,
    prompt: Any = None,
    layout: Any = None,
    method_options: Any = None,
    num_inference_steps: Any = None,
    guidance_scale: Any = None,
    num_images_per_prompt: Any = 1,
    height: Any = None,
    width: Any = None,
    seed: Any = None,
    attention_resolution: Any = None,
) -> None:
    """Raise an InputError naming the argument for any value a pipeline call cannot use as given; warn
    (:class:`PromptTruncatedWarning`) when a prompt will be cut at the text encoder's window.

    ``pipe`` gives the limits: ``vae_scale_factor``, ``scheduler.config.num_train_timesteps`` and ``tokenizer``.
    """
    if num_inference_steps is not None:
        _check_positive_int("num_inference_steps", num_inference_steps)
        limit = getattr(getattr(pipe, "scheduler", None), "config", {}).get("num_train_timesteps")
        if limit and num_inference_steps > limit:
            raise InputError(
                f"num_inference_steps is {num_inference_steps}, more than the scheduler's {limit} training timesteps"
            )
    if guidance_scale is not None and (
        not isinstance(guidance_scale, numbers.Real)
        or isinstance(guidance_scale, bool)
        or not math.isfinite(guidance_scale)
    ):
        raise InputError(f"guidance_scale must be a finite number (e.g. 7.5; 1 disables CFG), got {guidance_scale!r}")
    _check_positive_int("num_images_per_prompt", num_images_per_prompt, default_note="e.g. 1")
    if attention_resolution is not None:
        _check_positive_int("attention_resolution", attention_resolution, default_note="e.g. 16")
    multiple = int(getattr(pipe, "vae_scale_factor", 8))
    for name, value in (("height", height), ("width", width)):
        if value is None:
            continue
        _check_positive_int(name, value)
        if value % multiple:
            raise InputError(f"{name} must be a multiple of {multiple} (the VAE's scale factor), got {value}")
    _check_seed(seed)
    check_finite_options(method_options)
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is not None:
        warn_truncated_prompts(tokenizer, _prompts_of(prompt, layout))


def _check_seed(seed: Any) -> None:
    seeds = seed if isinstance(seed, (list, tuple)) else [seed]
    if seed is not None and not all(_is_int(s) for s in seeds):
        raise InputError(f"seed must be an integer or a list of integers (one per prompt), got {seed!r}")


def _prompts_of(prompt: Any, layout: Any) -> list[str]:
    if prompt is not None:
        return [prompt] if isinstance(prompt, str) else [p for p in prompt if isinstance(p, str)]
    layouts = [layout] if isinstance(layout, Layout) else list(layout or [])
    return [item.prompt for item in layouts if isinstance(item, Layout)]


def warn_truncated_prompts(tokenizer: Any, prompts: Sequence[str]) -> list[str]:
    """Warn, naming the dropped words, for every prompt longer than the tokenizer's window (start and end tokens
    included); return the warnings' messages."""
    window = int(getattr(tokenizer, "model_max_length", 77))
    if window > 100_000:  # tokenizers without a limit report a huge sentinel
        return []
    messages = []
    for prompt in prompts:
        ids = tokenizer(prompt, truncation=False).input_ids
        if len(ids) <= window:
            continue
        kept = tokenizer.decode(ids[1 : window - 1]).strip()
        dropped = prompt[len(kept) :].strip() if prompt.lower().startswith(kept.lower()) else None
        dropped = dropped or tokenizer.decode(ids[window - 1 : -1]).strip()
        shown = dropped if len(dropped) <= 160 else f"{dropped[:70]} ... {dropped[-70:]}"
        message = (
            f"prompt is {len(ids)} tokens, longer than the text encoder's {window}; the model will not see "
            f"{shown!r} (shorten the prompt)"
        )
        warnings.warn(message, PromptTruncatedWarning, stacklevel=3)
        messages.append(message)
    return messages


def default_image_size(layout: Layout | None, native_side: int, multiple: int) -> tuple[int, int]:
    """``(height, width)`` for a layout: its canvas aspect, rounded to ``multiple`` (the VAE's), with no more pixels
    than the model's native square (``native_side``^2). No layout, or a square canvas: the native square."""
    if layout is None or layout.width == layout.height:
        return native_side, native_side
    aspect = layout.width / layout.height
    budget = native_side * native_side
    height = math.sqrt(budget / aspect)
    width = height * aspect

    def snap(side: float) -> int:
        return max(multiple, int(side // multiple) * multiple)  # round down: stay within the pixel budget

    return snap(height), snap(width)
