"""Map each region's phrase to its token positions in the tokenised prompt, with the pipeline's tokenizer.

Every token-map method (refocus, BoxDiff, Layout-guidance, Attend-and-Excite, ZestGuide, Paint-with-Words,
DenseDiffusion) reads ``TokenMap.indices`` from here, so how a phrase is written is settled in this one place.

Words, not token strings. The prompt and the phrase are tokenised with the pipeline's tokenizer and cut into words
at the tokenizer's own word boundaries (CLIP's ``</w>``), so multi-token words, case (CLIP lower-cases) and
punctuation come out as the text encoder sees them. The official Attention Refocusing and Layout-guidance code
index words by whitespace position instead, which is wrong as soon as a word is split into several BPE tokens.

Content words only. An article's attention is spread over the whole image and "a" occurs once per object, so a
phrase's articles, determiners, possessives, punctuation and number words ("two cats" -> "cats") never enter the
indices; a phrase made only of such words keeps its number words ("one"), else all its words. The phrase's
content words are then found in the prompt in order, with only such function words between them, so
"the red circle" and "A Red Circle," find "a red circle"; singular and plural match when the exact words do not
occur ("green triangle" in "two green triangles"); and as a last resort a coordination of single words may
stand between them ("red and blue circles": "red circle" -> red + circles, "blue circle" -> blue + circles).

Which occurrence: phrases with more content words are placed first, and each region takes the first occurrence
whose tokens no other region has taken ("a red circle and a circle": "circle" -> the second circle; "a red circle
and a blue circle": each region its own colour and its own "circle"). When every occurrence is taken (counts:
"two cats" with two "cats" regions), the k-th region with a given phrase shares the k-th occurrence, or the last,
as the official code shares one token among boxes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Literal

from .errors import LayoutguideError


class PhraseNotFoundError(LayoutguideError, ValueError):
    """A region's phrase does not occur in the prompt."""


@dataclasses.dataclass(frozen=True)
class TokenMap:
    prompt: str  # the prompt actually encoded (phrases may have been appended)
    input_ids: tuple[int, ...]  # with start/end tokens, before padding
    indices: tuple[tuple[int, ...], ...]  # per region, positions in the padded 77-token sequence
    # the tokenizer pads with its end token (SD 1.x) rather than a vocabulary token (SD 2.x pads with "!")
    pads_with_end: bool = True

    def word_positions(self, max_length: int = 77) -> range:
        """Positions of the prompt's own tokens in the padded sequence: after the start token, before the end token
        (what the official Attend-and-Excite/BoxDiff ``normalize_eot`` keeps in the token softmax)."""
        return range(1, min(len(self.input_ids), max_length) - 1)

    @property
    def all_indices(self) -> list[int]:
        return sorted({i for idx in self.indices for i in idx})


ARTICLES = frozenset({"a", "an", "the"})
DETERMINERS = frozenset(
    {"this", "that", "these", "those", "some", "any", "each", "every", "another", "both", "either", "neither"}
    | {"all", "several", "many", "few", "various"}
)
POSSESSIVES = frozenset({"my", "your", "his", "her", "its", "our", "their", "whose", "'s", "'", "s'"})
NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand dozen".split()
)
COORDINATORS = frozenset({"and", "or", "nor", "&", ",", "/", ";"})
# Plurals that dropping an "s" does not undo; both directions are looked up.
IRREGULAR_PLURALS = {
    "men": "man",
    "women": "woman",
    "children": "child",
    "people": "person",
    "feet": "foot",
    "teeth": "tooth",
    "geese": "goose",
    "mice": "mouse",
    "oxen": "ox",
    "leaves": "leaf",
    "knives": "knife",
    "wolves": "wolf",
    "shelves": "shelf",
    "loaves": "loaf",
    "halves": "half",
    "calves": "calf",
    "lives": "life",
    "wives": "wife",
}
_WORD_END, _WORD_STARTS = "</w>", ("Ġ", "▁")  # CLIP marks a word's last token; GPT-2 / SentencePiece its first


@dataclasses.dataclass(frozen=True)
class Word:
    """One word as the tokenizer cut it: lower-cased text without boundary marks, and its token positions."""

    text: str
    positions: tuple[int, ...]

    @property
    def kind(self) -> str:
        """``punctuation``, ``article``, ``determiner``, ``possessive``, ``number`` or ``content``."""
        if not any(ch.isalnum() for ch in self.text):
            return "punctuation"
        if self.text in ARTICLES:
            return "article"
        if self.text in DETERMINERS:
            return "determiner"
        if self.text in POSSESSIVES:
            return "possessive"
        if self.text in NUMBER_WORDS or self.text.isdigit():
            return "number"
        return "content"


