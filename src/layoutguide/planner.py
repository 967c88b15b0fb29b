"""Text-to-layout planning: turn a prompt into a :class:`~layoutguide.layout.Layout`.

Two planners share one interface, ``plan(prompt) -> PlanResult``:

* :class:`RuleBasedPlanner` (default): offline and deterministic. It parses English object lists with counts and
  adjectives ("two dogs and a cat") and spatial relations ("a red circle to the left of a blue square", "the cat is
  on top of the table", "a dog between a car and a chair", "a cat on the left"), then places boxes on a grid so that
  every relation holds with a clear margin.
* :class:`LLMPlanner`: asks a chat model for boxes with an Attention-Refocusing-style few-shot prompt (methods.md
  1.7: ``name: (x0, y0, x1, y1)`` corners on a 512x512 canvas, plus LMD's ``Background prompt:`` / ``Negative
  prompt:`` lines), parses whatever comes back (:func:`parse_llm_reply`), re-asks once on malformed output, and
  caches replies on disk as JSON. Backends: :class:`OpenAIChatBackend` (any OpenAI-compatible HTTP server, standard
  library only) and :class:`TransformersBackend` (a local causal LM).

No torch at import time: the CLI imports this module.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import http.client
import itertools
import json
import math
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from .errors import LayoutguideError
from .layout import MAX_REGIONS, Layout, LayoutError, Region, atomic_write_text

CANVAS = 512  # the LLM template's canvas in pixels (AR and LMD both use 512x512)


class PlannerError(LayoutguideError, ValueError):
    """Planning failed: an unusable prompt, an unreachable model server, or a reply that cannot be parsed."""


@dataclasses.dataclass
class PlanResult:
    """A planned layout. ``notes`` says what the planner guessed or ignored; ``fallback`` is True when the planner
    did not understand the phrasing and used a spread layout (or the whole prompt as one region)."""

    layout: Layout
    notes: list[str] = dataclasses.field(default_factory=list)
    fallback: bool = False


class Planner(Protocol):
    def plan(self, prompt: str) -> PlanResult: ...


# ============================================================================================ rule-based parsing
_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "another": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "hundred": 100, "dozen": 12, "no": 0, "zero": 0,
}  # fmt: skip
# vague quantities at the start of a noun phrase: words -> count used
_VAGUE = {
    ("a", "pair", "of"): 2, ("a", "couple", "of"): 2, ("a", "few"): 3, ("several",): 3, ("some",): 3,
    ("multiple",): 3, ("a", "group", "of"): 3, ("a", "bunch", "of"): 3, ("many",): 5, ("lots", "of"): 5,
    ("a", "lot", "of"): 5, ("numerous",): 5,
}  # fmt: skip
_DETERMINERS = {"a", "an", "the", "another", "this", "these", "those", "his", "its", "their", "my", "our", "your"}
_FRAME_NOUNS = {
    "image", "picture", "photo", "photograph", "painting", "drawing", "illustration", "sketch", "render", "rendering",
    "scene", "canvas", "frame", "view", "shot", "snapshot", "artwork", "poster", "cartoon", "pic", "screen", "composition",
}  # fmt: skip
_FRAME_LINKS = {"of", "with", "showing", "containing", "featuring", "depicting", "where"}
_FILLERS = {
    "is", "are", "was", "were", "be", "being", "been", "there", "here", "which", "that", "who", "sits", "sit", "sitting",
    "seated", "stands", "stand", "standing", "placed", "located", "positioned", "situated", "lies", "lie", "lying",
    "rests", "rest", "resting", "appears", "appear", "hangs", "hang", "hanging", "floats", "floating", "flies", "flying",
    "parked", "put", "kept", "stacked", "perched", "shown", "drawn", "visible", "directly", "just", "slightly", "far",
    "immediately", "somewhere", "exactly", "right", "also", "both", "all", "each", "clearly", "further", "farther",
}  # fmt: skip
_SEPARATORS = {"and", ",", ";", ".", "!", "?", ":", "with", "plus", "while", "whereas", "but", "then"}
_MULTI_SEPARATORS = (("as", "well", "as"), ("along", "with"), ("together", "with"))
_SENTENCE_END = {";", ".", "!", "?"}
_PRONOUNS = {"it", "them", "they", "him", "her"}
_STYLE_WORDS = {
    "4k", "8k", "hd", "uhd", "hdr", "digital", "art", "artstation", "trending", "highly", "detailed", "photorealistic",
    "realistic", "hyperrealistic", "octane", "render", "unreal", "engine", "masterpiece", "best", "quality", "high",
    "resolution", "cinematic", "lighting", "sharp", "focus", "concept", "style", "oil", "painting", "watercolor",
    "watercolour", "anime", "studio", "ghibli", "professional", "photography", "award", "winning", "ultra",
}  # fmt: skip
# verbs that end an object when two noun phrases follow each other without "and" ("a dog chasing a cat")
_VERBS = {"has", "have", "holds", "wears", "rides", "eats", "carries", "chases", "watches", "sees", "contains", "hugs"}
_COLOURS = {
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "grey", "gray", "violet",
    "cyan", "magenta", "golden", "silver", "beige", "teal", "turquoise", "maroon", "navy",
}  # fmt: skip
_IRREGULAR_PLURALS = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse", "geese": "goose",
    "feet": "foot", "teeth": "tooth", "oxen": "ox", "wolves": "wolf", "knives": "knife", "leaves": "leaf",
    "shelves": "shelf", "loaves": "loaf", "calves": "calf", "halves": "half",
}  # fmt: skip

# Relation words. Kinds: "left of", "right of", "above", "below", "next to", "on top of", "between";
# unsupported ones become notes (the objects are still placed, spread apart).
_RELATION_WORDS: dict[tuple[str, ...], str] = {
    ("left", "of"): "left of", ("right", "of"): "right of", ("to", "left", "of"): "left of", ("to", "right", "of"): "right of",
    ("above",): "above", ("over",): "above", ("higher", "than"): "above",
    ("below",): "below", ("under",): "below", ("underneath",): "below", ("beneath",): "below", ("lower", "than"): "below",
    ("on", "top", "of"): "on top of", ("atop",): "on top of", ("on",): "on top of", ("onto",): "on top of", ("upon",): "on top of",
    ("next", "to"): "next to", ("beside",): "next to", ("besides",): "next to", ("near",): "next to", ("close", "to"): "next to",
    ("adjacent", "to"): "next to", ("alongside",): "next to", ("by", "the", "side", "of"): "next to",
    ("between",): "between", ("in", "between"): "between",
    ("behind",): "?", ("in", "front", "of"): "?", ("in",): "?", ("inside",): "?", ("inside", "of"): "?", ("within",): "?",
    ("into",): "?", ("around",): "?", ("among",): "?", ("amongst",): "?", ("across", "from"): "?", ("opposite",): "?",
    ("facing",): "?", ("against",): "?", ("surrounded", "by"): "?", ("through",): "?", ("along",): "?", ("beyond",): "?",
    ("outside",): "?", ("at",): "?", ("toward",): "?", ("towards",): "?",
}  # fmt: skip
_MAX_REL_LEN = max(len(k) for k in _RELATION_WORDS)
# reciprocal endings: None = the relation before ("next to each other"), else a relation of their own
_RECIPROCAL = {("each", "other"): None, ("one", "another"): None, ("side", "by", "side"): "next to"}
_REL_FIRST = {k[0] for k in _RELATION_WORDS}
_STOP_FRAME = _SEPARATORS | _DETERMINERS | set(_NUMBER_WORDS) | _FILLERS
_POSITION_WORDS = {"left", "right", "top", "bottom", "upper", "lower", "middle", "center", "centre", "far"}
_POSITION_TAILS = {"side", "half", "corner", "part", "edge", "area", "hand", "left-hand", "right-hand"}
_POSITION_AXES = {
    "left": "left", "right": "right", "top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom",
    "middle": "middle", "center": "middle", "centre": "middle",
}  # fmt: skip

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['’\-][A-Za-z0-9]+)*|[,;.:!?]")


@dataclasses.dataclass
class _Tok:
    text: str
    low: str
    start: int
    end: int


@dataclasses.dataclass
class _Group:
    """One object kind in the prompt: its phrase as written and how many instances it has."""

    phrase: str
    count: int
    key: str  # lower-case words, last one singular: for "the red circle" -> "red circles" co-reference
    head: str  # singular head noun
    positions: set[str] = dataclasses.field(default_factory=set)  # absolute: left/right/top/bottom/middle


@dataclasses.dataclass(frozen=True)
class _Rel:
    a: int
    kind: str  # left of, right of, above, below, next to, on top of
    b: int
    text: str  # the words of the prompt, for notes


def _singular(word: str) -> str:
    w = word.lower()
    if w in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[w]
    if not _is_plural(w):
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("ches", "shes", "xes", "sses", "zes", "oes")):
        return w[:-2]
    return w[:-1]


def _is_plural(word: str) -> bool:
    w = word.lower()
    if w in _IRREGULAR_PLURALS:
        return True
    return len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is", "ous", "'s", "’s"))


def _tokenize(prompt: str) -> list[_Tok]:
    return [_Tok(m.group(), m.group().lower().replace("’", "'"), m.start(), m.end()) for m in _TOKEN.finditer(prompt)]


_DROPPED = -1  # a noun phrase of style words ("4k", "trending on artstation"): no region, relations to it ignored


class _Parser:
    """Scans the prompt's words into noun phrases, separators and relations, then links them into groups and relations."""

    def __init__(self, prompt: str):
        self.prompt = prompt
        self.toks = _tokenize(prompt)
        self.low = [t.low for t in self.toks]
        self.groups: list[_Group] = []
        self.rels: list[_Rel] = []
        self.notes: list[str] = []
        self.unknown = False
        self.mentions: list[int] = []  # group indices in order of mention
        self.style: list[str] = []  # style phrases dropped ("4k", "digital art")
        self.negated: list[str] = []  # "without birds", "no cats"

    # ------------------------------------------------------------------------------------------ scanning
    def _frame_end(self, i: int) -> int:
        """Skip leading framing such as "a realistic photo of" or "an image showing" (repeatedly)."""
        low, n = self.low, len(self.low)
        while True:
            j = i + (i < n and low[i] in ("a", "an", "the"))
            nxt = None
            for k in range(j, min(j + 4, n - 1)):
                w = low[k]
                if w in _FRAME_NOUNS:
                    if low[k + 1] in _FRAME_LINKS:
                        nxt = k + 2
                    elif low[k + 1] == "without":  # "a scene without birds": keep the negation
                        nxt = k + 1
                    elif low[k + 1] == "in" and k + 2 < n and low[k + 2] == "which":
                        nxt = k + 3
                    break
                if not w[0].isalnum() or w in _STOP_FRAME or w in _REL_FIRST:  # only adjectives before the frame noun
                    break
            if nxt is None:
                return i
            i = nxt

    def _match_position(self, i: int):
        """``on the left``, ``at the top of the image``, ``to the left of`` X, ``on top of`` X, ``in the middle of`` X.

        Returns ``("abs", {positions}, length)``, ``("rel", kind, length)`` or None.
        """
        low, n = self.low, len(self.low)
        if self.low[i] not in ("on", "to", "at", "in", "towards", "toward"):
            return None
        prep, j = self.low[i], i + 1
        has_the = j < n and low[j] == "the"
        j += has_the
        words = []
        while j < n:
            parts = low[j].split("-")  # "top-left", "left-hand"
            if parts[0] not in _POSITION_WORDS or not all(p in _POSITION_WORDS or p in _POSITION_TAILS for p in parts):
                break
            words.extend(p for p in parts if p in _POSITION_WORDS)
            j += 1
        if not words or (prep == "in" and not has_the):
            return None
        while j < n and low[j] in _POSITION_TAILS:
            j += 1
            if j < n and low[j] == "side":
                j += 1
        positions = {_POSITION_AXES[w] for w in words if w in _POSITION_AXES}
        if not positions:
            return None
        if j < n and low[j] == "of":
            k = j + 1
            while k < n and low[k] in ("the", "this", "a", "an", "whole", "entire"):
                k += 1
            if k < n and low[k] in _FRAME_NOUNS:
                return ("abs", positions, k + 1 - i)
            if len(positions) != 1:
                return ("rel", "?", j + 1 - i)
            (pos,) = positions
            if pos == "top" and prep == "on":
                kind = "on top of"
            else:
                kind = {
                    "left": "left of",
                    "right": "right of",
                    "top": "above",
                    "bottom": "below",
                    "middle": "between",
                }[pos]
            return ("rel", kind, j + 1 - i)
        return ("abs", positions, j - i)

    def _scan(self) -> list[tuple]:
        """Items: ("word", i), ("sep", text), ("rel", kind, text), ("abs", positions), ("pron", i), ("recip", kind,
        text), ("neg",), ("which",), ("filler", text). Relation kind "?" is a preposition the planner does not place."""
        items: list[tuple] = []
        low, n = self.low, len(self.low)
        i = self._frame_end(0)
        while i < n:
            w = low[i]
            m = self._match_position(i)
            if m is not None:
                text = " ".join(t.text for t in self.toks[i : i + m[2]])
                items.append(("abs", m[1]) if m[0] == "abs" else ("rel", m[1], text))
                i += m[2]
                continue
            recip = next((r for r in _RECIPROCAL if tuple(low[i : i + len(r)]) == r), None)
            if recip:  # "each other", "side by side": relates the two objects before
                items.append(("recip", _RECIPROCAL[recip], " ".join(t.text for t in self.toks[i : i + len(recip)])))
                i += len(recip)
                continue
            multi = next((s for s in _MULTI_SEPARATORS if tuple(low[i : i + len(s)]) == s), None)
            if multi:
                items.append(("sep", "and"))
                i += len(multi)
                continue
            for size in range(min(_MAX_REL_LEN, n - i), 0, -1):
                kind = _RELATION_WORDS.get(tuple(low[i : i + size]))
                if kind is not None:
                    items.append(("rel", kind, " ".join(t.text for t in self.toks[i : i + size])))
                    i += size
                    break
            else:
                if w in _SEPARATORS:
                    items.append(("sep", w))
                elif w == "without":
                    items.append(("neg",))
                elif w in ("which", "who", "that") and items and items[-1][0] == "sep":
                    items.append(("which",))  # ", which is above": the relation's subject is the object just named
                elif w == "right" and (
                    i + 1 == n or not any(low[i + 1 : i + 1 + len(k)] == list(k) for k in _RELATION_WORDS)
                ):
                    items.append(("word", i))  # "a right shoe"; "right next to" is an adverb (a filler)
                elif w in _FILLERS:
                    items.append(("filler", w))
                elif w in _PRONOUNS:
                    items.append(("pron", i))
                elif w in ("each", "other") or (w == "one" and i > 0 and low[i - 1] == "the"):
                    items.append(("filler", w))
                else:
                    items.append(("word", i))
                i += 1
        return items

    # ------------------------------------------------------------------------------------------ noun phrases
    def _split_run(self, run: list[int]) -> list[list[int]]:
        """Split a run of words at a determiner or count word that follows a content word ("a dog chasing a cat")."""
        parts: list[list[int]] = [[]]
        for i in run:
            cur = parts[-1]
            starts_np = self.low[i] in _DETERMINERS or self.low[i] in _NUMBER_WORDS or self.low[i].isdigit()
            has_content = any(self.low[j] not in _DETERMINERS and self.low[j] not in _NUMBER_WORDS for j in cur)
            if starts_np and has_content and self.low[cur[-1]] != "of":
                parts.append([i])
            else:
                cur.append(i)
        return [p for p in parts if p]

    def _noun_phrase(self, words: list[int]):
        """``(count or None, definite, vague, phrase token indices)`` for a run of words."""
        low = [self.low[i] for i in words]
        count: int | None = None
        definite = vague = False
        k = 0
        for pattern, value in _VAGUE.items():
            if tuple(low[: len(pattern)]) == pattern and len(low) > len(pattern):
                count, vague, k = value, True, len(pattern)
                break
        if not vague:
            if low and low[0] in ("the", "these", "those", "this"):
                definite, k = True, 1
            elif low and low[0] in _DETERMINERS:
                k = 1
            if k < len(low) and (low[k] in _NUMBER_WORDS or low[k].isdigit()):
                count = _NUMBER_WORDS[low[k]] if low[k] in _NUMBER_WORDS else int(low[k])
                k += 1
            elif k == 1 and low[0] in _NUMBER_WORDS:
                count = _NUMBER_WORDS[low[0]]
        return count, definite, vague, words[k:]

    def _group_for(self, words: list[int], negated: bool = False) -> int | None:
        count, definite, vague, body = self._noun_phrase(words)
        if not body:
            return None
        phrase = self.prompt[self.toks[body[0]].start : self.toks[body[-1]].end]
        if negated or count == 0:  # "without birds", "no cats": nothing to place
            self.negated.append(phrase)
            return _DROPPED
        body_low = [self.low[i] for i in body]
        if count is None and not definite and all(w in _STYLE_WORDS for w in body_low):
            self.style.append(phrase)
            return _DROPPED
        head = _singular(body_low[-1])
        key = " ".join(body_low[:-1] + [head])
        plural = _is_plural(body_low[-1])
        indefinite = count is not None
        if not indefinite:  # "the red circle", "circles", "cat": refer back to an earlier object when one matches
            same = [g for g, grp in enumerate(self.groups) if grp.key == key]
            if not same and definite:  # "the circle" for "a red circle": its words are a subset of an earlier object's
                same = [
                    g
                    for g, grp in enumerate(self.groups)
                    if grp.head == head and set(key.split()) <= set(grp.key.split())
                ]
            if len(same) >= 1:
                return same[-1]
        if vague:
            self.notes.append(
                f"vague count in {self.prompt[self.toks[words[0]].start : self.toks[body[-1]].end]!r}: {count} used"
            )
        if count is None:
            count = 1
            if plural and not definite:
                self.notes.append(f"no count given for {phrase!r}: one region for the group")
        self.groups.append(_Group(phrase=phrase, count=count, key=key, head=head))
        return len(self.groups) - 1

    # ------------------------------------------------------------------------------------------ linking
    def parse(self) -> None:
        items = self._scan()
        elements: list[tuple] = []
        run: list[int] = []

        def flush():
            if run:
                parts = self._split_run(run)
                last_word = self.low[parts[-1][0]]
                if len(parts[-1]) == 1 and len(last_word) > 4 and last_word.endswith("ing"):
                    parts.pop()  # a bare "-ing" word before a relation is a verb ("the cat is sleeping on a mat")
                for p, part in enumerate(parts):
                    if p:  # two noun phrases with no separator: the first probably ends with a verb
                        last = self.low[part[0] - 1]
                        prev = elements[-1]
                        if prev[0] == "np" and (last.endswith("ing") or last in _VERBS):
                            prev[1].pop()
                            if not prev[1]:  # "is chasing a cat": the verb stood alone
                                elements.pop()
                            elements.append(("rel", "?", self.toks[part[0] - 1].text))
                        else:
                            elements.append(("sep", ","))
                    elements.append(("np", part))
                run.clear()

        for k, item in enumerate(items):
            if item[0] == "word":
                run.append(item[1])
                continue
            if (
                item[0] == "sep"
                and item[1] == "and"
                and run
                and self.low[run[-1]] in _COLOURS
                and k + 1 < len(items)
                and items[k + 1][0] == "word"
                and self.low[items[k + 1][1]] in _COLOURS
            ):
                # "a red and blue ball": one object with a colour list; keep "and" inside the phrase
                run.append(run[-1] + 1)
                continue
            flush()
            if item[0] != "filler":
                elements.append(item)
        flush()
        self._link(elements)
        if self.style:
            self.notes.append(f"style words ignored (no region): {', '.join(map(repr, self.style))}")
        if self.negated:
            self.notes.append(
                f"negated, so no region (put them in the negative prompt): {', '.join(map(repr, self.negated))}"
            )

    def _coordinated(self, chain: list[int]) -> list[int]:
        """The objects joined by "and"/"," at the end of ``chain`` that no relation or position has claimed yet
        ("a cat and a dog on a sofa": both are on the sofa); always includes the last one."""
        involved = (
            {r.a for r in self.rels}
            | {r.b for r in self.rels}
            | {g for g, grp in enumerate(self.groups) if grp.positions}
        )
        out = [chain[-1]]
        for g in reversed(chain[:-1]):
            if g in involved or g in out:
                break
            out.insert(0, g)
        return out

    def _link(self, elements: list[tuple]) -> None:
        prev: int | None = None  # the group just before, with no separator in between (_DROPPED: style words)
        chain: list[int] = []  # groups joined by "and" / "," ending with prev
        joined = False  # an "and" / "," since the last group
        last_subjects: list[int] = []  # subjects of the previous relation in this sentence
        pending: tuple | None = None  # (subjects, kind, text, [objects so far])
        negate = False
        for el in elements:
            kind = el[0]
            if kind in ("np", "pron"):
                n_before = len(self.groups)
                if kind == "np":
                    g = self._group_for(el[1], negate)
                else:  # "it": the latest object other than the relation's subject ("a table with a cat on it")
                    exclude = pending[0][-1:] if pending else []
                    earlier = [m for m in reversed(self.mentions) if m not in exclude]
                    g = earlier[0] if earlier else None
                    if g is None:
                        self._unknown(f"pronoun {self.toks[el[1]].text!r} refers to nothing before it")
                    elif pending is not None and g in pending[0]:
                        pending = ([s for s in pending[0] if s != g], *pending[1:])
                negate = False
                if g is None:  # only determiners ("a" before "standing man")
                    continue
                if g == _DROPPED:  # style words or negated: no region, and no relation to it
                    pending, prev, chain = None, g, []
                    continue
                self.mentions.append(g)
                # only objects introduced here coordinate; "the red circle" refers back and starts afresh
                chain = chain + [g] if joined and pending is None and len(self.groups) > n_before else [g]
                joined = False
                if pending is not None:
                    subjects, rkind, text, objects = pending
                    objects.append(g)
                    if rkind == "between" and len(objects) == 1:
                        prev = g
                        continue
                    for subject in subjects:
                        if rkind == "between":
                            self._add(objects[0], "left of", subject, text)
                            self._add(subject, "left of", objects[1], text)
                        else:
                            self._add(subject, rkind, g, text)
                    last_subjects, pending = subjects, None
                prev = g
            elif kind == "rel":
                rkind, text = el[1], el[2]
                if pending is not None:
                    wanted = "two objects joined by 'and'" if pending[1] == "between" else "an object"
                    self._unknown(f"relation {pending[2]!r} is not followed by {wanted}")
                    pending = None
                if prev == _DROPPED:
                    subjects = []
                else:
                    subjects = self._coordinated(chain) if prev is not None and chain else last_subjects
                if rkind == "?":
                    if prev != _DROPPED:
                        self._unknown(f"{text!r} is not a spatial relation the rule planner knows")
                elif not subjects:
                    if prev != _DROPPED:
                        self._unknown(f"relation {text!r} has no object before it")
                else:
                    pending = (subjects, rkind, text, [])
                prev, chain, joined = None, [], False
            elif kind == "recip":
                if pending is not None and el[1] is None:
                    rkind, text, subjects = pending[1], f"{pending[2]} {el[2]}", pending[0]
                else:
                    rkind, text = el[1], el[2]
                    subjects = self._coordinated(chain) if prev is not None and prev != _DROPPED and chain else []
                if len(subjects) == 1:  # "a cat and a dog next to each other": the other is the one before
                    others = [m for m in reversed(self.mentions) if m not in subjects]
                    subjects = others[:1] + subjects
                if rkind is None or rkind == "between" or len(subjects) < 2:
                    self._unknown(f"{el[2]!r} needs two objects and a relation before it")
                else:
                    for a, b in zip(subjects, subjects[1:]):
                        self._add(a, rkind, b, text)
                    last_subjects = subjects
                pending, prev, chain, joined = None, None, [], False
            elif kind == "abs":
                targets = self._coordinated(chain) if prev is not None and prev != _DROPPED and chain else []
                if not targets and prev is None and self.mentions:
                    targets = [self.mentions[-1]]
                if not targets and prev != _DROPPED:
                    self._unknown("a position ('on the left', 'at the top', ...) with no object before it")
                for g in targets:
                    self.groups[g].positions |= el[1]
                chain, joined = [], False
            elif kind == "neg":
                negate, prev, chain, joined = True, None, [], False
            elif kind == "which":
                if pending is None and self.mentions:
                    prev, chain, joined = self.mentions[-1], [self.mentions[-1]], False
            elif kind == "sep":
                if pending is not None and pending[1] == "between" and len(pending[3]) == 1 and el[1] in ("and", ","):
                    continue
                if pending is not None:
                    self._unknown(f"relation {pending[2]!r} has no object after it")
                    pending = None
                prev = None
                joined = el[1] in ("and", ",", "with")
                if el[1] in _SENTENCE_END:
                    last_subjects, chain, joined = [], [], False
        if pending is not None:
            self._unknown(f"relation {pending[2]!r} has no object after it")

    def _add(self, a: int, kind: str, b: int, text: str) -> None:
        if a == b:
            self._unknown(f"relation {text!r} relates {self.groups[a].phrase!r} to itself")
            return
        self.rels.append(_Rel(a, kind, b, text))

    def _unknown(self, message: str) -> None:
        self.notes.append(f"unknown phrasing: {message}; spread layout used for it")
        self.unknown = True


