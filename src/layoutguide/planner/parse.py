"""The rule planner's second pass: scanned items -> noun phrases -> object groups, then relations between them.

:class:`Parser` reads the prompt into :attr:`Parser.groups` (one per object kind, with its count) and
:attr:`Parser.rels`; what it cannot read becomes a note and sets :attr:`Parser.unknown` (the planner then says it
fell back). :mod:`.link` links the noun phrases by their relations (:func:`.link.read_prompt` runs both).
"""

from __future__ import annotations

import dataclasses

from .result import PlannerError
from .scan import (
    Filler,
    Item,
    Negation,
    Position,
    Pronoun,
    Reciprocal,
    RelationWords,
    Separator,
    Which,
    Word,
    scan,
    tokenize,
)
from .vocabulary import (
    COLOURS,
    DETERMINERS,
    NUMBER_WORDS,
    STYLE_WORDS,
    TENS,
    VAGUE,
    VERBS,
    count_value,
    is_plural,
    singular,
)

DROPPED = -1  # a noun phrase of style words ("4k", "trending on artstation") or negated: no region, no relation


@dataclasses.dataclass
class Group:
    """One object kind in the prompt: its phrase as written and how many instances it has."""

    phrase: str
    count: int
    key: str  # lower-case words, last one singular: for "the red circle" -> "red circles" co-reference
    head: str  # singular head noun
    positions: set[str] = dataclasses.field(default_factory=set)  # absolute: left/right/top/bottom/middle


@dataclasses.dataclass(frozen=True)
class Relation:
    a: int
    kind: str  # left of, right of, above, below, next to, on top of
    b: int
    text: str  # the words of the prompt, for notes


@dataclasses.dataclass
class NounPhrase:
    """A run of words naming one object kind (token indices; the linker may drop a trailing verb)."""

    words: list[int]


# what the linker reads: noun phrases and every scanned item but words and fillers
Element = NounPhrase | Separator | RelationWords | Position | Pronoun | Reciprocal | Negation | Which


@dataclasses.dataclass
class NounPhraseParts:
    count: int | None
    definite: bool
    vague: bool
    body: list[int]  # the phrase's token indices, after determiners and counts


