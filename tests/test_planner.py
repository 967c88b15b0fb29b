"""Tests for ``layoutguide.planner``: the rule-based planner, the LLM reply parser, the OpenAI-protocol client
against a real local HTTP server, the transformers backend on a tiny random causal LM, the cache and the CLI.

No network beyond 127.0.0.1 and no downloads (HF_HUB_OFFLINE=1 from conftest).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from layoutguide.cli import app
from layoutguide.layout import MAX_REGIONS, Layout, LayoutError
from layoutguide.planner import (
    DEFAULT_EXAMPLES,
    USER_PREFIX,
    LLMPlanner,
    OpenAIChatBackend,
    PlannerError,
    PlanResult,
    RuleBasedPlanner,
    TransformersBackend,
    build_messages,
    get_planner,
    load_examples,
    parse_llm_reply,
)
from layoutguide.shapes.world import PLURALS, make_scene, relation_holds

PLANNER = RuleBasedPlanner()


# ============================================================================================ helpers
def centre(box):
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def boxes_of(layout: Layout, phrase: str):
    boxes = [r.box for r in layout.regions if r.phrase == phrase]
    assert boxes, f"no region {phrase!r} in {layout.phrases}"
    return boxes


def holds(layout: Layout, a: str, relation: str, b: str) -> bool:
    """Every instance of ``a`` is ``relation`` every instance of ``b``."""
    pairs = [(p, q) for p in boxes_of(layout, a) for q in boxes_of(layout, b)]
    if relation in ("left of", "right of", "above", "below"):
        return all(relation_holds(centre(p), relation, centre(q)) for p, q in pairs)
    if relation == "next to":
        return all(
            abs(centre(p)[0] - centre(q)[0]) >= abs(centre(p)[1] - centre(q)[1]) and _overlap(p, q) == 0
            for p, q in pairs
        )
    if relation == "on top of":  # stacked, touching, overlapping horizontally
        return all(abs(p[3] - q[1]) < 1e-6 and min(p[2], q[2]) > max(p[0], q[0]) for p, q in pairs)
    raise AssertionError(relation)


def _overlap(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def assert_clean(result: PlanResult):
    """Boxes inside the canvas, no two overlapping (touching is fine), every phrase written in the prompt."""
    boxes = result.layout.boxes
    assert all(0 <= v <= 1 for b in boxes for v in b)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert _overlap(boxes[i], boxes[j]) < 1e-9, (result.layout.phrases[i], result.layout.phrases[j])
    for phrase in result.layout.phrases:
        assert phrase in result.layout.prompt
    assert not any("could not satisfy" in n for n in result.notes), result.notes


# ============================================================================================ rule-based planner
CASES = [
    # prompt, {phrase: count}, [(subject, relation, object)]
    (
        "a red circle to the left of a blue square",
        {"red circle": 1, "blue square": 1},
        [("red circle", "left of", "blue square")],
    ),
    (
        "a red circle left of a blue square",
        {"red circle": 1, "blue square": 1},
        [("red circle", "left of", "blue square")],
    ),
    (
        "a red circle on the left side of a blue square",
        {"red circle": 1, "blue square": 1},
        [("red circle", "left of", "blue square")],
    ),
    (
        "the red circle is to the right of the blue square",
        {"red circle": 1, "blue square": 1},
        [("red circle", "right of", "blue square")],
    ),
    (
        "A yellow triangle right of a green circle.",
        {"yellow triangle": 1, "green circle": 1},
        [("yellow triangle", "right of", "green circle")],
    ),
    (
        "three green triangles above a yellow circle",
        {"green triangles": 3, "yellow circle": 1},
        [("green triangles", "above", "yellow circle")],
    ),
    (
        "3 green triangles over a yellow circle",
        {"green triangles": 3, "yellow circle": 1},
        [("green triangles", "above", "yellow circle")],
    ),
    ("a bird below a cloud", {"bird": 1, "cloud": 1}, [("bird", "below", "cloud")]),
    ("two cats under a table", {"cats": 2, "table": 1}, [("cats", "below", "table")]),
    ("a cat beneath a chair", {"cat": 1, "chair": 1}, [("cat", "below", "chair")]),
    ("a mouse is underneath the desk", {"mouse": 1, "desk": 1}, [("mouse", "below", "desk")]),
    ("a cat on top of a table", {"cat": 1, "table": 1}, [("cat", "on top of", "table")]),
    ("a cup on a table", {"cup": 1, "table": 1}, [("cup", "on top of", "table")]),
    ("the cat is sleeping on a mat", {"cat": 1, "mat": 1}, [("cat", "on top of", "mat")]),
    ("three apples on a table", {"apples": 3, "table": 1}, [("apples", "on top of", "table")]),
    (
        "a cat on top of a box on top of a table",
        {"cat": 1, "box": 1, "table": 1},
        [("cat", "on top of", "box"), ("box", "on top of", "table")],
    ),
    ("a table with a cat on top of it", {"table": 1, "cat": 1}, [("cat", "on top of", "table")]),
    ("a lamp next to a sofa", {"lamp": 1, "sofa": 1}, [("lamp", "next to", "sofa")]),
    ("a man standing beside a car", {"man": 1, "car": 1}, [("man", "next to", "car")]),
    ("a cat and a dog next to each other", {"cat": 1, "dog": 1}, [("cat", "next to", "dog")]),
    ("an apple and an orange side by side", {"apple": 1, "orange": 1}, [("apple", "next to", "orange")]),
    (
        "a dog between a car and a chair",
        {"dog": 1, "car": 1, "chair": 1},
        [("car", "left of", "dog"), ("dog", "left of", "chair")],
    ),
    (
        "a cat in the middle of a car and a chair",
        {"cat": 1, "car": 1, "chair": 1},
        [("car", "left of", "cat"), ("cat", "left of", "chair")],
    ),
    ("two dogs and a cat", {"dogs": 2, "cat": 1}, []),
    ("a cat, a dog and five birds", {"cat": 1, "dog": 1, "birds": 5}, []),
    ("a red circle with two blue squares", {"red circle": 1, "blue squares": 2}, []),
    ("four cats above two dogs", {"cats": 4, "dogs": 2}, [("cats", "above", "dogs")]),
    (
        "two red circles to the left of three blue squares",
        {"red circles": 2, "blue squares": 3},
        [("red circles", "left of", "blue squares")],
    ),
    ("five apples to the left of a bowl", {"apples": 5, "bowl": 1}, [("apples", "left of", "bowl")]),
    (
        "one yellow square below two green circles",
        {"yellow square": 1, "green circles": 2},
        [("yellow square", "below", "green circles")],
    ),
    (
        "a red circle and two blue squares, the red circle is left of the blue square",
        {"red circle": 1, "blue squares": 2},
        [("red circle", "left of", "blue squares")],
    ),
    (
        "a red circle and a blue square; the circle is above the square",
        {"red circle": 1, "blue square": 1},
        [("red circle", "above", "blue square")],
    ),
    (
        "a clock above a desk, a chair to the left of the desk",
        {"clock": 1, "desk": 1, "chair": 1},
        [("clock", "above", "desk"), ("chair", "left of", "desk")],
    ),
    (
        "a cat to the left of a dog to the left of a bird",
        {"cat": 1, "dog": 1, "bird": 1},
        [("cat", "left of", "dog"), ("dog", "left of", "bird")],
    ),
    (
        "a cat is above a dog and to the left of a bird",
        {"cat": 1, "dog": 1, "bird": 1},
        [("cat", "above", "dog"), ("cat", "left of", "bird")],
    ),
    (
        "a red circle to the left of a blue square and a green triangle above the blue square",
        {"red circle": 1, "blue square": 1, "green triangle": 1},
        [("red circle", "left of", "blue square"), ("green triangle", "above", "blue square")],
    ),
    (
        "A realistic photo of a scene with a dog on the left and a cat on the right",
        {"dog": 1, "cat": 1},
        [("dog", "left of", "cat")],
    ),
    ("a cat at the top and a dog at the bottom", {"cat": 1, "dog": 1}, [("cat", "above", "dog")]),
    (
        "a cat in the top left corner and a dog in the bottom right corner",
        {"cat": 1, "dog": 1},
        [("cat", "left of", "dog")],
    ),
    # coordinated subjects share the relation; independent relations get blocks of their own
    (
        "two cups and a plate on a table",
        {"cups": 2, "plate": 1, "table": 1},
        [("cups", "on top of", "table"), ("plate", "on top of", "table")],
    ),
    (
        "a cat and a dog to the left of a bird",
        {"cat": 1, "dog": 1, "bird": 1},
        [("cat", "left of", "bird"), ("dog", "left of", "bird")],
    ),
    (
        "a red circle to the left of a blue square and a green triangle above a yellow circle",
        {"red circle": 1, "blue square": 1, "green triangle": 1, "yellow circle": 1},
        [
            ("red circle", "left of", "blue square"),
            ("green triangle", "above", "yellow circle"),
            ("blue square", "left of", "green triangle"),
        ],
    ),
    (
        "a red and blue ball next to a box",
        {"red and blue ball": 1, "box": 1},
        [("red and blue ball", "next to", "box")],
    ),
    (
        "a red car parked to the right of a blue bus",
        {"red car": 1, "blue bus": 1},
        [("red car", "right of", "blue bus")],
    ),
    (
        "a cat left of a dog, which is above a bird",
        {"cat": 1, "dog": 1, "bird": 1},
        [("cat", "left of", "dog"), ("dog", "above", "bird")],
    ),
    (
        "a left shoe right next to a right shoe",
        {"left shoe": 1, "right shoe": 1},
        [("left shoe", "next to", "right shoe")],
    ),
]


@pytest.mark.parametrize("prompt, counts, relations", CASES, ids=[c[0] for c in CASES])
def test_rule_planner_phrasings(prompt, counts, relations):
    result = PLANNER.plan(prompt)
    assert result.layout.prompt == prompt
    assert Counter(result.layout.phrases) == Counter(counts)
    assert not result.fallback, result.notes
    for a, relation, b in relations:
        assert holds(result.layout, a, relation, b), (a, relation, b, result.layout.boxes)
    assert_clean(result)


def test_rule_planner_sizes_shrink_with_counts_and_groups_keep_to_their_area():
    def mean_side(prompt, phrase):
        boxes = boxes_of(PLANNER.plan(prompt).layout, phrase)
        return sum(min(b[2] - b[0], b[3] - b[1]) for b in boxes) / len(boxes)

    assert mean_side("a cat", "cat") > mean_side("two cats", "cats") > mean_side("seven cats", "cats")
    lay = PLANNER.plan("a cat").layout
    (box,) = lay.boxes
    assert 0.3 < box[2] - box[0] <= 0.7 and centre(box) == pytest.approx((0.5, 0.5))
    # counted objects in a row inside their group's area (the upper half here)
    tri = boxes_of(PLANNER.plan("three green triangles above a yellow circle").layout, "green triangles")
    assert len({round(centre(b)[1], 6) for b in tri}) == 1 and all(b[3] <= 0.5 for b in tri)


def test_rule_planner_boxes_keep_their_objects_proportions():
    def aspect(b):
        return (b[2] - b[0]) / (b[3] - b[1])

    # the shapes world only draws square boxes: a lone object beside a pair gets a square box, not its tall cell
    lay = PLANNER.plan("a red circle to the right of two green squares").layout
    assert all(aspect(b) == pytest.approx(1.0, rel=1e-3) for b in lay.boxes), lay.boxes
    # known nouns take their usual proportions, unknown ones are square
    lay = PLANNER.plan("a person next to a car and a blorp").layout
    (person,), (car,), (blorp,) = (boxes_of(lay, p) for p in ("person", "car", "blorp"))
    assert aspect(person) < 0.6 and aspect(car) > 1.4 and aspect(blorp) == pytest.approx(1.0, rel=1e-3)
    # a support stays wide enough to stand on
    (table,) = boxes_of(PLANNER.plan("a cat on top of a table").layout, "table")
    assert aspect(table) >= 1.6


def test_rule_planner_relations_hold_with_a_margin():
    # two above two: a 2x2 grid puts the diagonal pairs at 45 degrees, where a drift of a pixel breaks "above"
    lay = PLANNER.plan("two red triangles above two blue circles").layout
    for a in boxes_of(lay, "red triangles"):
        for b in boxes_of(lay, "blue circles"):
            (ax, ay), (bx, by) = centre(a), centre(b)
            assert by - ay >= abs(bx - ax) + 0.05 - 1e-6
    assert min(b[2] - b[0] for b in lay.boxes) > 0.25  # by moving the columns closer, not by shrinking the boxes


def test_rule_planner_counts_and_region_cap():
    assert len(PLANNER.plan("seven stars").layout.regions) == 7
    assert len(PLANNER.plan("a dozen eggs").layout.regions) == 12
    assert len(PLANNER.plan("12 eggs and 3 cups").layout.regions) == 15
    assert len(PLANNER.plan("thirty cats").layout.regions) == MAX_REGIONS
    lay = PLANNER.plan("a pair of shoes").layout
    assert lay.phrases == ["shoes", "shoes"]
    with pytest.raises(PlannerError, match=r"31 objects .*at most 30 regions"):
        PLANNER.plan("twenty cats and eleven dogs")
    with pytest.raises(PlannerError, match="at most 30"):
        PLANNER.plan("40 cats")
    with pytest.raises(PlannerError, match="empty"):
        PLANNER.plan("   ")


def test_rule_planner_is_deterministic():
    prompts = [c[0] for c in CASES] + ["a dog chasing a cat", "seven stars"]
    first = [PLANNER.plan(p) for p in prompts]
    second = [RuleBasedPlanner().plan(p) for p in prompts]
    for a, b in zip(first, second):
        assert a.layout == b.layout and a.notes == b.notes and a.fallback == b.fallback
        assert a.layout.to_json() == b.layout.to_json()


@pytest.mark.parametrize(
    "prompt, phrases, note",
    [
        ("a dog chasing a cat", ["dog", "cat"], "'chasing' is not a spatial relation"),
        ("a man holding an umbrella", ["man", "umbrella"], "'holding' is not a spatial relation"),
        ("a dog is chasing a cat", ["dog", "cat"], "'chasing' is not a spatial relation"),
        ("a cat in a box", ["cat", "box"], "'in' is not a spatial relation"),
        ("a horse behind a fence", ["horse", "fence"], "'behind' is not a spatial relation"),
        ("a car in front of a house", ["car", "house"], "'in front of' is not a spatial relation"),
        ("on the left is a cat", ["cat"], "no object before it"),
        ("a bird above", ["bird"], "has no object after it"),
        ("4k, trending on artstation", ["4k, trending on artstation"], "no objects found"),
    ],
)
def test_rule_planner_falls_back_and_says_so(prompt, phrases, note):
    result = PLANNER.plan(prompt)
    assert result.fallback
    assert result.layout.phrases == phrases
    assert any(n.startswith("unknown phrasing") and note in n for n in result.notes), result.notes
    assert_clean(result)


@pytest.mark.parametrize(
    "prompt, phrases, fallback",
    [
        ("to the left of the dog is a cat", ["dog", "cat"], True),
        ("a blue square to the left of and above a red circle", ["blue square", "red circle"], True),
        ("a dog between two trees", ["dog", "trees", "trees"], True),
        ("a cup, in the style of van gogh", ["cup", "style of van gogh"], True),
        ("the cat on the left is black", ["cat", "black"], False),
        ("a cat sleeping", ["cat sleeping"], False),
        ("a cat bigger than a dog", ["cat bigger than", "dog"], False),
        ("cat dog bird", ["cat dog bird"], False),
    ],
)
def test_rule_planner_documented_limitations(prompt, phrases, fallback):
    """The table "Phrasings the rule-based planner does not handle" in docs/planner.md; update both together."""
    result = PLANNER.plan(prompt)
    assert result.layout.phrases == phrases and result.fallback == fallback


def test_rule_planner_negation_gives_no_region():
    result = PLANNER.plan("A realistic photo of a scene without birds")
    assert result.layout.regions == () and not result.fallback
    assert any("negated" in n and "'birds'" in n for n in result.notes)
    result = PLANNER.plan("three apples and no pears")
    assert result.layout.phrases == ["apples"] * 3 and any("'pears'" in n for n in result.notes)


def test_rule_planner_notes_without_fallback():
    result = PLANNER.plan("a cat left of a dog. the dog is left of the cat")
    assert any("contradictory relations: ignored 'dog' left of 'cat'" in n for n in result.notes)
    assert holds(result.layout, "cat", "left of", "dog")
    result = PLANNER.plan("a cat, digital art, 4k")
    assert result.layout.phrases == ["cat"] and not result.fallback
    assert any("style words ignored" in n and "'4k'" in n for n in result.notes)
    result = PLANNER.plan("several apples and some pears")
    assert Counter(result.layout.phrases) == {"apples": 3, "pears": 3}
    assert any("vague count" in n for n in result.notes)
    result = PLANNER.plan("apples next to a bowl")
    assert result.layout.phrases == ["apples", "bowl"]
    assert any("no count given for 'apples'" in n for n in result.notes)


FUZZ_WORDS = (
    "a an the one two three 3 7 twenty several a pair of red blue big cat cats dog table it them each other side by "
    "left right of to on top above over below under beneath next beside near between and , . ; with in middle at "
    "bottom is sitting chasing holding behind front 4k art photo image showing there corner upper far left-hand "
    "top-left"
).split()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FUZZ_WORDS), min_size=1, max_size=14))
@example(
    words="twenty a below several a on it".split()
)  # a stack taller than the canvas: its top box was clipped to nothing
def test_rule_planner_never_crashes(words):
    prompt = " ".join(words)
    try:
        result = PLANNER.plan(prompt)
    except PlannerError as e:  # clear errors: too many objects, or two counts in a row ("twenty three 3 cats")
        assert "at most 30 regions" in str(e) or "two counts in a row" in str(e)
        return
    assert result.layout.prompt == prompt and 1 <= len(result.layout.regions) <= MAX_REGIONS
    assert all(phrase in prompt for phrase in result.layout.phrases)
    assert result.fallback == any(n.startswith("unknown phrasing") for n in result.notes)


def test_rule_planner_phrases_map_to_tokens():
    from layoutguide.shapes.model import build_tokenizer
    from layoutguide.tokens import map_phrases

    tokenizer = build_tokenizer()
    for prompt in (
        "three green triangles above a yellow circle",
        "a Red Circle left of a blue square",
        "a cat on top of a table",
    ):
        lay = PLANNER.plan(prompt).layout
        token_map = map_phrases(tokenizer, lay.prompt, lay.phrases)
        assert len(token_map.indices) == len(lay.regions) and all(token_map.indices)


FORMS = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right side of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}


def _plural_phrase(scene, obj) -> str:
    n = sum(o.phrase == obj.phrase for o in scene.objects)
    return f"{obj.colour} {PLURALS[obj.shape]}" if n > 1 else obj.phrase


def test_rule_planner_on_shapes_world_relation_prompts():
    natural = captioned = 0
    for k in range(100):
        scene = make_scene(10_000_000 + k, with_relation=True)
        rel = scene.relation
        s, o = scene.objects[rel.subject], scene.objects[rel.object]
        forms = FORMS[rel.relation]
        if k % 4 == 3:
            prompt = f"the {s.phrase} is {forms[0]} the {o.phrase}"
        else:
            prompt = f"a {s.phrase} {forms[k % len(forms)]} a {o.phrase}"
        lay = PLANNER.plan(prompt).layout
        natural += holds(lay, s.phrase, rel.relation, o.phrase)
        # the whole caption plus the relation sentence: "a red circle and two blue squares, the red circle is ..."
        result = PLANNER.plan(f"{scene.caption}, {scene.relation_sentence}")
        assert len(result.layout.regions) == len(scene.objects)
        captioned += holds(result.layout, _plural_phrase(scene, s), rel.relation, _plural_phrase(scene, o))
    assert natural >= 95 and captioned >= 95, (natural, captioned)


# ============================================================================================ reply parser
PROMPT = "a cat to the left of a dog"
CAT, DOG = (20 / 512, 100 / 512, 220 / 512, 400 / 512), (280 / 512, 100 / 512, 480 / 512, 400 / 512)


@pytest.mark.parametrize(
    "reply",
    [
        "cat: (20, 100, 220, 400)\ndog: (280, 100, 480, 400)\nBackground prompt: a park\nNegative prompt: blurry",
        (
            "Sure! Here are the boxes:\n\n- **cat**: [20, 100, 220, 400]\n- **dog**: [280, 100, 480, "
            "400]\n\nHope this helps."
        ),
        "1. cat: (20, 100, 220, 400)\n2. dog: (280, 100, 480, 400)",
        "The boxes: cat: (20, 100, 220, 400), dog: (280, 100, 480, 400).",
        "```\ncat: (20, 100, 220, 400)\ndog: (280, 100, 480, 400)\n```",
        (
            "[('cat', [20, 100, 200, 300]), ('dog', [280, 100, 200, "
            "300])]\nBackground prompt: a park\nNegative prompt: blurry"
        ),
        (
            'Here is the layout:\n```json\n{"regions": [{"phrase": "cat", "box": [20, 100, 220, 400]}, '
            '{"phrase": "dog", "box": [280, 100, 480, 400]}], "background": "a park", '
            '"negative_prompt": "blurry"}\n```\nLet me know!'
        ),
        '[{"name": "cat", "bbox": [20, 100, 220, 400]}, {"name": "dog", "bbox": [280, 100, 480, 400]}]',
        (
            '{"objects": [{"label": "cat", "box": {"xmin": 20, "ymin": 100, "xmax": 220, "ymax": 400}}, '
            '{"label": "dog", "box": {"xmin": 280, "ymin": 100, "xmax": 480, "ymax": 400}}]}'
        ),
        '{"cat": [20, 100, 220, 400], "dog": [280, 100, 480, 400]}',
        (
            '{"width": 1024, "height": 1024, "regions": [{"phrase": "cat", "box": [40, 200, 440, 800]}, '
            '{"phrase": "dog", "box": [560, 200, 960, 800]}]}'
        ),
        f'{{"regions": [{{"phrase": "cat", "box": {list(CAT)}}}, {{"phrase": "dog", "box": {list(DOG)}}}]}}',
    ],
    ids=[
        "ar",
        "ar-bullets-bold-brackets",
        "ar-numbered",
        "ar-one-line",
        "ar-fenced",
        "lmd",
        "json-fenced-prose",
        "json-list",
        "json-corner-dict",
        "json-name-map",
        "json-own-canvas",
        "json-normalised",
    ],
)
def test_parse_llm_reply_formats(reply):
    lay = parse_llm_reply(reply, PROMPT)
    assert lay.prompt == PROMPT and lay.phrases == ["cat", "dog"]
    for got, want in zip(lay.boxes, (CAT, DOG)):
        assert got == pytest.approx(want, abs=1e-9)
    if "park" in reply:
        assert lay.background == "a park" and lay.negative_prompt == "blurry"


def test_parse_llm_reply_clamps_and_rejects():
    lay = parse_llm_reply("cat: (-10, 100, 220, 900)\ndog: (280, 100, 600, 400)", PROMPT)
    assert lay.boxes[0] == pytest.approx((0.0, 100 / 512, 220 / 512, 1.0)) and lay.boxes[1][2] == 1.0
    lay = parse_llm_reply(
        '[{"phrase": "cat", "bbox": [20, 100, 200, 300]}, {"phrase": "dog", "bbox": [300, 100, 150, 300]}]', PROMPT
    )
    assert lay.boxes[1] == pytest.approx((300 / 512, 100 / 512, 450 / 512, 400 / 512))  # COCO-style x, y, w, h
    with pytest.raises(LayoutError, match="4 numbers, got 3"):
        parse_llm_reply("cat: (20, 100, 220)", PROMPT)
    with pytest.raises(LayoutError, match="no boxes found"):
        parse_llm_reply("I cannot help with that.", PROMPT)
    with pytest.raises(LayoutError, match="no boxes found"):
        parse_llm_reply('{"regions": [{"phrase": "cat", "box": [20, 100, 220, 400]}', PROMPT)  # truncated JSON
    with pytest.raises(LayoutError, match="inverted"):
        parse_llm_reply("cat: (300, 100, 200, 400)", PROMPT)
    with pytest.raises(LayoutError, match="inverted or has zero area"):
        parse_llm_reply("cat: (600, 100, 700, 400)", PROMPT)  # entirely off the canvas: degenerate after clamping
    with pytest.raises(LayoutError, match="empty"):
        parse_llm_reply("   ", PROMPT)


def test_template_follows_attention_refocusing(tmp_path):
    messages = build_messages(PROMPT)
    assert messages[0]["role"] == "system" and "512x512" in messages[0]["content"]
    assert "relative sizes, positions and counts" in messages[0]["content"]
    assert messages[-1] == {"role": "user", "content": USER_PREFIX + PROMPT}
    assert USER_PREFIX.endswith("with ")
    assert len(messages) == 2 + 2 * len(DEFAULT_EXAMPLES)
    assert messages[2]["content"].splitlines()[:3] == [
        "red circle: (48, 176, 208, 336)",
        "blue square: (304, 176, 464, 336)",
        "Background prompt: a plain white background",
    ]
    # each built-in example reply parses back to its own boxes
    for user, assistant in zip(messages[1:-1:2], messages[2:-1:2]):
        parse_llm_reply(assistant["content"], user["content"].removeprefix(USER_PREFIX))
    path = tmp_path / "examples.json"
    path.write_text(
        json.dumps(
            {
                "system": "Be brief.",
                "examples": [
                    {"prompt": "a fox", "objects": [["fox", [0, 0, 100, 100]]]},
                    {"prompt": "a hen", "reply": "hen: (1, 2, 3, 4)"},
                ],
            }
        )
    )
    examples, system = load_examples(path)
    assert system == "Be brief." and [m["content"] for m in build_messages("x", examples, system)][2:5] == [
        "fox: (0, 0, 100, 100)\nBackground prompt: \nNegative prompt: ",
        USER_PREFIX + "a hen",
        "hen: (1, 2, 3, 4)",
    ]
    path.write_text(json.dumps([{"prompt": "a fox", "objects": [["fox", [0, 0, 100]]]}]))
    with pytest.raises(PlannerError, match="example 0 needs 'objects'"):
        load_examples(path)
    with pytest.raises(PlannerError, match="does not exist"):
        load_examples(tmp_path / "missing.json")


# ============================================================================================ OpenAI protocol
GOOD = "cat: (20, 100, 220, 400)\ndog: (280, 100, 480, 400)\nBackground prompt: a park\nNegative prompt:"


class ChatServer:
    """A real HTTP server on 127.0.0.1 that speaks chat completions and plays a script of responses."""

    def __init__(self):
        self.script: list[dict] = []
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                step = server.script.pop(0) if server.script else {"status": 500, "body": "script exhausted"}
                time.sleep(step.get("delay", 0))
                status = step.get("status", 200)
                if status == 200:
                    payload = json.dumps(
                        {
                            "id": "x",
                            "object": "chat.completion",
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": step["reply"]},
                                    "finish_reason": "stop",
                                }
                            ],
                        }
                    )
                else:
                    payload = step.get("body", "")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload.encode())))
                    self.end_headers()
                    self.wfile.write(payload.encode())
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = ChatServer()
    yield s
    s.close()


def make_planner(server, tmp_path, **kw) -> LLMPlanner:
    backend_kw = dict(api_key="sk-test", timeout=5, max_retries=2, backoff=0.01)
    backend_kw.update({k: kw.pop(k) for k in list(kw) if k in ("timeout", "max_retries", "backoff", "api_key")})
    return LLMPlanner(OpenAIChatBackend(server.url, "test-model", **backend_kw), cache_dir=tmp_path / "cache", **kw)


def test_openai_good_reply(server, tmp_path):
    server.script = [{"reply": GOOD}]
    result = make_planner(server, tmp_path).plan(PROMPT)
    assert result.layout.phrases == ["cat", "dog"] and result.layout.background == "a park" and not result.fallback
    assert result.layout.negative_prompt is None
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    body = request["body"]
    assert body["model"] == "test-model" and body["temperature"] == 0.0
    assert body["messages"][0]["role"] == "system" and body["messages"][-1]["content"] == USER_PREFIX + PROMPT


def test_openai_json_in_code_fences_and_api_key_from_env(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    reply = (
        'Here you go:\n```json\n{"objects": [{"name": "cat", "box": [20, 100, 220, 400]}, {"name": "dog", '
        '"box": [280, 100, 480, 400]}]}\n```'
    )
    server.script = [{"reply": reply}]
    planner = LLMPlanner(OpenAIChatBackend(server.url, "test-model", backoff=0.01), cache_dir=tmp_path)
    assert planner.plan(PROMPT).layout.boxes[0] == pytest.approx(CAT)
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-env"


def test_openai_malformed_then_good_reasks_once_with_the_error(server, tmp_path):
    server.script = [{"reply": "cat: (20, 100, 220)"}, {"reply": GOOD}]
    result = make_planner(server, tmp_path).plan(PROMPT)
    assert result.layout.phrases == ["cat", "dog"]
    assert len(server.requests) == 2
    first, second = (r["body"]["messages"] for r in server.requests)
    assert second[: len(first)] == first
    assert second[-2] == {"role": "assistant", "content": "cat: (20, 100, 220)"}
    assert second[-1]["role"] == "user" and "4 numbers, got 3" in second[-1]["content"]
    assert any("re-asked once" in n for n in result.notes)


def test_openai_malformed_twice_raises_with_raw_reply(server, tmp_path):
    server.script = [{"reply": "I am not sure."}, {"reply": "Still no boxes, sorry! (raw-marker-42)"}]
    with pytest.raises(PlannerError) as info:
        make_planner(server, tmp_path).plan(PROMPT)
    message = str(info.value)
    assert "after one re-ask" in message and "no boxes found" in message
    assert "Still no boxes, sorry! (raw-marker-42)" in message and "I am not sure." in message
    assert len(server.requests) == 2
    assert not list(tmp_path.rglob("*.json"))  # failures are not cached


def test_openai_timeout_is_retried(server, tmp_path):
    server.script = [{"reply": GOOD, "delay": 1.5}, {"reply": GOOD}]
    start = time.monotonic()
    result = make_planner(server, tmp_path, timeout=0.5).plan(PROMPT)
    assert result.layout.phrases == ["cat", "dog"]
    assert len(server.requests) == 2 and time.monotonic() - start < 1.5  # did not wait for the slow reply


def test_openai_http_500_is_retried(server, tmp_path):
    server.script = [{"status": 500, "body": "overloaded"}, {"status": 503}, {"reply": GOOD}]
    assert make_planner(server, tmp_path).plan(PROMPT).layout.phrases == ["cat", "dog"]
    assert len(server.requests) == 3


def test_openai_http_401_is_not_retried(server, tmp_path):
    server.script = [{"status": 401, "body": '{"error": "invalid api key"}'}, {"reply": GOOD}]
    with pytest.raises(PlannerError) as info:
        make_planner(server, tmp_path).plan(PROMPT)
    message = str(info.value)
    assert f"{server.url}/chat/completions" in message and "HTTP 401" in message and "invalid api key" in message
    assert "not retried" in message and "sk-test" not in message
    assert len(server.requests) == 1


def test_openai_retries_run_out(server, tmp_path):
    server.script = [{"status": 429, "body": "slow down"}] * 3
    with pytest.raises(PlannerError, match=r"failed after 2 attempts; last error: HTTP 429"):
        make_planner(server, tmp_path, max_retries=1).plan(PROMPT)
    assert len(server.requests) == 2
    dead = ChatServer()
    url = dead.url
    dead.close()
    backend = OpenAIChatBackend(url, "m", max_retries=1, backoff=0.01, timeout=1)
    with pytest.raises(PlannerError, match=r"failed after 2 attempts; last error: cannot connect"):
        backend.chat([{"role": "user", "content": "hi"}])


def test_openai_response_content_and_bad_bodies(server):
    backend = OpenAIChatBackend(server.url, "m", max_retries=0)
    server.script = [{"reply": "x"}]
    assert backend.chat([{"role": "user", "content": "hi"}]) == "x"
    assert (
        backend._content(b'{"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"text": "b"}]}}]}')
        == "ab"
    )
    with pytest.raises(PlannerError, match="not a chat completion"):
        backend._content(b'{"error": "nope"}')
    with pytest.raises(PlannerError, match="base_url must be an http"):
        OpenAIChatBackend("localhost:8000", "m")


def test_cache_hit_makes_no_request(server, tmp_path):
    server.script = [{"reply": GOOD}]
    planner = make_planner(server, tmp_path)
    first = planner.plan(PROMPT)
    again = planner.plan(PROMPT)
    assert len(server.requests) == 1
    assert again.layout == first.layout and any(n.startswith("from cache") for n in again.notes)
    assert make_planner(server, tmp_path).plan(PROMPT).layout == first.layout  # a new planner, same cache folder
    assert len(server.requests) == 1
    (path,) = (tmp_path / "cache").glob("*.json")
    record = json.loads(path.read_text())  # JSON, not pickle
    assert (
        record["prompt"] == PROMPT and record["reply"] == GOOD and record["model"] == "openai:test-model@" + server.url
    )
    assert path == planner.cache_path(PROMPT) and len(path.stem) == 64
    # another prompt, another template (examples) or no cache: new requests
    server.script = [{"reply": GOOD}, {"reply": GOOD}, {"reply": GOOD}]
    make_planner(server, tmp_path).plan(PROMPT + " in a park")
    make_planner(server, tmp_path, examples=DEFAULT_EXAMPLES[:1]).plan(PROMPT)
    make_planner(server, tmp_path, cache=False).plan(PROMPT)
    assert len(server.requests) == 4
    # a corrupt cache file is ignored (and replaced)
    path.write_text("{not json")
    server.script = [{"reply": GOOD}]
    result = make_planner(server, tmp_path).plan(PROMPT)
    assert any("ignored unreadable cache file" in n for n in result.notes) and len(server.requests) == 5
    assert json.loads(path.read_text())["prompt"] == PROMPT


def test_llm_notes_phrases_missing_from_prompt(server, tmp_path):
    server.script = [{"reply": "kitten: (20, 100, 220, 400)\ndogs: (280, 100, 480, 400)"}]
    result = make_planner(server, tmp_path).plan(PROMPT)
    assert any("['kitten'] do not occur in the prompt" in n for n in result.notes), result.notes


def test_examples_path_reaches_the_server(server, tmp_path):
    path = tmp_path / "ex.json"
    path.write_text(
        json.dumps(
            [{"prompt": "a fox near a hen", "objects": [["fox", [0, 0, 100, 100]], ["hen", [200, 0, 300, 100]]]}]
        )
    )
    server.script = [{"reply": GOOD}]
    make_planner(server, tmp_path, examples_path=path).plan(PROMPT)
    messages = server.requests[0]["body"]["messages"]
    assert len(messages) == 4 and messages[1]["content"] == USER_PREFIX + "a fox near a hen"


# ============================================================================================ transformers
@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A 1-layer GPT-2 with a word-level tokenizer, built in code and saved to a folder (no downloads)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[EOS]", "cat", "dog", ":", "(", ")", ",", "Background", "prompt", "Negative"]
    words += [str(i) for i in range(0, 513, 4)]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=1,
        n_head=2,
        n_embd=16,
        vocab_size=len(words),
        n_positions=2048,
        bos_token_id=2,
        eos_token_id=2,
        pad_token_id=0,
    )
    path = tmp_path_factory.mktemp("tiny-lm")
    tokenizer.save_pretrained(path)
    GPT2LMHeadModel(config).save_pretrained(path)
    return str(path)


class Recording:
    """Wraps a backend and keeps every reply."""

    def __init__(self, backend):
        self.backend, self.model_id, self.replies = backend, backend.model_id, []

    def chat(self, messages):
        self.replies.append(self.backend.chat(messages))
        return self.replies[-1]


def test_transformers_backend_generates_deterministically(tiny_lm):
    backend = TransformersBackend(tiny_lm, max_new_tokens=6)
    messages = build_messages(PROMPT)
    text, templated = backend.render(messages)
    assert not templated and text.endswith(f"User: {USER_PREFIX}{PROMPT}\n\nAssistant:")
    reply = backend.chat(messages)
    assert isinstance(reply, str) and reply.strip() and reply == backend.chat(messages)
    planner_backend = Recording(backend)
    try:
        result = LLMPlanner(planner_backend, cache=False).plan(PROMPT)
    except PlannerError as e:  # random weights: garbage, re-asked once, then a clear error with the raw reply
        assert len(planner_backend.replies) == 2 and planner_backend.replies[-1] in str(e)
    else:
        assert result.layout.regions
    tokenizer, _ = backend._load()
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}| {{ m['content'] }}\n{% endfor %}assistant|"
    text, templated = backend.render(messages)
    assert templated and text.endswith("assistant|") and isinstance(backend.chat(messages), str)
    with pytest.raises(PlannerError, match="more than the model's context of 2048"):
        TransformersBackend(tiny_lm, max_new_tokens=5000).chat(messages)
    with pytest.raises(PlannerError, match="cannot load transformers model"):
        TransformersBackend(str(tiny_lm) + "-missing").chat(messages)


def test_transformers_planner_parses_a_generated_reply(tiny_lm, monkeypatch, tmp_path):
    import torch

    backend = TransformersBackend(tiny_lm, max_new_tokens=32)
    tokenizer, model = backend._load()
    reply_ids = tokenizer(
        "cat : ( 20 , 100 , 220 , 400 )\ndog : ( 280 , 100 , 480 , 400 )",
        add_special_tokens=False,
        return_tensors="pt",
    ).input_ids

    def generate(input_ids, **kw):
        assert kw["do_sample"] is False and kw["max_new_tokens"] == 32
        return torch.cat([input_ids, reply_ids], dim=1)

    monkeypatch.setattr(model, "generate", generate)
    planner = LLMPlanner(backend, cache_dir=tmp_path)
    result = planner.plan(PROMPT)
    assert result.layout.phrases == ["cat", "dog"] and result.layout.boxes[1] == pytest.approx(DOG)
    assert planner.cache_path(PROMPT).exists() and backend.model_id == f"transformers:{tiny_lm}"


# ============================================================================================ factory and CLI
def test_get_planner():
    assert isinstance(get_planner("rule"), RuleBasedPlanner)
    planner = get_planner("openai", base_url="http://127.0.0.1:1/v1", llm_model="gpt-x", cache=False)
    assert isinstance(planner, LLMPlanner) and planner.backend.url == "http://127.0.0.1:1/v1/chat/completions"
    assert isinstance(get_planner("transformers", llm_model="some/model").backend, TransformersBackend)
    with pytest.raises(PlannerError, match="unknown planner 'gpt'"):
        get_planner("gpt")
    with pytest.raises(PlannerError, match="model name is required"):
        get_planner("openai")
    with pytest.raises(PlannerError, match="model name or folder is required"):
        get_planner("transformers")
    with pytest.raises(PlannerError, match="llm_model only applies to the openai and transformers planners"):
        get_planner("rule", llm_model="gpt-x")


runner = CliRunner()


def test_cli_plan_rule(tmp_path):
    out = tmp_path / "layout.json"
    result = runner.invoke(app, ["plan", "two dogs and a cat, 4k", "--out", str(out)])
    assert result.exit_code == 0, result.output
    printed = Layout.from_json(result.stdout)
    assert printed == Layout.from_json(out) and printed.phrases == ["dogs", "dogs", "cat"]
    assert "note: style words ignored" in result.stderr


def test_cli_plan_openai_and_errors(server, tmp_path, monkeypatch):
    monkeypatch.setenv("LAYOUTGUIDE_PLAN_CACHE", str(tmp_path / "cache"))
    server.script = [{"reply": GOOD}]
    result = runner.invoke(app, ["plan", PROMPT, "--planner", "openai", "--base-url", server.url, "--llm-model", "m"])
    assert result.exit_code == 0, result.output
    assert Layout.from_json(result.stdout).phrases == ["cat", "dog"]
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    result = runner.invoke(app, ["plan", PROMPT, "--planner", "nope"])
    assert result.exit_code == 2 and "error: unknown planner 'nope'" in result.stderr
    result = runner.invoke(app, ["plan", "forty cats"])
    assert result.exit_code == 2 and "at most 30 regions" in result.stderr and "Traceback" not in result.output