# ============================================================================================ rule-based placement
_MARGIN = 0.04  # canvas border
_FILL = 0.8  # box side / cell side
_WIDE_ASPECT = 2.0  # max width / height of a support ("a cat on top of a table"): a surface to stand on
_MAX_SIDE = 0.7  # a lone object does not fill the canvas
_SEPARATION = 0.05  # required centre distance along a relation's axis
# ... and by how much it must exceed the distance across it: generated objects drift a few pixels from their boxes,
# and a pair planned on the diagonal (two above two, in a 2x2 grid) then breaks the relation half the time
_DOMINANCE = 0.05
_H_KINDS = ("left of", "right of", "next to")
# Width / height of a box, by singular head noun: a box keeps its object's usual proportions, as the boxes layout
# models are trained on do (a person is tall, a bus is wide; every shapes-world box is square). Rough typical
# proportions of upright, whole objects; a noun not listed gets a square box.
_ASPECTS = {
    **dict.fromkeys(
        (
            "person",
            "man",
            "woman",
            "boy",
            "girl",
            "child",
            "kid",
            "lady",
            "player",
            "soldier",
            "astronaut",
            "robot",
            "statue",
        ),
        0.45,
    ),
    **dict.fromkeys(("bottle", "candle", "vase", "lamp", "tower", "lighthouse", "rocket", "door", "penguin"), 0.45),
    **dict.fromkeys(
        ("tree", "giraffe", "chair", "flower", "plant", "cactus", "glass", "mug", "book", "window", "building"), 0.7
    ),
    **dict.fromkeys(
        (
            "dog",
            "horse",
            "cow",
            "sheep",
            "zebra",
            "elephant",
            "deer",
            "bear",
            "lion",
            "tiger",
            "pig",
            "fox",
            "umbrella",
            "laptop",
            "tv",
            "monitor",
        ),
        1.3,
    ),
    **dict.fromkeys(
        (
            "car",
            "bicycle",
            "bike",
            "motorcycle",
            "boat",
            "table",
            "desk",
            "bed",
            "banana",
            "sandwich",
            "crocodile",
            "fish",
        ),
        1.6,
    ),
    **dict.fromkeys(("bus", "truck", "train", "airplane", "plane", "bench", "couch", "sofa", "skateboard"), 2.0),
}


