import pytest

from layoutguide.shapes.model import build_tokenizer
from layoutguide.tokens import PhraseNotFoundError, map_phrases


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def decode(tok, ids, positions):
    return [tok.convert_ids_to_tokens(ids[p]) for p in positions]


def test_single_token_words(tok):
    m = map_phrases(tok, "a red circle and a blue square", ["red circle", "blue square"])
    assert m.indices == ((2, 3), (6, 7))  # 0 is the start token
    assert decode(tok, m.input_ids, m.indices[1]) == ["blue</w>", "square</w>"]


def test_multi_token_word_shifts_later_indices(tok):
    # "giraffe" is not in the shapes vocabulary: it splits into several BPE tokens. A whitespace index
    # (the official code's method) would put "circle" at position 3; the real position is after all pieces.
    prompt = "a giraffe and a red circle"
    m = map_phrases(tok, prompt, ["giraffe", "red circle"])
    n_giraffe = len(tok("giraffe", add_special_tokens=False).input_ids)
    assert n_giraffe > 1
    assert m.indices[0] == tuple(range(2, 2 + n_giraffe))
    assert m.indices[1] == (2 + n_giraffe + 2, 2 + n_giraffe + 3)
    assert decode(tok, m.input_ids, m.indices[1]) == ["red</w>", "circle</w>"]


def test_repeated_phrase_takes_nth_occurrence(tok):
    m = map_phrases(tok, "a red circle and a red circle", ["red circle", "red circle"])
    assert m.indices == ((2, 3), (6, 7))


def test_more_regions_than_occurrences_share_the_last(tok):
    m = map_phrases(tok, "two green triangles", ["green triangles", "green triangles"])
    assert m.indices == ((2, 3), (2, 3))


def test_case_and_punctuation(tok):
    m = map_phrases(tok, "A Red Circle, and a BLUE square!", ["red circle", "Blue Square"])
    assert decode(tok, m.input_ids, m.indices[0]) == ["red</w>", "circle</w>"]
    assert decode(tok, m.input_ids, m.indices[1]) == ["blue</w>", "square</w>"]


def test_plural_fallback(tok):
    m = map_phrases(tok, "two green triangles", ["green triangle"])
    assert decode(tok, m.input_ids, m.indices[0]) == ["green</w>", "triangles</w>"]
    with pytest.raises(PhraseNotFoundError):
        map_phrases(tok, "two green triangles", ["green triangle"], match_plurals=False)


def test_missing_phrase_errors_or_appends(tok):
    with pytest.raises(PhraseNotFoundError, match=r"region 1: phrase 'yellow square' does not occur"):
        map_phrases(tok, "a red circle", ["red circle", "yellow square"])
    m = map_phrases(tok, "a red circle", ["red circle", "yellow square"], on_missing="append")
    assert m.prompt == "a red circle, yellow square"
    assert decode(tok, m.input_ids, m.indices[1]) == ["yellow</w>", "square</w>"]


def test_phrase_beyond_token_limit(tok):
    prompt = " ".join(["red"] * 80) + " blue square"
    with pytest.raises(PhraseNotFoundError, match="token limit"):
        map_phrases(tok, prompt, ["blue square"])
