"""Rewrite a layout's phrases the way people, LLM planners and GLIGEN-style layouts write them.

The benchmarks write phrases as bare noun groups ("red circle"); people write "a red circle", "the red circle",
"A Red Circle,". A method that is robust to phrase form gives the same accuracy on all of them with the prompt
unchanged. Used by the benchmarks' ``phrase_form`` option to measure exactly that.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from .errors import InputError
from .layout import Layout

PhraseForm = Literal["bare", "article", "determiner", "caps"]
PHRASE_FORMS: tuple[str, ...] = ("bare", "article", "determiner", "caps")
_VOWELS = "aeiou"


def phrase_in_form(phrase: str, form: str) -> str:
    """``"red circle"`` as ``form``: bare ``"red circle"``, article ``"a red circle"`` (``"an"`` before a vowel),
    determiner ``"the red circle"``, caps ``"A Red Circle,"`` (title case, article, trailing comma)."""
    bare = phrase.strip()
    if form == "bare":
        return bare
    article = "an" if bare[:1].lower() in _VOWELS else "a"
    if form == "article":
        return f"{article} {bare}"
    if form == "determiner":
        return f"the {bare}"
    if form == "caps":
        return f"{article} {bare}".title() + ","
    raise InputError(f"phrase_form: unknown form {form!r}; use one of {', '.join(PHRASE_FORMS)}")


def with_phrase_form(layout: Layout, form: str) -> Layout:
    """``layout`` with every region's phrase rewritten in ``form``; the prompt, boxes and masks unchanged."""
    if form == "bare":
        return layout
    regions = tuple(dataclasses.replace(r, phrase=phrase_in_form(r.phrase, form)) for r in layout.regions)
    return layout.replace(regions=regions)