def _reaches(succ: list[set[int]], a: int, b: int) -> bool:
    seen, stack = set(), [a]
    while stack:
        x = stack.pop()
        if x == b:
            return True
        if x not in seen:
            seen.add(x)
            stack.extend(succ[x])
    return False


def _ranks(
    n: int, strict: list[tuple[int, int, str]], equal: list[tuple[int, int]], notes: list[str], flexible=frozenset()
):
    """Integer ranks with ``rank[a] < rank[b]`` for each strict edge and, where that allows, equal ranks for ``equal``.

    An edge that would close a cycle (a contradiction) is dropped with a note; a ``flexible`` one ("next to") is
    reversed instead. Ranks are longest-path depths. Returns ``(ranks, class_of, successors_by_class)``.
    """
    succ: list[set[int]] = [set() for _ in range(n)]
    for a, b, label in strict:
        if _reaches(succ, b, a):
            if (a, b, label) in flexible and not _reaches(succ, a, b):
                succ[b].add(a)
            else:
                notes.append(f"contradictory relations: ignored {label}")
            continue
        succ[a].add(b)
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    def class_succ() -> list[set[int]]:
        cs: list[set[int]] = [set() for _ in range(n)]
        for a in range(n):
            for b in succ[a]:
                cs[find(a)].add(find(b))
        return cs

    for a, b in equal:  # merging two classes neither of which reaches the other cannot close a cycle
        ra, rb = find(a), find(b)
        if ra != rb:
            cs = class_succ()
            if not _reaches(cs, ra, rb) and not _reaches(cs, rb, ra):
                parent[rb] = ra
    cs = class_succ()
    rank: dict[int, int] = {}

    def depth(c: int) -> int:
        if c not in rank:
            preds = [p for p in range(n) if find(p) == p and c in cs[p]]
            rank[c] = max((depth(p) + 1 for p in preds), default=0)
        return rank[c]

    return [depth(find(i)) for i in range(n)], [find(i) for i in range(n)], cs


