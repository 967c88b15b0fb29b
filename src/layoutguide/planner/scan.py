"""The rule planner's first pass: a prompt's words -> typed items (words, separators, relation words, positions...).

Each item is a small frozen dataclass; :func:`scan` returns them in prompt order. The second pass (``parse``)
groups runs of :class:`Word` into noun phrases and links them by the relations between them.
"""

from __future__ import annotations

import dataclasses
import re

from .vocabulary import (
    FILLERS,
    FRAME_LINKS,
    FRAME_NOUNS,
    MAX_REL_LEN,
    MULTI_SEPARATORS,
    POSITION_AXES,
    POSITION_TAILS,
    POSITION_WORDS,
    PRONOUNS,
    RECIPROCAL,
    REL_FIRST,
    RELATION_WORDS,
    SEPARATORS,
    STOP_FRAME,
)

TOKEN = re.compile(r"[A-Za-z0-9]+(?:['’\-][A-Za-z0-9]+)*|[,;.:!?]")


@dataclasses.dataclass(frozen=True)
class Token:
    text: str
    low: str  # lower case, typographic apostrophe folded
    start: int
    end: int


def tokenize(prompt: str) -> list[Token]:
    return [Token(m.group(), m.group().lower().replace("’", "'"), m.start(), m.end()) for m in TOKEN.finditer(prompt)]


@dataclasses.dataclass(frozen=True)
class Word:
    """A content word (part of a noun phrase), by token index."""

    index: int


@dataclasses.dataclass(frozen=True)
class Separator:
    """``and``, ``,``, ``with``, ``.`` ...: ``text`` is the lower-case word (``as well as`` -> ``and``)."""

    text: str


@dataclasses.dataclass(frozen=True)
class RelationWords:
    """``to the left of``, ``on``, ``between``: ``kind`` is the relation placed, ``"?"`` one the planner does not
    place; ``text`` is the prompt's words, for notes."""

    kind: str
    text: str


@dataclasses.dataclass(frozen=True)
class Position:
    """An absolute position: ``on the left``, ``at the top``, ``in the top-left corner``."""

    positions: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Pronoun:
    index: int


@dataclasses.dataclass(frozen=True)
class Reciprocal:
    """``each other`` (``kind`` None: the relation before), ``side by side`` (``kind`` "next to")."""

    kind: str | None
    text: str


@dataclasses.dataclass(frozen=True)
class Negation:
    """``without``: the next noun phrase gets no region."""


@dataclasses.dataclass(frozen=True)
class Which:
    """``, which``/``who``/``that`` after a separator: the next relation's subject is the object just named."""


@dataclasses.dataclass(frozen=True)
class Filler:
    text: str


Placed = frozenset[str] | str  # absolute positions, or the kind of a relation to an object after it
Item = Word | Separator | RelationWords | Position | Pronoun | Reciprocal | Negation | Which | Filler


def _frame_end(low: list[str], i: int) -> int:
    """Skip leading framing such as "a realistic photo of" or "an image showing" (repeatedly)."""
    n = len(low)
    while True:
        j = i + (i < n and low[i] in ("a", "an", "the"))
        nxt = None
        for k in range(j, min(j + 4, n - 1)):
            w = low[k]
            if w in FRAME_NOUNS:
                if low[k + 1] in FRAME_LINKS:
                    nxt = k + 2
                elif low[k + 1] == "without":  # "a scene without birds": keep the negation
                    nxt = k + 1
                elif low[k + 1] == "in" and k + 2 < n and low[k + 2] == "which":
                    nxt = k + 3
                break
            if not w[0].isalnum() or w in STOP_FRAME or w in REL_FIRST:  # only adjectives before the frame noun
                break
        if nxt is None:
            return i
        i = nxt


def _position_words(low: list[str], j: int) -> tuple[list[str], int]:
    """The position words from ``j`` ("top-left", "left-hand") and the index after them."""
    words: list[str] = []
    while j < len(low):
        parts = low[j].split("-")
        if parts[0] not in POSITION_WORDS or not all(p in POSITION_WORDS or p in POSITION_TAILS for p in parts):
            break
        words.extend(p for p in parts if p in POSITION_WORDS)
        j += 1
    return words, j