class Parser:
    """Reads the prompt's words into noun phrases, separators and relations (:meth:`elements`); the linker then
    fills :attr:`groups` and :attr:`rels` through :meth:`group_for` and :meth:`add`."""

    def __init__(self, prompt: str):
        self.prompt = prompt
        self.toks = tokenize(prompt)
        self.low = [t.low for t in self.toks]
        self.groups: list[Group] = []
        self.rels: list[Relation] = []
        self.notes: list[str] = []
        self.unknown = False
        self.mentions: list[int] = []  # group indices in order of mention
        self.style: list[str] = []  # style phrases dropped ("4k", "digital art")
        self.negated: list[str] = []  # "without birds", "no cats"

    # ------------------------------------------------------------------------------------------ noun phrases
    def _split_run(self, run: list[int]) -> list[list[int]]:
        """Split a run of words at a determiner or count word that follows a content word ("a dog chasing a cat")."""
        parts: list[list[int]] = [[]]
        for i in run:
            cur = parts[-1]
            starts_np = self.low[i] in DETERMINERS or self.low[i] in NUMBER_WORDS or self.low[i].isdigit()
            has_content = any(self.low[j] not in DETERMINERS and self.low[j] not in NUMBER_WORDS for j in cur)
            if starts_np and has_content and self.low[cur[-1]] != "of":
                parts.append([i])
            else:
                cur.append(i)
        return [p for p in parts if p]

    def _noun_phrase(self, words: list[int]) -> NounPhraseParts:
        """Count, definiteness and vagueness of a run of words, and the words of its phrase."""
        low = [self.low[i] for i in words]
        count: int | None = None
        definite = vague = False
        k = 0
        for pattern, value in VAGUE.items():
            if tuple(low[: len(pattern)]) == pattern and len(low) > len(pattern):
                count, vague, k = value, True, len(pattern)
                break
        if not vague:
            if low and low[0] in ("the", "these", "those", "this"):
                definite, k = True, 1
            elif low and low[0] in DETERMINERS:
                k = 1
            first = count_value(low[k]) if k < len(low) else None
            if first is not None:
                self._check_whole(words[k], words[-1])
                count, k = first, k + 1
                counted = low[k - 1] not in DETERMINERS  # "a" in "a a one" is an article, not a count
                if counted and k < len(low) and low[k] not in DETERMINERS and count_value(low[k]) is not None:
                    count, k = self._compound_count(words, count, k), k + 1
            elif k == 1 and low[0] in NUMBER_WORDS:
                count = NUMBER_WORDS[low[0]]
        return NounPhraseParts(count, definite, vague, words[k:])

    def _check_whole(self, i: int, last: int) -> None:
        """A count written with digits must be a whole number of 0 or more: the tokens drop "-" and split "2.5"."""
        tok, text = self.toks[i], self.prompt
        phrase = text[max(tok.start - 1, 0) : self.toks[last].end]
        if not tok.low.isdigit():
            return
        before = text[max(tok.start - 2, 0) : tok.start]
        after = text[tok.end : tok.end + 2]
        if before.endswith("-") and not before[:-1].isalnum():
            raise PlannerError(
                f"the prompt asks for {phrase!r}: a count cannot be negative; write a count of 1 or more (or 'no ...' "
                "for none)"
            )
        if (len(before) == 2 and before[1] in ".," and before[0].isdigit()) or (
            len(after) == 2 and after[0] in ".," and after[1].isdigit()
        ):
            raise PlannerError(
                f"the count in {phrase!r} is part of a number with a decimal point or comma, not a whole count; "
                "write counts as whole numbers ('3 circles', 'three circles')"
            )

    def _compound_count(self, words: list[int], first: int, k: int) -> int:
        """The count of "twenty three" (23) or "two dozen" (24); any other two counts in a row are an error."""
        second_word = self.low[words[k]]
        second = count_value(second_word)
        assert second is not None
        if first in TENS and second_word in NUMBER_WORDS and 1 <= second <= 9:
            return first + second
        if second_word in ("dozen", "hundred"):
            return first * second
        phrase = self.prompt[self.toks[words[0]].start : self.toks[words[-1]].end]
        raise PlannerError(
            f"two counts in a row in {phrase!r}: give one count per object (e.g. 'twenty-three circles' or "
            "'3 circles and 2 squares')"
        )

    def _earlier_group(self, key: str, head: str, definite: bool) -> int | None:
        """The latest earlier group a phrase without a count refers back to ("the red circle", "circles")."""
        same = [g for g, grp in enumerate(self.groups) if grp.key == key]
        if not same and definite:  # "the circle" for "a red circle": its words are a subset of an earlier object's
            same = [
                g for g, grp in enumerate(self.groups) if grp.head == head and set(key.split()) <= set(grp.key.split())
            ]
        return same[-1] if same else None

    def group_for(self, words: list[int], negated: bool = False) -> int | None:
        """The group a noun phrase names (new or referred back to), ``DROPPED``, or None (no words but counts)."""
        np = self._noun_phrase(words)
        count, body = np.count, np.body
        if not body:
            return None
        phrase = self.prompt[self.toks[body[0]].start : self.toks[body[-1]].end]
        if negated or count == 0:  # "without birds", "no cats": nothing to place
            self.negated.append(phrase)
            return DROPPED
        body_low = [self.low[i] for i in body]
        if count is None and not np.definite and all(w in STYLE_WORDS for w in body_low):
            self.style.append(phrase)
            return DROPPED
        head = singular(body_low[-1])
        key = " ".join(body_low[:-1] + [head])
        if count is None:
            earlier = self._earlier_group(key, head, np.definite)
            if earlier is not None:
                return earlier
        if np.vague:
            self.notes.append(
                f"vague count in {self.prompt[self.toks[words[0]].start : self.toks[body[-1]].end]!r}: {count} used"
            )
        if count is None:
            count = 1
            if is_plural(body_low[-1]) and not np.definite:
                self.notes.append(f"no count given for {phrase!r}: one region for the group")
        self.groups.append(Group(phrase=phrase, count=count, key=key, head=head))
        return len(self.groups) - 1

    # ------------------------------------------------------------------------------------------ elements
    def _flush(self, run: list[int], elements: list[Element]) -> None:
        """Turn a run of words into noun phrases (and verbs between them into unplaced relations)."""
        if not run:
            return
        parts = self._split_run(run)
        last_word = self.low[parts[-1][0]]
        if len(parts[-1]) == 1 and len(last_word) > 4 and last_word.endswith("ing"):
            parts.pop()  # a bare "-ing" word before a relation is a verb ("the cat is sleeping on a mat")
        for p, part in enumerate(parts):
            if p:  # two noun phrases with no separator: the first probably ends with a verb
                last = self.low[part[0] - 1]
                prev = elements[-1]
                if isinstance(prev, NounPhrase) and (last.endswith("ing") or last in VERBS):
                    prev.words.pop()
                    if not prev.words:  # "is chasing a cat": the verb stood alone
                        elements.pop()
                    elements.append(RelationWords("?", self.toks[part[0] - 1].text))
                else:
                    elements.append(Separator(","))
            elements.append(NounPhrase(part))
        run.clear()

    def _colour_list(self, items: list[Item], k: int, run: list[int]) -> bool:
        """Item ``k`` is the "and" of "a red and blue ball": one object with a colour list."""
        item, after = items[k], items[k + 1] if k + 1 < len(items) else None
        return (
            isinstance(item, Separator)
            and item.text == "and"
            and bool(run)
            and self.low[run[-1]] in COLOURS
            and isinstance(after, Word)
            and self.low[after.index] in COLOURS
        )

    def elements(self) -> list[Element]:
        """The prompt as noun phrases, separators, relations, positions, pronouns... (fillers dropped)."""
        items = scan(self.toks)
        elements: list[Element] = []
        run: list[int] = []
        for k, item in enumerate(items):
            if isinstance(item, Word):
                run.append(item.index)
            elif self._colour_list(items, k, run):
                run.append(run[-1] + 1)  # keep "and" inside the phrase
            else:
                self._flush(run, elements)
                if not isinstance(item, Filler):
                    elements.append(item)
        self._flush(run, elements)
        return elements

    # ------------------------------------------------------------------------------------------ shared with linking
    def coordinated(self, chain: list[int]) -> list[int]:
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

    def add(self, a: int, kind: str, b: int, text: str) -> None:
        if a == b:
            self.note_unknown(f"relation {text!r} relates {self.groups[a].phrase!r} to itself")
            return
        self.rels.append(Relation(a, kind, b, text))

    def note_unknown(self, message: str) -> None:
        self.notes.append(f"unknown phrasing: {message}; spread layout used for it")
        self.unknown = True