def _arrange(area, n: int, line: str | None = None) -> list[tuple[float, float, float, float]]:
    """``n`` cells in ``area``: the columns x rows grid with the largest square-ish cells, last row centred.
    ``line="row"`` / ``"column"`` forces one row / one column."""
    x0, y0, x1, y1 = area
    w, h = x1 - x0, y1 - y0
    best = None
    for cols in {"row": [n], "column": [1]}.get(line, range(1, n + 1)):
        rows = math.ceil(n / cols)
        score = (round(min(w / cols, h / rows), 9), -rows * cols, -rows)
        if best is None or score > best[0]:
            best = (score, cols, rows)
    _, cols, rows = best
    cw, ch = w / cols, h / rows
    cells = []
    for k in range(n):
        r, c = divmod(k, cols)
        offset = (cols - min(cols, n - r * cols)) * cw / 2
        cells.append((x0 + offset + c * cw, y0 + r * ch, x0 + offset + (c + 1) * cw, y0 + (r + 1) * ch))
    return cells


def _box_in(cell, *, aspect: float = 1.0, wide: bool = False, width_scale: float = 1.0) -> list[float]:
    """A box centred in ``cell``, with width / height ``aspect``: as large as ``_FILL`` of the cell and
    ``_MAX_SIDE`` allow, then ``width_scale`` of that (both sides). A ``wide`` support takes the cell's width up
    to ``_WIDE_ASPECT`` times its height instead, so what stands on it has room."""
    x0, y0, x1, y1 = cell
    cw, ch = (x1 - x0) * _FILL, (y1 - y0) * _FILL
    if wide:
        bh = min(ch, cw / max(aspect, 1.0), _MAX_SIDE)
        bw = min(cw, bh * max(aspect, _WIDE_ASPECT), 0.9)
    else:
        bw = min(cw, ch * aspect, _MAX_SIDE, _MAX_SIDE * aspect)
        bh = bw / aspect
    bw, bh = bw * width_scale, bh * width_scale
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]


