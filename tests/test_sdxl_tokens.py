"""SDXL's two tokenizers: one BPE vocabulary, different padding; one set of phrase positions serves both halves of
the concatenated embedding, and a pair that disagrees is refused."""

from __future__ import annotations

import pytest

from layoutguide.shapes.model import build_tokenizer
from layoutguide.testing import sdxl_tokenizers, tiny_sdxl_pipeline
from layoutguide.tokens import TokenizerMismatchError, map_phrases, map_phrases_shared

PROMPT = "two red circles and a blue square"


def test_the_tokenizers_differ_only_in_padding():
    first, second = sdxl_tokenizers()
    a = first(PROMPT, padding="max_length", max_length=77).input_ids
    b = second(PROMPT, padding="max_length", max_length=77).input_ids
    end = a.index(first.eos_token_id)
    assert a[: end + 1] == b[: end + 1]  # start, words, end token: the same ids
    assert set(a[end + 1 :]) == {first.pad_token_id} and set(b[end + 1 :]) == {second.convert_tokens_to_ids("!")}
    assert first.pad_token_id != second.pad_token_id


def test_shared_mapping_equals_single_mapping():
    tokenizers = sdxl_tokenizers()
    for prompt, phrases in [
        (PROMPT, ["red circles", "blue square"]),
        ("a red circle and a circle", ["red circle", "circle"]),
        ("a circle", ["green triangle"]),
    ]:
        on_missing = "append" if "triangle" in phrases[0] else "error"
        shared = map_phrases_shared(tokenizers, prompt, phrases, on_missing=on_missing)
        assert shared == map_phrases(tokenizers[0], prompt, phrases, on_missing=on_missing)
        assert shared.indices == map_phrases(tokenizers[1], prompt, phrases, on_missing=on_missing).indices


def test_tokenizers_over_different_vocabularies_are_refused():
    first = build_tokenizer()
    other = build_tokenizer(["circle", "square"])  # "red", "blue" are single characters here
    with pytest.raises(TokenizerMismatchError, match="tokenizer 2") as err:
        map_phrases_shared((first, other), PROMPT, ["blue square"])
    assert "\n" not in str(err.value)


def test_the_pipeline_maps_phrases_over_both_tokenizers():
    pipe = tiny_sdxl_pipeline()
    pipe.tokenizer_2 = build_tokenizer(["circle", "square"])
    with pytest.raises(TokenizerMismatchError):
        pipe.token_map(PROMPT, ["blue square"])
