"""Linking noun phrases by relations: "a cat and a dog on a sofa" -> cat on sofa, dog on sofa.

:class:`Linker` walks the parser's elements left to right, one handler per element type, keeping the state of the
sentence: the objects just named (joined by "and"), the relation waiting for its object, a pending negation.
:func:`read_prompt` runs the whole rule parse.
"""

from __future__ import annotations

import dataclasses

from .parse import DROPPED, Element, NounPhrase, Parser
from .scan import Negation, Position, Pronoun, Reciprocal, RelationWords, Separator, Which
from .vocabulary import SENTENCE_END


@dataclasses.dataclass
class _Pending:
    """A relation read, waiting for its object(s): "between" needs two."""

    subjects: list[int]
    kind: str
    text: str
    objects: list[int] = dataclasses.field(default_factory=list)


class Linker:
    def __init__(self, parser: Parser):
        self.p = parser
        self.prev: int | None = None  # the group just before, with no separator in between (DROPPED: style words)
        self.chain: list[int] = []  # groups joined by "and" / "," ending with prev
        self.joined = False  # an "and" / "," since the last group
        self.last_subjects: list[int] = []  # subjects of the previous relation in this sentence
        self.pending: _Pending | None = None
        self.negate = False

    def run(self, elements: list[Element]) -> None:
        handlers = {
            NounPhrase: self._noun_phrase,
            Pronoun: self._pronoun,
            RelationWords: self._relation,
            Reciprocal: self._reciprocal,
            Position: self._position,
            Negation: self._negation,
            Which: self._which,
            Separator: self._separator,
        }
        for el in elements:
            handlers[type(el)](el)  # type: ignore[operator]
        if self.pending is not None:
            self.p.note_unknown(f"relation {self.pending.text!r} has no object after it")

    # ------------------------------------------------------------------------------------------ objects
    def _noun_phrase(self, el: NounPhrase) -> None:
        n_before = len(self.p.groups)
        g = self.p.group_for(el.words, self.negate)
        self._object(g, n_before)

    def _pronoun(self, el: Pronoun) -> None:
        """ "it": the latest object other than the relation's subject ("a table with a cat on it")."""
        n_before = len(self.p.groups)
        exclude = self.pending.subjects[-1:] if self.pending else []
        earlier = [m for m in reversed(self.p.mentions) if m not in exclude]
        g = earlier[0] if earlier else None
        if g is None:
            self.p.note_unknown(f"pronoun {self.p.toks[el.index].text!r} refers to nothing before it")
        elif self.pending is not None and g in self.pending.subjects:
            self.pending.subjects = [s for s in self.pending.subjects if s != g]
        self._object(g, n_before)

    def _object(self, g: int | None, n_before: int) -> None:
        self.negate = False
        if g is None:  # only determiners ("a" before "standing man")
            return
        if g == DROPPED:  # style words or negated: no region, and no relation to it
            self.pending, self.prev, self.chain = None, g, []
            return
        self.p.mentions.append(g)
        # only objects introduced here coordinate; "the red circle" refers back and starts afresh
        introduced = len(self.p.groups) > n_before
        self.chain = self.chain + [g] if self.joined and self.pending is None and introduced else [g]
        self.joined = False
        pending = self.pending
        if pending is not None:
            pending.objects.append(g)
            if pending.kind == "between" and len(pending.objects) == 1:
                self.prev = g
                return
            for subject in pending.subjects:
                if pending.kind == "between":
                    self.p.add(pending.objects[0], "left of", subject, pending.text)
                    self.p.add(subject, "left of", pending.objects[1], pending.text)
                else:
                    self.p.add(subject, pending.kind, g, pending.text)
            self.last_subjects, self.pending = pending.subjects, None
        self.prev = g

    # ------------------------------------------------------------------------------------------ relations
    def _relation(self, el: RelationWords) -> None:
        if self.pending is not None:
            wanted = "two objects joined by 'and'" if self.pending.kind == "between" else "an object"
            self.p.note_unknown(f"relation {self.pending.text!r} is not followed by {wanted}")
            self.pending = None
        if self.prev == DROPPED:
            subjects: list[int] = []
        else:
            subjects = self.p.coordinated(self.chain) if self.prev is not None and self.chain else self.last_subjects
        if el.kind == "?":
            if self.prev != DROPPED:
                self.p.note_unknown(f"{el.text!r} is not a spatial relation the rule planner knows")
        elif not subjects:
            if self.prev != DROPPED:
                self.p.note_unknown(f"relation {el.text!r} has no object before it")
        else:
            self.pending = _Pending(subjects, el.kind, el.text)
        self.prev, self.chain, self.joined = None, [], False

    def _reciprocal(self, el: Reciprocal) -> None:
        rkind: str | None
        if self.pending is not None and el.kind is None:
            rkind, text, subjects = self.pending.kind, f"{self.pending.text} {el.text}", self.pending.subjects
        else:
            rkind, text = el.kind, el.text
            named = self.prev is not None and self.prev != DROPPED and self.chain
            subjects = self.p.coordinated(self.chain) if named else []
        if len(subjects) == 1:  # "a cat and a dog next to each other": the other is the one before
            others = [m for m in reversed(self.p.mentions) if m not in subjects]
            subjects = others[:1] + subjects
        if rkind is None or rkind == "between" or len(subjects) < 2:
            self.p.note_unknown(f"{el.text!r} needs two objects and a relation before it")
        else:
            for a, b in zip(subjects, subjects[1:]):
                self.p.add(a, rkind, b, text)
            self.last_subjects = subjects
        self.pending, self.prev, self.chain, self.joined = None, None, [], False

    def _position(self, el: Position) -> None:
        named = self.prev is not None and self.prev != DROPPED and self.chain
        targets = self.p.coordinated(self.chain) if named else []
        if not targets and self.prev is None and self.p.mentions:
            targets = [self.p.mentions[-1]]
        if not targets and self.prev != DROPPED:
            self.p.note_unknown("a position ('on the left', 'at the top', ...) with no object before it")
        for g in targets:
            self.p.groups[g].positions |= el.positions
        self.chain, self.joined = [], False

    # ------------------------------------------------------------------------------------------ the rest
    def _negation(self, el: Negation) -> None:
        self.negate, self.prev, self.chain, self.joined = True, None, [], False

    def _which(self, el: Which) -> None:
        if self.pending is None and self.p.mentions:
            last = self.p.mentions[-1]
            self.prev, self.chain, self.joined = last, [last], False

    def _separator(self, el: Separator) -> None:
        pending = self.pending
        if pending is not None and pending.kind == "between" and len(pending.objects) == 1 and el.text in ("and", ","):
            return
        if pending is not None:
            self.p.note_unknown(f"relation {pending.text!r} has no object after it")
            self.pending = None
        self.prev = None
        self.joined = el.text in ("and", ",", "with")
        if el.text in SENTENCE_END:
            self.last_subjects, self.chain, self.joined = [], [], False


def read_prompt(prompt: str) -> Parser:
    """The rule parse of ``prompt``: groups, relations, notes and whether anything was not understood."""
    parser = Parser(prompt)
    Linker(parser).run(parser.elements())
    if parser.style:
        parser.notes.append(f"style words ignored (no region): {', '.join(map(repr, parser.style))}")
    if parser.negated:
        parser.notes.append(
            f"negated, so no region (put them in the negative prompt): {', '.join(map(repr, parser.negated))}"
        )
    return parser