def _centre(b) -> tuple[float, float]:
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def _overlap(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _relation_ok(a, kind: str, b) -> bool:
    """Box ``a`` is ``kind`` box ``b``: centres apart by more than ``_SEPARATION`` along the relation's axis and
    farther than across it by ``_DOMINANCE`` (the shapes evaluator's rule, with margins); "on top of" touches and
    overlaps horizontally; "x<" / "y<" (absolute positions) only order the centres."""
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    dx, dy = bx - ax, by - ay
    if kind == "left of":
        return dx > _SEPARATION and abs(dx) >= abs(dy) + _DOMINANCE
    if kind == "right of":
        return -dx > _SEPARATION and abs(dx) >= abs(dy) + _DOMINANCE
    if kind == "above":
        return dy > _SEPARATION and abs(dy) >= abs(dx) + _DOMINANCE
    if kind == "below":
        return -dy > _SEPARATION and abs(dy) >= abs(dx) + _DOMINANCE
    if kind == "next to":
        return abs(dx) > _SEPARATION and abs(dx) >= abs(dy) + _DOMINANCE
    if kind == "on top of":
        return abs(a[3] - b[1]) < 1e-6 and min(a[2], b[2]) > max(a[0], b[0]) and ay < by
    if kind == "x<":
        return dx > _SEPARATION
    if kind == "y<":
        return dy > _SEPARATION
    raise ValueError(f"unknown relation {kind!r}")  # pragma: no cover


def _problems(boxes: list[list[list[float]]], checks: list[tuple[int, str, int, str]], names: list[str]) -> list[str]:
    """Violated relations (every instance pair must satisfy them), overlapping boxes, boxes off the canvas."""
    out = []
    for a, kind, b, label in checks:
        if not all(_relation_ok(p, kind, q) for p in boxes[a] for q in boxes[b]):
            out.append(label)
    flat = [(g, box) for g, group_boxes in enumerate(boxes) for box in group_boxes]
    for i in range(len(flat)):
        for j in range(i + 1, len(flat)):
            if _overlap(flat[i][1], flat[j][1]) > 1e-9:
                out.append(f"boxes of {names[flat[i][0]]!r} and {names[flat[j][0]]!r} overlap")
    if any(min(box) < -1e-9 or max(box) > 1 + 1e-9 for _, box in flat):
        out.append("a box leaves the canvas")
    return list(dict.fromkeys(out))


@dataclasses.dataclass
class _Constraints:
    h_strict: list  # (a, b, label): a's column before b's
    v_strict: list  # (a, b, label): a's row before b's
    row_equal: list  # (a, b): same row if possible (horizontal relations)
    col_equal: list  # (a, b): same column if possible (vertical relations)
    flexible: set  # "next to" edges, which may flip
    checks: list  # (a, kind, b, label) for _problems


def _constraints(groups: list[_Group], rels: list[_Rel]) -> _Constraints:
    c = _Constraints([], [], [], [], set(), [])
    for r in rels:
        label = f"{groups[r.a].phrase!r} {r.text} {groups[r.b].phrase!r}"
        c.checks.append((r.a, r.kind, r.b, label))
        if r.kind in ("left of", "right of", "next to"):
            edge = (r.a, r.b, label) if r.kind != "right of" else (r.b, r.a, label)
            c.h_strict.append(edge)
            c.row_equal.append((r.a, r.b))
            if r.kind == "next to":
                c.flexible.add(edge)
        else:
            c.v_strict.append((r.a, r.b, label) if r.kind != "below" else (r.b, r.a, label))
            c.col_equal.append((r.a, r.b))
    # absolute positions: "on the left" = left of every object not also on the left; "in the middle" between sides
    for g, grp in enumerate(groups):
        for h, other in enumerate(groups):
            if g == h:
                continue
            label = f"{grp.phrase!r} on the {{}} of {other.phrase!r}"
            sides = (("left", c.h_strict, True, "x<"), ("right", c.h_strict, False, "x<"),
                     ("top", c.v_strict, True, "y<"), ("bottom", c.v_strict, False, "y<"))  # fmt: skip
            for pos, edges, forward, kind in sides:
                on_side = pos in grp.positions and pos not in other.positions
                # "in the middle" sits after "on the left"/"at the top" and before "on the right"/"at the bottom"
                middle = "middle" in grp.positions and pos in other.positions and "middle" not in other.positions
                if on_side or middle:
                    a, b = (g, h) if forward == on_side else (h, g)
                    edges.append((a, b, label.format(pos if on_side else "middle")))
                    c.checks.append((a, kind, b, label.format(pos if on_side else "middle")))
    return c


def _place(
    groups: list[_Group],
    rels: list[_Rel],
    cons: _Constraints,
    notes: list[str],
    split_axis: str | None,
    lines: bool,
    squeeze: float,
) -> list[list[list[float]]]:
    """Boxes per group on a grid of columns (ranks along x) and rows (ranks along y).

    Each connected set of related groups (a component) gets its own block of columns, side by side in order of
    mention, with its own rows over the full height; an unrelated group is a component of one cell. Groups that
    end up in the same cell share it along ``split_axis`` ("x", "y", or None for the cell's longer side); a
    group's instances are laid
    out in a grid inside its area, or with ``lines`` in one row (left/right relations: no vertical spread to
    compete with the horizontal offset) or one column (above/below), with columns/rows widened by the counts.
    ``squeeze`` < 1 narrows a group's area across its relations' axis (a group only above/below others gets
    ``squeeze`` of its width), so instance grids keep the relation dominant. "on top of" then stacks the subject on
    its support, touching.
    """
    n = len(groups)
    lo, hi = _MARGIN, 1 - _MARGIN
    boxes: list[list[list[float]]] = [[] for _ in range(n)]
    any_position = any(g.positions for g in groups)
    touched = set(range(n)) if any_position else {r.a for r in rels} | {r.b for r in rels}
    if not touched:  # nothing related: every instance on one grid, groups in order
        cells = iter(_arrange((lo, lo, hi, hi), sum(g.count for g in groups)))
        return [[_box_in(next(cells), aspect=_ASPECTS.get(grp.head, 1.0)) for _ in range(grp.count)] for grp in groups]
    cols, _, _ = _ranks(n, cons.h_strict, cons.col_equal, notes, cons.flexible)
    rows, row_class, row_succ = _ranks(n, cons.v_strict, cons.row_equal, notes)
    # "on top of": pull the subject down to the row just above its nearest successor (its support, normally)
    for r in rels:
        if r.kind == "on top of":
            c = row_class[r.a]
            below = [rows[b] for b in range(n) if row_class[b] in row_succ[c]]
            if below:
                for g in range(n):
                    if row_class[g] == c:
                        rows[g] = max(rows[g], min(below) - 1)
    # components: linked by relations (absolute positions link everything); ranks restart at 0 in each
    comp = list(range(n))

    def root(x: int) -> int:
        while comp[x] != x:
            x = comp[x]
        return x

    links = [(r.a, r.b) for r in rels] + ([(0, g) for g in range(1, n)] if any_position else [])
    for a, b in links:
        comp[root(b)] = root(a)
    order = list(dict.fromkeys(root(g) for g in range(n)))
    members = {k: [g for g in range(n) if root(g) == k] for k in order}
    offset, ncols = {}, 0
    for k in order:
        col_base, row_base = min(cols[g] for g in members[k]), min(rows[g] for g in members[k])
        for g in members[k]:
            cols[g] -= col_base
            rows[g] -= row_base
        offset[k], ncols = ncols, ncols + max(cols[g] for g in members[k]) + 1
    for g in range(n):
        cols[g] += offset[root(g)]
    line: dict[int, str | None] = {g: None for g in range(n)}
    horizontal = {r.a for r in rels if r.kind in _H_KINDS} | {r.b for r in rels if r.kind in _H_KINDS}
    vertical = {r.a for r in rels if r.kind not in _H_KINDS} | {r.b for r in rels if r.kind not in _H_KINDS}
    if lines:
        for g in range(n):
            line[g] = "row" if g in horizontal - vertical else "column" if g in vertical - horizontal else None
    col_w = [1.0] * ncols
    row_h = {k: [1.0] * (max(rows[g] for g in members[k]) + 1) for k in order}
    for g in range(n):
        if line[g] == "row":
            col_w[cols[g]] = max(col_w[cols[g]], groups[g].count)
        elif line[g] == "column":
            row_h[root(g)][rows[g]] = max(row_h[root(g)][rows[g]], groups[g].count)
    xs = [lo + (hi - lo) * sum(col_w[:k]) / sum(col_w) for k in range(ncols + 1)]
    ys = {k: [lo + (hi - lo) * sum(h[:r]) / sum(h) for r in range(len(h) + 1)] for k, h in row_h.items()}
    areas: dict[int, list[float]] = {}
    cells: dict[tuple[int, int], list[int]] = {}
    for g in range(n):
        cells.setdefault((cols[g], rows[g]), []).append(g)
    for (c, r), sharing in cells.items():
        k = root(sharing[0])
        area = [xs[c], ys[k][r], xs[c + 1], ys[k][r + 1]]
        axis = split_axis or ("x" if area[2] - area[0] >= area[3] - area[1] else "y")
        total = sum(groups[g].count for g in sharing)
        start = area[0] if axis == "x" else area[1]
        span = (area[2] - area[0]) if axis == "x" else (area[3] - area[1])
        for g in sharing:  # shares in proportion to the counts
            part = span * groups[g].count / total
            areas[g] = (
                [start, area[1], start + part, area[3]] if axis == "x" else [area[0], start, area[2], start + part]
            )
            start += part
    # an absolute position on an axis where the group spans the canvas: use that half of its area
    for g in range(n):
        a, pos = areas[g], groups[g].positions
        if a[2] - a[0] > 0.75 and ("left" in pos) != ("right" in pos):
            mid = (a[0] + a[2]) / 2
            a[0], a[2] = (a[0], mid) if "left" in pos else (mid, a[2])
        if a[3] - a[1] > 0.75 and ("top" in pos) != ("bottom" in pos):
            mid = (a[1] + a[3]) / 2
            a[1], a[3] = (a[1], mid) if "top" in pos else (mid, a[3])
    if squeeze < 1:
        for g in range(n):
            a, axis = areas[g], (1 if g in horizontal - vertical else 0 if g in vertical - horizontal else None)
            if axis is not None and groups[g].count > 1:
                mid, half = (a[axis] + a[axis + 2]) / 2, (a[axis + 2] - a[axis]) * squeeze / 2
                a[axis], a[axis + 2] = mid - half, mid + half
    subjects = {r.a for r in rels if r.kind == "on top of"}
    supports = {r.b for r in rels if r.kind == "on top of"}
    for g in range(n):
        for cell in _arrange(tuple(areas[g]), groups[g].count, line[g]):
            boxes[g].append(
                _box_in(
                    cell,
                    aspect=_ASPECTS.get(groups[g].head, 1.0),
                    wide=g in supports,
                    width_scale=0.75 if g in subjects else 1.0,
                )
            )
    # stacking: a support that sits on nothing moves up to its area's top; what sits on a support then moves down
    # onto it (bottom edges = the support's top edge), centred over it as a whole; bottom-most supports first, so
    # chains stack
    for g in sorted(supports - subjects):
        _shift(boxes[g], 0.0, areas[g][1] - min(b[1] for b in boxes[g]))
    for b in sorted(supports, key=lambda b: -max(box[3] for box in boxes[b])):
        on_it = sorted({r.a for r in rels if r.kind == "on top of" and r.b == b})
        dx = _mid(boxes[b], 0) - _mid([box for a in on_it for box in boxes[a]], 0)
        for a in on_it:
            _shift(boxes[a], dx, min(box[1] for box in boxes[b]) - max(box[3] for box in boxes[a]))
    return boxes


def _on_canvas(box) -> tuple[float, ...]:
    """``box`` moved onto the canvas where it sticks out (a stack taller than the canvas), then clipped to it, so no
    box loses its area."""
    out = list(box)
    for axis in (0, 1):
        lo, hi = out[axis], out[axis + 2]
        shift = -lo if lo < 0 else min(0.0, 1 - hi)
        out[axis], out[axis + 2] = lo + shift, hi + shift
    return tuple(min(max(round(v, 6), 0.0), 1.0) for v in out)


def _mid(boxes, axis: int) -> float:
    return (min(b[axis] for b in boxes) + max(b[axis + 2] for b in boxes)) / 2


def _shift(boxes, dx: float, dy: float) -> None:
    for b in boxes:
        b[0] += dx
        b[2] += dx
        b[1] += dy
        b[3] += dy


class RuleBasedPlanner:
    """Offline, deterministic planner for English object lists with counts, adjectives and spatial relations.

    Relations: left of / to the left of, right of, above / over, below / under / beneath, on top of / on, next to /
    beside / near, between X and Y, and absolute positions (on the left, at the top, in the top left corner).
    Phrases are the prompt's own words ("red circle"; "green triangles" once per instance for "three green
    triangles"). Anything it does not understand is reported in ``PlanResult.notes`` with ``fallback=True``.
    """

    name = "rule"

    def plan(self, prompt: str) -> PlanResult:
        if not isinstance(prompt, str) or not prompt.strip():
            raise PlannerError("the prompt is empty; give a text prompt such as 'a cat to the left of a dog'")
        parser = _Parser(prompt)
        parser.parse()
        notes, groups, rels = list(parser.notes), parser.groups, parser.rels
        if not groups and parser.negated and not parser.unknown:  # "a scene without birds": nothing to place
            return PlanResult(Layout(prompt=prompt), notes, False)
        if not groups:
            notes.append("unknown phrasing: no objects found; the whole prompt is one region")
            region = Region(prompt.strip().rstrip(".!?;, ") or prompt.strip(), box=(0.15, 0.15, 0.85, 0.85))
            return PlanResult(Layout(prompt=prompt, regions=(region,)), notes, True)
        total = sum(g.count for g in groups)
        if total > MAX_REGIONS:
            counts = ", ".join(f"{g.count} x {g.phrase!r}" for g in groups[:8]) + (", ..." if len(groups) > 8 else "")
            raise PlannerError(
                f"the prompt asks for {total} objects ({counts}); a layout holds at most {MAX_REGIONS} regions "
                "(GLIGEN's limit): lower the counts or split the prompt"
            )
        cons = _constraints(groups, rels)
        names = [g.phrase for g in groups]
        best = None
        # try grids, then rows/columns of instances, with each cell-sharing direction; keep the first clean layout
        for (lines, squeeze), axis in itertools.product(
            ((False, 1.0), (False, 0.85), (False, 0.6), (False, 0.4), (True, 1.0)), (None, "x", "y")
        ):
            attempt_notes: list[str] = []
            boxes = _place(groups, rels, cons, attempt_notes, axis, lines, squeeze)
            ignored = {note.split("ignored ", 1)[1] for note in attempt_notes if note.startswith("contradictory")}
            problems = [p for p in _problems(boxes, cons.checks, names) if p not in ignored]
            if best is None or len(problems) < len(best[2]):
                best = (boxes, attempt_notes, problems)
            if not problems:
                break
        boxes, place_notes, problems = best
        notes.extend(place_notes)
        notes.extend(f"could not satisfy: {p}" for p in problems)
        regions = [
            Region(grp.phrase, box=_on_canvas(box)) for grp, group_boxes in zip(groups, boxes) for box in group_boxes
        ]
        return PlanResult(Layout(prompt=prompt, regions=tuple(regions)), notes, parser.unknown)


# ============================================================================================ LLM prompt template
SYSTEM_MESSAGE = (
    "You are an intelligent bounding box generator. I will give you a caption for an image. Place every object the "
    "caption mentions on a 512x512 canvas: the top-left corner is (0, 0) and the bottom-right corner is (512, 512). "
    "Answer with one line per object in the form 'name: (x_min, y_min, x_max, y_max)' with integer pixel corners, "
    "x_min < x_max and y_min < y_max. Use the caption's own words for each name. Respect the relative sizes, positions "
    "and counts in the caption: an object 'to the left of' another has a smaller x, one 'above' another a smaller y, "
    "and 'three cats' needs three separate 'cats' lines. Boxes should not overlap unless the caption says one object "
    "is on another. Then add a line 'Background prompt: ...' describing the scene without the objects, and a line "
    "'Negative prompt: ...' (it may be empty). Do not write anything else."
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


# ============================================================================================ reply parser
_FENCE = re.compile(r"```[ \t]*[\w+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.S)
_AR_LINE = re.compile(
    # at a line start or after the previous entry ("cat: (..), dog: (..)" on one line)
    r"(?:^|(?<=[,;:.)\]]))[ \t]*(?:[-*•]+\s*|\d+[.)]\s+)?[*_`\"']*(?P<name>[^:\n()\[\]{}\",;]*?)[*_`\"']*\s*[:=]\s*"
    r"[\(\[](?P<nums>[^\)\]\n]*)[\)\]]",
    re.M,
)
_BACKGROUND = re.compile(r"^[\s*_`#-]*background(?:\s+prompt)?[*_`]*\s*:[ \t]*(?P<v>.*)$", re.I | re.M)
_NEGATIVE = re.compile(r"^[\s*_`#-]*negative(?:\s+prompt)?[*_`]*\s*:[ \t]*(?P<v>.*)$", re.I | re.M)
_NAME_KEYS = ("phrase", "name", "label", "object", "class", "category", "text", "caption")
_BOX_KEYS = ("box", "bbox", "bounding_box", "boundingbox", "coords", "coordinates", "xyxy", "position", "rect")
_META_KEYS = {
    "background",
    "background_prompt",
    "bg_prompt",
    "negative_prompt",
    "negative",
    "width",
    "height",
    "prompt",
    "version",
}
_LIST_KEYS = ("regions", "objects", "boxes", "layout", "bboxes", "items", "detections", "annotations")
_JSON_KEYS = set(_NAME_KEYS) | set(_BOX_KEYS) | set(_LIST_KEYS)  # never object names in AR lines


def _numbers(values: Any) -> list[float] | None:
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        return None
    try:
        out = [float(v) for v in values if not isinstance(v, bool)]
    except (TypeError, ValueError):
        return None
    return out if len(out) == 4 and all(math.isfinite(v) for v in out) else None


def _box_from_dict(d: dict) -> tuple[list[float], str] | None:
    for keys, fmt in ((("x0", "y0", "x1", "y1"), "xyxy"), (("xmin", "ymin", "xmax", "ymax"), "xyxy"),
                      (("x_min", "y_min", "x_max", "y_max"), "xyxy"), (("left", "top", "right", "bottom"), "xyxy"),
                      (("x", "y", "w", "h"), "xywh"), (("x", "y", "width", "height"), "xywh")):  # fmt: skip
        if all(k in d for k in keys):
            nums = _numbers([d[k] for k in keys])
            if nums is not None:
                return nums, fmt
    return None


def _json_items(value: Any):
    """``(items, background, negative, canvas)`` from a parsed JSON value, or None when it is not a layout."""
    background = negative = None
    canvas = (CANVAS, CANVAS)
    items = None
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        background = next(
            (lowered[k] for k in ("background", "background_prompt", "bg_prompt") if isinstance(lowered.get(k), str)),
            None,
        )
        negative = next((lowered[k] for k in ("negative_prompt", "negative") if isinstance(lowered.get(k), str)), None)
        w, h = lowered.get("width"), lowered.get("height")
        if isinstance(w, int) and isinstance(h, int) and not isinstance(w, bool) and w > 0 and h > 0:
            canvas = (w, h)
        items = next((lowered[k] for k in _LIST_KEYS if isinstance(lowered.get(k), list)), None)
        if items is None:  # {"cat": [x0, y0, x1, y1], ...}: every key but the known fields names a box
            pairs = [[k, v] for k, v in value.items() if str(k).lower() not in _META_KEYS]
            items = pairs if pairs and all(_numbers(v) is not None for _, v in pairs) else None
    elif isinstance(value, list):
        items = value
    if not items:
        return None
    out = []
    for item in items:
        if isinstance(item, dict):
            low = {str(k).lower(): v for k, v in item.items()}
            name = next((low[k] for k in _NAME_KEYS if isinstance(low.get(k), str)), None)
            box = next(((nums, "xyxy") for k in _BOX_KEYS if (nums := _numbers(low.get(k))) is not None), None)
            if box is None:
                box = next(
                    (_box_from_dict(low[k]) for k in _BOX_KEYS if isinstance(low.get(k), dict)), None
                ) or _box_from_dict(low)
        elif isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
            name, box = item[0], ((nums, "xyxy") if (nums := _numbers(item[1])) is not None else None)
        else:
            return None
        if name is None or box is None:
            return None
        out.append((name, box[0], box[1]))
    return out, background, negative, canvas


def _json_candidates(text: str):
    decoder = json.JSONDecoder()
    tried = 0
    for m in re.finditer(r"[\[{]", text):
        tried += 1
        if tried > 500:
            return
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        found = _json_items(value)
        if found is not None:
            yield found


def _bracket_end(text: str, start: int) -> int | None:
    depth, quote, i = 0, None, start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _lmd_items(text: str):
    for m in re.finditer(r"\[\s*[\(\[]\s*['\"]", text):
        end = _bracket_end(text, m.start())
        if end is None:
            continue
        try:
            objects = ast.literal_eval(text[m.start() : end])
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        out = []
        for item in objects:
            if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
                break
            nums = _numbers(item[1])
            if nums is None:
                raise LayoutError(f"LMD object {item!r}: expected (phrase, [x, y, w, h]) with 4 numbers")
            out.append((item[0], nums, "xywh"))
        else:
            if out:
                return out
    return None


def _ar_items(text: str):
    out = []
    for m in _AR_LINE.finditer(text):
        name = m["name"].strip().strip("*_`\"' ")
        if not name or name.lower().startswith(("background", "negative")) or name.lower() in _JSON_KEYS:
            continue
        parts = [p for p in re.split(r"[,\s]+", m["nums"].strip()) if p]
        try:
            nums = [float(p.rstrip("px")) for p in parts]
        except ValueError:
            raise LayoutError(
                f"line {m.group(0).strip()!r}: expected 'name: (x0, y0, x1, y1)' with 4 numbers"
            ) from None
        if len(nums) != 4 or not all(math.isfinite(v) for v in nums):
            raise LayoutError(
                f"line {m.group(0).strip()!r}: expected 'name: (x0, y0, x1, y1)' with 4 numbers, got {len(nums)}"
            )
        out.append((name, nums, "xyxy"))
    return out or None


def _to_regions(items, canvas: tuple[int, int], notes: list[str], guess_xywh: bool = False) -> list[Region]:
    """Pixel or normalised boxes (xyxy or xywh) -> clamped normalised regions. With ``guess_xywh`` (JSON, where
    "bbox" may be COCO's [x, y, w, h]), corner boxes that are inverted but valid as x, y, w, h are read that way."""
    values = [v for _, nums, _ in items for v in nums]
    normalised = max(values) <= 1.0 and min(values) >= 0.0 and any(v != int(v) for v in values)
    # xyxy boxes that are inverted everywhere they can be but valid as x, y, w, h were written as LMD boxes
    if (
        guess_xywh
        and all(fmt == "xyxy" for _, _, fmt in items)
        and any(n[2] <= n[0] or n[3] <= n[1] for _, n, _ in items)
    ):
        if all(n[2] > 0 and n[3] > 0 for _, n, _ in items):
            items = [(name, nums, "xywh") for name, nums, _ in items]
            notes.append("boxes read as [x, y, width, height] (they are inverted as corners)")
    w, h = (1.0, 1.0) if normalised else canvas
    regions = []
    clamped = False
    for name, (a, b, c, d), fmt in items:
        box = (a / w, b / h, (a + c) / w, (b + d) / h) if fmt == "xywh" else (a / w, b / h, c / w, d / h)
        fixed = tuple(min(max(v, 0.0), 1.0) for v in box)
        clamped |= fixed != box
        regions.append(Region(name, box=fixed))
    if clamped:
        notes.append("boxes outside the canvas were clamped to it")
    return regions


def _parse_reply(text: str, prompt: str, canvas: int = CANVAS) -> tuple[Layout, list[str]]:
    if not isinstance(text, str) or not text.strip():
        raise LayoutError("the reply is empty; expected lines 'name: (x0, y0, x1, y1)'")
    notes: list[str] = []
    blocks = [m.group(1) for m in _FENCE.finditer(text) if m.group(1).strip()]
    first_error: LayoutError | None = None
    for candidate in blocks + [text]:
        found = None
        for parsed in _json_candidates(candidate):
            found = parsed
            break
        if found is not None:
            items, background, negative, size = found
            guess = True
        else:
            guess = False
            background = negative = None
            size = (canvas, canvas)
            try:
                items = _lmd_items(candidate) or _ar_items(candidate)
            except LayoutError as e:
                first_error = first_error or e
                continue
        if not items:
            continue
        if background is None:
            m = _BACKGROUND.search(text)
            background = m["v"].strip().strip("`*\"'") or None if m else None
        if negative is None:
            m = _NEGATIVE.search(text)
            negative = m["v"].strip().strip("`*\"'") or None if m else None
        regions = _to_regions(items, size, notes, guess)
        layout = Layout(
            prompt=prompt,
            regions=tuple(regions),
            width=canvas,
            height=canvas,
            background=background,
            negative_prompt=negative,
        )
        return layout, notes
    if first_error is not None:
        raise first_error
    raise LayoutError(
        "no boxes found in the reply; expected one line per object 'name: (x0, y0, x1, y1)' (512 px corners), "
        'an LMD list [(\'name\', [x, y, w, h]), ...], or JSON {"regions": [{"phrase", "box"}]}'
    )


def parse_llm_reply(text: str, prompt: str, *, canvas: int = CANVAS) -> Layout:
    """Parse what chat models return into a Layout for ``prompt`` (raises LayoutError when nothing usable is found).

    Accepts AR lines ``name: (x0, y0, x1, y1)`` (or ``[...]``, bullets, numbering, bold names), LMD's
    ``[('a cat', [x, y, w, h]), ...]`` with ``Background prompt:`` / ``Negative prompt:`` lines, JSON (a dict with
    ``regions``/``objects``/``boxes`` or a list of ``{phrase|name|label, box|bbox}``), anywhere in the text, inside
    ````` code fences or among prose. Pixel coordinates are on a ``canvas`` x ``canvas`` image (JSON may give its
    own ``width``/``height``); all-fractional values in [0, 1] are taken as normalised. Boxes are clamped to the canvas.
    """
    return _parse_reply(text, prompt, canvas)[0]


def phrases_missing(layout: Layout) -> list[str]:
    """Region phrases whose words (last word in singular or plural) do not occur in the prompt."""
    words = re.findall(r"[a-z0-9'\-]+", layout.prompt.lower())
    text = " " + " ".join(words) + " "
    missing = []
    for phrase in dict.fromkeys(layout.phrases):
        pw = re.findall(r"[a-z0-9'\-]+", phrase.lower())
        if not pw:
            missing.append(phrase)
            continue
        variants = {pw[-1], _singular(pw[-1]), pw[-1] + "s", pw[-1] + "es"}
        if not any(f" {' '.join(pw[:-1] + [v])} " in text for v in variants):
            missing.append(phrase)
    return missing


# ============================================================================================ LLM backends
class ChatBackend(Protocol):
    model_id: str

    def chat(self, messages: list[dict[str, str]]) -> str: ...


class OpenAIChatBackend:
    """An OpenAI-compatible chat-completions server over HTTP (standard library only).

    ``POST {base_url}/chat/completions`` with ``{model, messages, temperature}``. Connection errors, timeouts, HTTP 429
    and 5xx are retried ``max_retries`` times with exponential backoff (``backoff * 2**attempt`` seconds, or the
    server's ``Retry-After`` when shorter than a minute); other HTTP errors fail at once.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60,
        max_retries: int = 3,
        backoff: float = 1.0,
        temperature: float = 0.0,
    ):
        if not base_url or not re.match(r"https?://", base_url):
            raise PlannerError(f"base_url must be an http(s) URL such as https://api.openai.com/v1, got {base_url!r}")
        if not model:
            raise PlannerError("an LLM model name is required (e.g. --llm-model gpt-4o)")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout, self.max_retries, self.backoff, self.temperature = timeout, max_retries, backoff, temperature
        self.model_id = f"openai:{self.model}@{self.base_url}"

    def chat(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last, delay = "", 0.0
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(delay)
            delay = self.backoff * 2**attempt
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
            except urllib.error.HTTPError as e:
                detail = _read_error(e)
                if e.code == 429 or e.code >= 500:
                    last = f"HTTP {e.code} {e.reason}{detail}"
                    retry_after = e.headers.get("Retry-After") if e.headers else None
                    if retry_after and retry_after.strip().isdigit() and int(retry_after) < 60:
                        delay = max(delay, float(retry_after))
                    continue
                hint = " (check the API key: --api-key or $OPENAI_API_KEY)" if e.code in (401, 403) else ""
                hint = hint or (" (check --llm-model and --base-url)" if e.code in (400, 404) else "")
                raise PlannerError(
                    f"POST {self.url} failed: HTTP {e.code} {e.reason}{detail}{hint}; not retried"
                ) from None
            except TimeoutError as e:
                last = f"timed out after {self.timeout} s ({e})"
                continue
            except urllib.error.URLError as e:
                if isinstance(e.reason, (TimeoutError, socket.timeout)):
                    last = f"timed out after {self.timeout} s"
                else:
                    last = f"cannot connect: {e.reason}"
                continue
            except (OSError, http.client.HTTPException) as e:  # reset connections, incomplete reads
                last = f"connection error: {type(e).__name__}: {e}"
                continue
            return self._content(raw)
        raise PlannerError(f"POST {self.url} failed after {self.max_retries + 1} attempts; last error: {last}")

    def _content(self, raw: bytes) -> str:
        try:
            data = json.loads(raw)
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise PlannerError(f"POST {self.url}: the response is not a chat completion: {raw[:500]!r}") from None
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise PlannerError(f"POST {self.url}: the chat completion has no text content: {raw[:500]!r}")
        return content


def _read_error(e: urllib.error.HTTPError) -> str:
    try:
        text = e.read().decode("utf-8", "replace").strip()
    except Exception:  # noqa: BLE001 - the error body is only a hint
        return ""
    return f": {text[:300]}" if text else ""


class TransformersBackend:
    """A local ``transformers`` causal LM, greedy decoding (deterministic). Uses the tokenizer's chat template when
    it has one, else a plain ``System: ... / User: ... / Assistant:`` transcript."""

    def __init__(self, model_name_or_path: str, max_new_tokens: int = 256, device: str = "cpu"):
        if not model_name_or_path:
            raise PlannerError(
                "a transformers model name or folder is required (e.g. --llm-model Qwen/Qwen2.5-0.5B-Instruct)"
            )
        self.model_name_or_path = str(model_name_or_path)
        self.max_new_tokens, self.device = max_new_tokens, device
        self.model_id = f"transformers:{self.model_name_or_path}"
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            try:
                tokenizer = AutoTokenizer.from_pretrained(self.model_name_or_path)
                model = AutoModelForCausalLM.from_pretrained(self.model_name_or_path).to(self.device).eval()
            except (OSError, ValueError) as e:
                raise PlannerError(f"cannot load transformers model {self.model_name_or_path!r}: {e}") from None
            self._loaded = (tokenizer, model)
        return self._loaded

    def render(self, messages: list[dict[str, str]]) -> tuple[str, bool]:
        """The model input text, and whether it came from the chat template (which adds its own special tokens)."""
        tokenizer, _ = self._load()
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), True
        turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n\n".join(turns) + "\n\nAssistant:", False

    def chat(self, messages: list[dict[str, str]]) -> str:
        import torch

        tokenizer, model = self._load()
        text, templated = self.render(messages)
        enc = tokenizer(text, return_tensors="pt", add_special_tokens=not templated)
        n_in = enc["input_ids"].shape[1]
        limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        if limit and n_in + self.max_new_tokens > limit:
            raise PlannerError(
                f"the prompt is {n_in} tokens and max_new_tokens {self.max_new_tokens}, more than the model's context of "
                f"{limit}; use fewer in-context examples (--examples)"
            )
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        with torch.no_grad():
            out = model.generate(
                **{k: v.to(self.device) for k, v in enc.items()},
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        return tokenizer.decode(out[0, n_in:], skip_special_tokens=True)


# ============================================================================================ LLM planner
TEMPLATE_VERSION = 1


def default_cache_dir() -> Path:
    """``$LAYOUTGUIDE_PLAN_CACHE``, else ``$XDG_CACHE_HOME/layoutguide/plans``, else ``~/.cache/layoutguide/plans``."""
    if os.environ.get("LAYOUTGUIDE_PLAN_CACHE"):
        return Path(os.environ["LAYOUTGUIDE_PLAN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "layoutguide" / "plans"


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

    def cache_path(self, prompt: str) -> Path:
        key = json.dumps([self.backend.model_id, prompt, self.template_hash])
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def plan(self, prompt: str) -> PlanResult:
        if not isinstance(prompt, str) or not prompt.strip():
            raise PlannerError("the prompt is empty; give a text prompt such as 'a cat to the left of a dog'")
        path = self.cache_path(prompt)
        notes: list[str] = []
        if self.cache and path.exists():
            try:
                data = json.loads(path.read_text())
                if data.get("prompt") != prompt or data.get("model") != self.backend.model_id:
                    raise ValueError("key mismatch")
                return PlanResult(
                    Layout.from_dict(data["layout"]), list(data.get("notes", [])) + [f"from cache {path}"], False
                )
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                notes.append(f"ignored unreadable cache file {path} ({e})")
        messages = build_messages(prompt, self.examples, self.system)
        reply = self.backend.chat(messages)
        try:
            layout, parse_notes = _parse_reply(reply, prompt)
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
                layout, parse_notes = _parse_reply(second, prompt)
            except LayoutError as e:
                raise PlannerError(
                    f"{self.backend.model_id} gave no usable layout for {prompt!r} after one re-ask: {e}\n"
                    f"raw reply:\n{second[:4000]}\nfirst reply:\n{reply[:2000]}"
                ) from None
            reply = second
        notes.extend(parse_notes)
        missing = phrases_missing(layout)
        if missing:
            notes.append(
                f"phrase(s) {missing} do not occur in the prompt; edit them or generate with --append-missing"
            )
        if self.cache:
            record = {
                "version": 1,
                "model": self.backend.model_id,
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
        return PlanResult(layout, notes, False)


# ============================================================================================ factory
PLANNERS = ("rule", "openai", "transformers")


def get_planner(
    name: str = "rule",
    *,
    base_url: str | None = None,
    llm_model: str | None = None,
    api_key: str | None = None,
    examples_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    timeout: float = 60,
    max_retries: int = 3,
    backoff: float = 1.0,
    max_new_tokens: int = 256,
    device: str = "cpu",
) -> Planner:
    """A planner by name: ``rule`` (offline), ``openai`` (OpenAI-compatible server: ``base_url`` defaults to
    ``$OPENAI_BASE_URL`` or https://api.openai.com/v1) or ``transformers`` (local model ``llm_model``)."""
    if name == "rule":
        options = {"base_url": base_url, "llm_model": llm_model, "examples_path": examples_path, "api_key": api_key}
        given = [name for name, value in options.items() if value is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise PlannerError(f"{', '.join(given)} only {verb} to the openai and transformers planners, not 'rule'")
        return RuleBasedPlanner()
    if name == "openai":
        url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        backend: ChatBackend = OpenAIChatBackend(
            url, llm_model or "", api_key=api_key, timeout=timeout, max_retries=max_retries, backoff=backoff
        )
    elif name == "transformers":
        backend = TransformersBackend(llm_model or "", max_new_tokens=max_new_tokens, device=device)
    else:
        raise PlannerError(f"unknown planner {name!r}; choose one of {', '.join(PLANNERS)}")
    return LLMPlanner(backend, examples_path=examples_path, cache_dir=cache_dir, cache=cache)