def words(tokenizer, ids: Sequence[int]) -> list[Word]:
    """``ids`` cut into words at the tokenizer's word boundaries; special tokens (start, end, padding) dropped.

    Positions index ``ids``. A tokenizer without word marks gives one word per token.
    """
    special = set(tokenizer.all_special_ids)
    tokens = tokenizer.convert_ids_to_tokens(list(ids))
    end_marked = any(t.endswith(_WORD_END) for t in tokens)
    start_marked = not end_marked and any(t.startswith(_WORD_STARTS) for t in tokens)
    out: list[Word] = []
    text, positions = "", list[int]()

    def flush() -> None:
        nonlocal text, positions
        if positions:
            out.append(Word(text.lower(), tuple(positions)))
        text, positions = "", []

    for pos, (token_id, token) in enumerate(zip(ids, tokens)):
        if token_id in special:
            flush()
            continue
        if start_marked and token.startswith(_WORD_STARTS):
            flush()
            token = token[1:]
        text += token.removesuffix(_WORD_END)
        positions.append(pos)
        if token.endswith(_WORD_END) or not (end_marked or start_marked):
            flush()
    flush()
    return out


def content_words(phrase_words: Sequence[Word]) -> list[Word]:
    """The words of a phrase that select its tokens: not articles, determiners, possessives, punctuation or
    numbers; for a phrase made only of those, its number words ("one"), else every word that is not punctuation."""
    for keep in ({"content"}, {"number"}, {"article", "determiner", "possessive", "number"}):
        chosen = [w for w in phrase_words if w.kind in keep]
        if chosen:
            return chosen
    return []


def content_positions(tokenizer, phrase: str) -> tuple[int, ...]:
    """Positions of a phrase's content-word tokens in the phrase encoded on its own (start token at 0): "a red circle"
    -> (2, 3). They line up with the region's ``TokenMap.indices`` word for word (for methods that encode phrases
    alone, as DenseDiffusion's standalone text does)."""
    ids = tokenizer(phrase, add_special_tokens=True).input_ids
    return tuple(p for w in content_words(words(tokenizer, ids)) for p in w.positions)


def head_word(phrase: str) -> str:
    """The phrase's last content word as written, punctuation stripped: "A Red Circle," -> "Circle", "two cats" ->
    "cats" (a grounding text for models trained on head nouns); the last word when there is no content word."""
    found = re.findall(r"[^\W_]+(?:'[^\W_]+)?", phrase)
    content = [w for w in found if Word(w.lower(), ()).kind == "content"]
    return (content or found or [phrase.strip()])[-1]


def _singular_forms(word: str) -> set[str]:
    """The word and what it could be the plural of: "boxes" -> {boxes, boxe, box}, "cats" -> {cats, cat}."""
    forms = {word}
    if word in IRREGULAR_PLURALS:
        forms.add(IRREGULAR_PLURALS[word])
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        forms.add(word[:-1])
        if word.endswith("es"):
            forms.add(word[:-2])
        if word.endswith("ies"):
            forms.add(word[:-3] + "y")
    return forms


def _exact(a: str, b: str) -> bool:
    return a == b


def _number_insensitive(a: str, b: str) -> bool:
    return bool(_singular_forms(a) & _singular_forms(b))


Same = Callable[[str, str], bool]


def _next_word(prompt_words: Sequence[Word], start: int, text: str, same: Same, coordinated: bool) -> int | None:
    """Index of the prompt word after ``start`` that matches ``text``, with only function words in between (or,
    when ``coordinated``, also single words each after a coordinator: "red [and blue] circles")."""
    after_coordinator = False
    for j in range(start, len(prompt_words)):
        word = prompt_words[j]
        if same(text, word.text):
            return j
        if word.kind != "content" or (coordinated and word.text in COORDINATORS):
            after_coordinator = after_coordinator or word.text in COORDINATORS
        elif coordinated and after_coordinator:
            after_coordinator = False  # one coordinated modifier per coordinator
        else:
            return None
    return None


def _occurrences(
    prompt_words: Sequence[Word], texts: Sequence[str], same: Same, coordinated: bool
) -> list[tuple[int, ...]]:
    """Token positions of every occurrence of the content words ``texts``, in order, in the prompt."""
    found = []
    for first, word in enumerate(prompt_words):
        if not same(texts[0], word.text):
            continue
        matched, j = [first], first
        for text in texts[1:]:
            nxt = _next_word(prompt_words, j + 1, text, same, coordinated)
            if nxt is None:
                break
            matched.append(nxt)
            j = nxt
        else:
            found.append(tuple(p for m in matched for p in prompt_words[m].positions))
    return found


def find_phrase(
    prompt_words: Sequence[Word], texts: Sequence[str], *, match_plurals: bool = True
) -> list[tuple[int, ...]]:
    """Occurrences of a phrase's content words in the prompt, by the first rule that finds any: exact words,
    then singular/plural-insensitive (``match_plurals``), then each again across a coordination."""
    rules: list[tuple[Same, bool]] = [(_exact, False)]
    if match_plurals:
        rules.append((_number_insensitive, False))
    rules += [(same, True) for same, _ in list(rules)]
    for same, coordinated in rules:
        found = _occurrences(prompt_words, texts, same, coordinated)
        if found:
            return found
    return []


