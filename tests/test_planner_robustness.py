"""Hostile input to the planners: fuzzed LLM replies (deep nesting, huge inputs, NaN/inf, random JSON) must give a
valid layout or a clear error, in linear time; the rule planner says when it misreads (issue #17, defects 5, 16)."""

from __future__ import annotations

import json
import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layoutguide.errors import LayoutguideError
from layoutguide.layout import Layout, LayoutError
from layoutguide.planner import MAX_NESTING, MAX_REPLY_CHARS, LLMPlanner, PlannerError, get_planner, parse_llm_reply

PROMPT = "a cat to the left of a dog"


class Scripted:
    """A chat backend that replies from a list (no network)."""

    model_id = "scripted"

    def __init__(self, *replies: str):
        self.replies = list(replies)

    def chat(self, messages):
        return self.replies.pop(0) if self.replies else "no boxes"


def assert_valid(layout: Layout) -> None:
    assert layout.regions and layout.prompt == PROMPT
    for x0, y0, x1, y1 in layout.boxes:
        assert all(math.isfinite(v) for v in (x0, y0, x1, y1))
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def parse_or_clear_error(reply: str) -> None:
    """parse_llm_reply's contract: a valid Layout or a LayoutError (one line, no traceback), nothing else; and the
    LLM planner around it: a PlanResult or a PlannerError."""
    try:
        layout = parse_llm_reply(reply, PROMPT)
    except LayoutError as e:
        assert str(e).strip()
    else:
        assert_valid(layout)
    planner = LLMPlanner(Scripted(reply, reply), cache=False)
    try:
        result = planner.plan(PROMPT)
    except PlannerError:
        return
    assert_valid(result.layout)


NUMBER = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999", "0x10", "1_000", ""]),
)
NAME = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


def number_text(v) -> str:
    return v if isinstance(v, str) else repr(v)


AR_REPLY = st.lists(st.tuples(NAME, st.lists(NUMBER, min_size=0, max_size=6)), max_size=6).map(
    lambda items: "\n".join(f"{n}: ({', '.join(number_text(v) for v in nums)})" for n, nums in items)
)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "box",
                    "bbox",
                    "objects",
                    "regions",
                    "x",
                    "y",
                    "w",
                    "h",
                    "width",
                    "height",
                    "phrase",
                    "label",
                ]
            )
            | st.text(max_size=5),
            inner,
            max_size=5,
        )
    ),  # noqa: E501
    max_leaves=30,
)
JSON_REPLY = JSON_VALUE.map(lambda v: json.dumps(v))  # NaN/Infinity written as JSON's non-standard literals
LAYOUT_JSON = st.lists(
    st.fixed_dictionaries({"name": NAME, "box": st.lists(NUMBER, min_size=4, max_size=4).map(lambda v: v)}), max_size=5
).map(lambda objects: json.dumps({"objects": objects}, default=str))
DEEP = st.tuples(st.sampled_from(["[", "{", "(", '{"a":', "[('", "[["]), st.integers(1, 100_000)).map(
    lambda t: t[0] * t[1]
)
HUGE = st.tuples(st.text(max_size=30), st.integers(1, 200_000 // 30 + 1)).map(lambda t: t[0] * t[1])


REPLIES = st.one_of(AR_REPLY, JSON_REPLY, LAYOUT_JSON, DEEP, HUGE, st.text(max_size=300))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REPLIES)
def test_fuzzed_replies_give_a_valid_layout_or_a_clear_error(reply):
    parse_or_clear_error(reply)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REPLIES)
def test_fuzzed_replies_give_a_valid_layout_or_a_clear_error_many(reply):
    parse_or_clear_error(reply)


@pytest.mark.parametrize(
    "reply",
    [
        "cat: (nan, 0, 100, 100)\ndog: (0, 0, 100, 100)",
        "cat: (inf, 0, 100, 100)",
        '{"objects": [{"name": "cat", "box": [NaN, 0, 1, 1]}, {"name": "dog", "box": [Infinity, 0, 1, 1]}]}',
        '{"objects": [{"name": "cat", "box": [1e999, 0, 100, 100]}]}',
        "[('cat', [nan, 0, 10, 10])]",
    ],
)
def test_non_finite_numbers_never_make_a_box(reply):
    with pytest.raises(LayoutError):
        parse_llm_reply(reply, PROMPT)