def _relative_position(low: list[str], i: int, j: int, prep: str, positions: frozenset[str]) -> tuple[Placed, int]:
    """``... of`` after the position words at ``j``: ``of the image`` is absolute, ``of`` X a relation."""
    n = len(low)
    k = j + 1
    while k < n and low[k] in ("the", "this", "a", "an", "whole", "entire"):
        k += 1
    if k < n and low[k] in FRAME_NOUNS:
        return positions, k + 1 - i
    if len(positions) != 1:
        return "?", j + 1 - i
    (pos,) = positions
    if pos == "top" and prep == "on":
        kind = "on top of"
    else:
        kind = {"left": "left of", "right": "right of", "top": "above", "bottom": "below", "middle": "between"}[pos]
    return kind, j + 1 - i


def _match_position(low: list[str], i: int) -> tuple[Placed, int] | None:
    """``on the left``, ``at the top of the image``, ``to the left of`` X, ``on top of`` X, ``in the middle of`` X.

    Returns ``(positions, length)`` for an absolute position, ``(relation kind, length)`` or None.
    """
    n = len(low)
    if low[i] not in ("on", "to", "at", "in", "towards", "toward"):
        return None
    prep, j = low[i], i + 1
    has_the = j < n and low[j] == "the"
    j += has_the
    words, j = _position_words(low, j)
    if not words or (prep == "in" and not has_the):
        return None
    while j < n and low[j] in POSITION_TAILS:
        j += 1
        if j < n and low[j] == "side":
            j += 1
    positions = frozenset(POSITION_AXES[w] for w in words if w in POSITION_AXES)
    if not positions:
        return None
    if j < n and low[j] == "of":
        return _relative_position(low, i, j, prep, positions)
    return positions, j - i


def _single_word(low: list[str], i: int, items: list[Item]) -> Item:
    """The item for a word that starts no multi-word pattern."""
    w, n = low[i], len(low)
    if w in SEPARATORS:
        return Separator(w)
    if w == "without":
        return Negation()
    if w in ("which", "who", "that") and items and isinstance(items[-1], Separator):
        return Which()  # ", which is above": the relation's subject is the object just named
    if w == "right" and (i + 1 == n or not any(low[i + 1 : i + 1 + len(k)] == list(k) for k in RELATION_WORDS)):
        return Word(i)  # "a right shoe"; "right next to" is an adverb (a filler)
    if w in FILLERS:
        return Filler(w)
    if w in PRONOUNS:
        return Pronoun(i)
    if w in ("each", "other") or (w == "one" and i > 0 and low[i - 1] == "the"):
        return Filler(w)
    return Word(i)


def _multi_word(toks: list[Token], low: list[str], i: int) -> tuple[Item, int] | None:
    """The item starting at ``i`` when a multi-word pattern (or a relation word) starts there, and its length."""
    n = len(low)

    def text(size: int) -> str:
        return " ".join(t.text for t in toks[i : i + size])

    m = _match_position(low, i)
    if m is not None:
        value, size = m
        return (Position(value) if isinstance(value, frozenset) else RelationWords(value, text(size))), size
    recip = next((r for r in RECIPROCAL if tuple(low[i : i + len(r)]) == r), None)
    if recip:  # "each other", "side by side": relates the two objects before
        return Reciprocal(RECIPROCAL[recip], text(len(recip))), len(recip)
    multi = next((s for s in MULTI_SEPARATORS if tuple(low[i : i + len(s)]) == s), None)
    if multi:
        return Separator("and"), len(multi)
    for size in range(min(MAX_REL_LEN, n - i), 0, -1):
        rkind = RELATION_WORDS.get(tuple(low[i : i + size]))
        if rkind is not None:
            return RelationWords(rkind, text(size)), size
    return None


def scan(toks: list[Token]) -> list[Item]:
    """The prompt's items in order, after any leading framing ("a photo of"); fillers included."""
    low = [t.low for t in toks]
    items: list[Item] = []
    i = _frame_end(low, 0)
    while i < len(low):
        found = _multi_word(toks, low, i)
        if found is not None:
            items.append(found[0])
            i += found[1]
        else:
            items.append(_single_word(low, i, items))
            i += 1
    return items
