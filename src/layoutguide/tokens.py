"""Map each region's phrase to its token positions in the tokenised prompt, with the pipeline's tokenizer.

The official Attention Refocusing and Layout-guidance code index words by whitespace position, which is
wrong as soon as a word is split into several BPE tokens. Here the phrase is tokenised on its own and its
token sub-sequence is searched in the prompt's tokens, so multi-token words, punctuation and case (CLIP
lower-cases) come out right.

Repeated phrases: the k-th region with a given phrase takes the k-th occurrence of that phrase in the
prompt; when the prompt has fewer occurrences than regions (counts: "two cats" with two "cats" regions),
the remaining regions share the last occurrence, as the official code shares one token among boxes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from .errors import LayoutguideError


class PhraseNotFoundError(LayoutguideError, ValueError):
    """A region's phrase does not occur in the prompt."""


@dataclasses.dataclass(frozen=True)
class TokenMap:
    prompt: str  # the prompt actually encoded (phrases may have been appended)
    input_ids: tuple[int, ...]  # with start/end tokens, before padding
    indices: tuple[tuple[int, ...], ...]  # per region, positions in the padded 77-token sequence

    @property
    def all_indices(self) -> list[int]:
        return sorted({i for idx in self.indices for i in idx})


def _find_all(haystack: Sequence[int], needle: Sequence[int]) -> list[int]:
    n = len(needle)
    return [i for i in range(len(haystack) - n + 1) if list(haystack[i : i + n]) == list(needle)]


def _plural_variants(phrase: str) -> list[str]:
    """ "cat" -> "cats", "cats" -> "cat", "box" -> "boxes": last word only, as the official code tries."""
    words = phrase.split()
    last = words[-1]
    variants = [last + "s", last + "es"]
    if last.endswith("es"):
        variants.append(last[:-2])
    if last.endswith("s"):
        variants.append(last[:-1])
    return [" ".join(words[:-1] + [v]) for v in variants if v]


def map_phrases(
    tokenizer,
    prompt: str,
    phrases: Sequence[str],
    *,
    on_missing: Literal["error", "append"] = "error",
    match_plurals: bool = True,
) -> TokenMap:
    """Token positions of every phrase in ``prompt``.

    ``on_missing="append"`` appends missing phrases to the prompt (``"prompt, phrase"``) instead of raising,
    as LMD+ does. ``match_plurals`` also accepts the phrase with its last word in singular/plural form.
    """
    max_len = tokenizer.model_max_length
    occurrence: dict[str, int] = {}
    indices: list[tuple[int, ...]] = []
    for i, phrase in enumerate(phrases):
        ids = tokenizer(prompt, add_special_tokens=True).input_ids
        phrase_ids = tokenizer(phrase, add_special_tokens=False).input_ids
        if not phrase_ids:
            raise PhraseNotFoundError(f"region {i}: phrase {phrase!r} tokenises to nothing")
        starts = _find_all(ids, phrase_ids)
        if not starts and match_plurals:
            for variant in _plural_variants(phrase.strip()):
                variant_ids = tokenizer(variant, add_special_tokens=False).input_ids
                starts = _find_all(ids, variant_ids)
                if starts:
                    phrase_ids = variant_ids
                    break
        if not starts:
            if on_missing != "append":
                raise PhraseNotFoundError(
                    f"region {i}: phrase {phrase!r} does not occur in the prompt {prompt!r}; use the prompt's own "
                    "words for the phrase, or pass on_missing='append' (CLI: --append-missing) to add it to the prompt"
                )
            prompt = f"{prompt}, {phrase}"
            ids = tokenizer(prompt, add_special_tokens=True).input_ids
            starts = _find_all(ids, phrase_ids)
        k = occurrence.get(phrase, 0)
        occurrence[phrase] = k + 1
        start = starts[min(k, len(starts) - 1)]
        positions = tuple(range(start, start + len(phrase_ids)))
        if positions[-1] >= max_len - 1:
            raise PhraseNotFoundError(
                f"region {i}: phrase {phrase!r} falls beyond the tokenizer's {max_len}-token limit; shorten the prompt"
            )
        indices.append(positions)
    ids = tokenizer(prompt, add_special_tokens=True).input_ids
    return TokenMap(prompt=prompt, input_ids=tuple(ids), indices=tuple(indices))