def test_deep_nesting_is_a_clear_error_not_a_recursion_error():
    for opener in ("[", "{", '{"a":', "[('"):
        with pytest.raises(LayoutError, match=f"more than the {MAX_NESTING} a layout needs"):
            parse_llm_reply(opener * (MAX_REPLY_CHARS // len(opener)), PROMPT)  # at the size cap, far over nesting
    with pytest.raises(LayoutError, match="more than the 65536 a layout needs"):
        parse_llm_reply("[" * 100_000, PROMPT)  # the 100k-deep reply: over the size cap


def test_size_cap_is_a_clear_error():
    reply = "cat: (20, 100, 220, 400)\n" + "x" * MAX_REPLY_CHARS
    with pytest.raises(LayoutError, match=f"more than the {MAX_REPLY_CHARS} a layout needs"):
        parse_llm_reply(reply, PROMPT)
    with pytest.raises(PlannerError, match="after one re-ask"):
        LLMPlanner(Scripted(reply, reply), cache=False).plan(PROMPT)


@pytest.mark.parametrize("unit", ["[('", "a.", "x: (", "[('a')] [('", '{"a": 1, '])
def test_parsing_garbage_at_the_size_cap_is_fast(unit):
    """Before: a 24 KB garbage reply took 23 s, x4 per doubling. Now a reply at the cap (64 K) takes well under a
    second of parsing, for the patterns that were quadratic (LMD brackets, AR names) and others."""
    reply = unit * (MAX_REPLY_CHARS // len(unit))
    start = time.perf_counter()
    with pytest.raises(LayoutguideError):
        parse_llm_reply(reply, PROMPT)
    assert time.perf_counter() - start < 1.5


def test_good_replies_still_parse_among_garbage():
    reply = "Sure! (" * 20 + "\ncat: (20, 100, 220, 400)\ndog: (280, 100, 480, 400)\n" + "a." * 5000
    layout = parse_llm_reply(reply, PROMPT)
    assert layout.phrases == ["cat", "dog"]


# ============================================================================================ rule planner (#17.16)
RULE = get_planner("rule")


@pytest.mark.parametrize(
    "prompt",
    [
        "un cercle rouge à gauche d'un carré bleu",
        "deux chats et un chien",
        "un gato rojo y un perro",
        "eine rote Katze neben einem Hund",
    ],
)
def test_a_non_english_prompt_falls_back_and_says_so(prompt):
    result = RULE.plan(prompt)
    assert result.fallback and any("does not look like English" in n for n in result.notes)
    assert len(result.layout.regions) == 1


def test_english_with_a_foreign_name_is_still_read():
    result = RULE.plan("a red circle to the left of a blue square and a café table")
    assert not result.fallback and result.layout.phrases == ["red circle", "blue square", "café table"]


@pytest.mark.parametrize(
    "prompt, message",
    [
        ("-1 red circles", "'-1 red circles': a count cannot be negative"),
        ("a cat and -2 dogs", "'-2 dogs': a count cannot be negative"),
        ("2.5 circles", "not a whole count"),
        ("twenty thirty circles", "two counts in a row in 'twenty thirty circles'"),
        ("two 3 dogs", "two counts in a row"),
    ],
)
def test_misread_counts_are_clear_errors(prompt, message):
    with pytest.raises(PlannerError, match=message):
        RULE.plan(prompt)


@pytest.mark.parametrize(
    "prompt, count, phrase",
    [("twenty three circles", 23, "circles"), ("twenty-three circles", 23, "circles"), ("two dozen eggs", 24, "eggs")],
)
def test_compound_counts_are_read(prompt, count, phrase):
    assert RULE.plan(prompt).layout.phrases == [phrase] * count


# ============================================================================================ cache
GOOD = "cat: (20, 100, 220, 400)\ndog: (280, 100, 480, 400)"


@pytest.mark.parametrize("content", [b"{not json", b"[" * 50_000, b'{"prompt": 1}', b" " * (1024 * 1024 + 1)])
def test_a_damaged_or_oversized_cache_file_is_ignored_with_a_note_and_replaced(tmp_path, content):
    planner = LLMPlanner(Scripted(GOOD), cache_dir=tmp_path)
    path = planner.cache_path(PROMPT)
    path.write_bytes(content)
    result = planner.plan(PROMPT)
    assert result.layout.phrases == ["cat", "dog"] and any("ignored unreadable cache file" in n for n in result.notes)
    again = LLMPlanner(Scripted(), cache_dir=tmp_path).plan(PROMPT)  # no replies left: must come from the cache
    assert again.layout == result.layout and any("from cache" in n for n in again.notes)