def _phrase_texts(tokenizer, i: int, phrase: str) -> tuple[str, ...]:
    texts = tuple(
        w.text for w in content_words(words(tokenizer, tokenizer(phrase, add_special_tokens=False).input_ids))
    )
    if not texts:
        raise PhraseNotFoundError(
            f"region {i}: phrase {phrase!r} has no words; give the region a phrase from the prompt"
        )
    return texts


def map_phrases(
    tokenizer,
    prompt: str,
    phrases: Sequence[str],
    *,
    on_missing: Literal["error", "append"] = "error",
    match_plurals: bool = True,
) -> TokenMap:
    """Token positions of every phrase's content words in ``prompt`` (see the module docstring for the rules).

    ``on_missing="append"`` appends missing phrases to the prompt (``"prompt, phrase"``) instead of raising,
    as LMD+ does. ``match_plurals`` also accepts a phrase's words in the other grammatical number.
    """
    texts = [_phrase_texts(tokenizer, i, phrase) for i, phrase in enumerate(phrases)]
    prompt_words = words(tokenizer, tokenizer(prompt, add_special_tokens=True).input_ids)
    for i, phrase in enumerate(phrases):  # in region order, so appended phrases keep the regions' order
        if find_phrase(prompt_words, texts[i], match_plurals=match_plurals):
            continue
        if on_missing != "append":
            raise PhraseNotFoundError(
                f"region {i}: phrase {phrase!r} does not occur in the prompt {prompt!r}; use the prompt's own "
                "words for the phrase, or pass on_missing='append' to add it to the prompt"
            )
        prompt = f"{prompt}, {phrase}"
        prompt_words = words(tokenizer, tokenizer(prompt, add_special_tokens=True).input_ids)

    taken: set[int] = set()
    seen: dict[tuple[str, ...], int] = {}
    indices: list[tuple[int, ...]] = [()] * len(phrases)
    for i in sorted(range(len(phrases)), key=lambda r: -len(texts[r])):  # stable: region order within a length
        found = find_phrase(prompt_words, texts[i], match_plurals=match_plurals)
        k = seen.get(texts[i], 0)
        seen[texts[i]] = k + 1
        free = [positions for positions in found if taken.isdisjoint(positions)]
        indices[i] = free[0] if free else found[min(k, len(found) - 1)]
        taken.update(indices[i])
    max_len = tokenizer.model_max_length
    for i, positions in enumerate(indices):
        if max(positions) >= max_len - 1:
            raise PhraseNotFoundError(
                f"region {i}: phrase {phrases[i]!r} falls beyond the tokenizer's {max_len}-token limit; shorten the "
                "prompt"
            )
    ids = tokenizer(prompt, add_special_tokens=True).input_ids
    return TokenMap(
        prompt=prompt, input_ids=tuple(ids), indices=tuple(indices), pads_with_end=pads_with_end(tokenizer)
    )


class TokenizerMismatchError(LayoutguideError, ValueError):
    """A pipeline's tokenizers cut a prompt into different ids, so one set of positions cannot serve both."""


def map_phrases_shared(
    tokenizers: Sequence,
    prompt: str,
    phrases: Sequence[str],
    *,
    on_missing: Literal["error", "append"] = "error",
    match_plurals: bool = True,
) -> TokenMap:
    """:func:`map_phrases` for a pipeline whose text encoders each tokenise the prompt (SDXL: CLIP ViT-L and OpenCLIP
    bigG, whose embeddings are concatenated on the feature axis, so one position indexes both halves).

    The positions come from the first tokenizer; every other one must cut the encoded prompt into the same ids and
    have the same length limit. SDXL's two tokenizers share one BPE vocabulary and differ only in the padding token
    (``<|endoftext|>`` vs ``!``), which lies after the end token and never holds a phrase."""
    first, *others = tokenizers
    token_map = map_phrases(first, prompt, phrases, on_missing=on_missing, match_plurals=match_plurals)
    for k, tokenizer in enumerate(others, start=2):
        ids = tuple(tokenizer(token_map.prompt, add_special_tokens=True).input_ids)
        if ids != token_map.input_ids or tokenizer.model_max_length != first.model_max_length:
            raise TokenizerMismatchError(
                f"prompt {token_map.prompt!r}: tokenizer {k} cuts it into other tokens than tokenizer 1 (or has "
                "another length limit); phrase positions need tokenizers over one vocabulary, as SDXL's two are"
            )
    return token_map


def pads_with_end(tokenizer) -> bool:
    """Whether ``tokenizer`` pads with its end token (SD 1.x's CLIP) rather than a real vocabulary token (SD 2.x's
    OpenCLIP tokenizer pads with "!", which the text encoder reads as a word)."""
    pad = getattr(tokenizer, "pad_token_id", None)
    return pad is None or pad == tokenizer.eos_token_id
