"""The rule planner's box solver: relations -> column and row ranks on a grid -> areas -> boxes, stacked.

:func:`constraints` turns relations and absolute positions into ordering edges; :func:`place` lays the groups
out for one choice of the solver's knobs (``split_axis``, ``lines``, ``squeeze``); the planner tries several and
keeps the first layout in which every relation holds (:func:`.geometry.problems`).
"""

from __future__ import annotations

import dataclasses

from .geometry import ASPECTS, H_KINDS, MARGIN, arrange, box_in, mid, shift
from .parse import Group, Relation

Box = list[float]


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


@dataclasses.dataclass
class Constraints:
    h_strict: list  # (a, b, label): a's column before b's
    v_strict: list  # (a, b, label): a's row before b's
    row_equal: list  # (a, b): same row if possible (horizontal relations)
    col_equal: list  # (a, b): same column if possible (vertical relations)
    flexible: set  # "next to" edges, which may flip
    checks: list  # (a, kind, b, label) for problems


def constraints(groups: list[Group], rels: list[Relation]) -> Constraints:
    c = Constraints([], [], [], [], set(), [])
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


@dataclasses.dataclass
class _Grid:
    """Column and row ranks per group; components (groups linked by relations) side by side, in mention order."""

    cols: list[int]
    rows: list[int]
    root: list[int]  # component of each group
    order: list[int]  # components in order of mention
    members: dict[int, list[int]]
    ncols: int


def _lift_onto_supports(rels: list[Relation], rows: list[int], row_class: list[int], row_succ: list[set[int]]) -> None:
    """ "on top of": pull the subject down to the row just above its nearest successor (its support, normally)."""
    n = len(rows)
    for r in rels:
        if r.kind == "on top of":
            c = row_class[r.a]
            below = [rows[b] for b in range(n) if row_class[b] in row_succ[c]]
            if below:
                for g in range(n):
                    if row_class[g] == c:
                        rows[g] = max(rows[g], min(below) - 1)


def _grid(groups: list[Group], rels: list[Relation], cons: Constraints, notes: list[str]) -> _Grid:
    n = len(groups)
    cols, _, _ = _ranks(n, cons.h_strict, cons.col_equal, notes, cons.flexible)
    rows, row_class, row_succ = _ranks(n, cons.v_strict, cons.row_equal, notes)
    _lift_onto_supports(rels, rows, row_class, row_succ)
    # components: linked by relations (absolute positions link everything); ranks restart at 0 in each
    comp = list(range(n))

    def find(x: int) -> int:
        while comp[x] != x:
            x = comp[x]
        return x

    any_position = any(g.positions for g in groups)
    links = [(r.a, r.b) for r in rels] + ([(0, g) for g in range(1, n)] if any_position else [])
    for a, b in links:
        comp[find(b)] = find(a)
    root = [find(g) for g in range(n)]
    order = list(dict.fromkeys(root))
    members = {k: [g for g in range(n) if root[g] == k] for k in order}
    offset, ncols = {}, 0
    for k in order:
        col_base, row_base = min(cols[g] for g in members[k]), min(rows[g] for g in members[k])
        for g in members[k]:
            cols[g] -= col_base
            rows[g] -= row_base
        offset[k], ncols = ncols, ncols + max(cols[g] for g in members[k]) + 1
    for g in range(n):
        cols[g] += offset[root[g]]
    return _Grid(cols, rows, root, order, members, ncols)


def _lines(rels: list[Relation], n: int, lines: bool) -> tuple[dict[int, str | None], set[int], set[int]]:
    """Per group: instances in one "row", one "column" or a grid (None); and the groups in horizontal / vertical
    relations."""
    horizontal = {r.a for r in rels if r.kind in H_KINDS} | {r.b for r in rels if r.kind in H_KINDS}
    vertical = {r.a for r in rels if r.kind not in H_KINDS} | {r.b for r in rels if r.kind not in H_KINDS}
    line: dict[int, str | None] = {g: None for g in range(n)}
    if lines:
        for g in range(n):
            line[g] = "row" if g in horizontal - vertical else "column" if g in vertical - horizontal else None
    return line, horizontal, vertical


def _cell_edges(groups: list[Group], grid: _Grid, line: dict[int, str | None]) -> tuple[list[float], dict]:
    """Column edges (shared) and row edges per component, columns/rows widened by the counts of lined-up groups."""
    lo, hi = MARGIN, 1 - MARGIN
    col_w = [1.0] * grid.ncols
    row_h = {k: [1.0] * (max(grid.rows[g] for g in grid.members[k]) + 1) for k in grid.order}
    for g, grp in enumerate(groups):
        c, r = grid.cols[g], grid.rows[g]
        if line[g] == "row":
            col_w[c] = max(col_w[c], grp.count)
        elif line[g] == "column":
            row_h[grid.root[g]][r] = max(row_h[grid.root[g]][r], grp.count)
    xs = [lo + (hi - lo) * sum(col_w[:k]) / sum(col_w) for k in range(grid.ncols + 1)]
    ys = {k: [lo + (hi - lo) * sum(h[:r]) / sum(h) for r in range(len(h) + 1)] for k, h in row_h.items()}
    return xs, ys


def _areas(groups: list[Group], grid: _Grid, line: dict[int, str | None], split_axis: str | None) -> dict[int, Box]:
    """Each group's area: its cell, shared with the other groups in it along ``split_axis`` in proportion to the
    counts."""
    xs, ys = _cell_edges(groups, grid, line)
    areas: dict[int, Box] = {}
    cells: dict[tuple[int, int], list[int]] = {}
    for g in range(len(groups)):
        cells.setdefault((grid.cols[g], grid.rows[g]), []).append(g)
    for (c, r), sharing in cells.items():
        k = grid.root[sharing[0]]
        area = [xs[c], ys[k][r], xs[c + 1], ys[k][r + 1]]
        axis = split_axis or ("x" if area[2] - area[0] >= area[3] - area[1] else "y")
        total = sum(groups[g].count for g in sharing)
        start = area[0] if axis == "x" else area[1]
        span = (area[2] - area[0]) if axis == "x" else (area[3] - area[1])
        for g in sharing:
            part = span * groups[g].count / total
            areas[g] = (
                [start, area[1], start + part, area[3]] if axis == "x" else [area[0], start, area[2], start + part]
            )
            start += part
    return areas


def _narrow(groups: list[Group], areas: dict[int, Box], horizontal: set[int], vertical: set[int], squeeze: float):
    """Absolute positions take the matching half of an area spanning the canvas; ``squeeze`` narrows a group's area
    across its relations' axis."""
    for g, grp in enumerate(groups):
        a, pos = areas[g], grp.positions
        if a[2] - a[0] > 0.75 and ("left" in pos) != ("right" in pos):
            m = (a[0] + a[2]) / 2
            a[0], a[2] = (a[0], m) if "left" in pos else (m, a[2])
        if a[3] - a[1] > 0.75 and ("top" in pos) != ("bottom" in pos):
            m = (a[1] + a[3]) / 2
            a[1], a[3] = (a[1], m) if "top" in pos else (m, a[3])
    if squeeze < 1:
        for g, grp in enumerate(groups):
            a, axis = areas[g], (1 if g in horizontal - vertical else 0 if g in vertical - horizontal else None)
            if axis is not None and grp.count > 1:
                m, half = (a[axis] + a[axis + 2]) / 2, (a[axis + 2] - a[axis]) * squeeze / 2
                a[axis], a[axis + 2] = m - half, m + half


def _stack(boxes: list[list[Box]], areas: dict[int, Box], rels: list[Relation]) -> None:
    """A support that sits on nothing moves up to its area's top; what sits on a support then moves down onto it
    (bottom edges = the support's top edge), centred over it as a whole; bottom-most supports first, so chains
    stack."""
    subjects = {r.a for r in rels if r.kind == "on top of"}
    supports = {r.b for r in rels if r.kind == "on top of"}
    for g in sorted(supports - subjects):
        shift(boxes[g], 0.0, areas[g][1] - min(b[1] for b in boxes[g]))
    for b in sorted(supports, key=lambda b: -max(box[3] for box in boxes[b])):
        on_it = sorted({r.a for r in rels if r.kind == "on top of" and r.b == b})
        dx = mid(boxes[b], 0) - mid([box for a in on_it for box in boxes[a]], 0)
        for a in on_it:
            shift(boxes[a], dx, min(box[1] for box in boxes[b]) - max(box[3] for box in boxes[a]))


def place(
    groups: list[Group],
    rels: list[Relation],
    cons: Constraints,
    notes: list[str],
    split_axis: str | None,
    lines: bool,
    squeeze: float,
) -> list[list[Box]]:
    """Boxes per group on a grid of columns (ranks along x) and rows (ranks along y).

    Each connected set of related groups (a component) gets its own block of columns, side by side in order of
    mention, with its own rows over the full height; an unrelated group is a component of one cell. Groups that
    end up in the same cell share it along ``split_axis`` ("x", "y", or None for the cell's longer side); a
    group's instances are laid out in a grid inside its area, or with ``lines`` in one row (left/right relations:
    no vertical spread to compete with the horizontal offset) or one column (above/below), with columns/rows
    widened by the counts. ``squeeze`` < 1 narrows a group's area across its relations' axis (a group only
    above/below others gets ``squeeze`` of its width), so instance grids keep the relation dominant. "on top of"
    then stacks the subject on its support, touching.
    """
    n = len(groups)
    lo, hi = MARGIN, 1 - MARGIN
    any_position = any(g.positions for g in groups)
    touched = set(range(n)) if any_position else {r.a for r in rels} | {r.b for r in rels}
    if not touched:  # nothing related: every instance on one grid, groups in order
        cells = iter(arrange((lo, lo, hi, hi), sum(g.count for g in groups)))
        return [[box_in(next(cells), aspect=ASPECTS.get(grp.head, 1.0)) for _ in range(grp.count)] for grp in groups]
    grid = _grid(groups, rels, cons, notes)
    line, horizontal, vertical = _lines(rels, n, lines)
    areas = _areas(groups, grid, line, split_axis)
    _narrow(groups, areas, horizontal, vertical, squeeze)
    subjects = {r.a for r in rels if r.kind == "on top of"}
    supports = {r.b for r in rels if r.kind == "on top of"}
    boxes: list[list[Box]] = [
        [
            box_in(
                cell,
                aspect=ASPECTS.get(grp.head, 1.0),
                wide=g in supports,
                width_scale=0.75 if g in subjects else 1.0,
            )
            for cell in arrange(tuple(areas[g]), grp.count, line[g])
        ]
        for g, grp in enumerate(groups)
    ]
    _stack(boxes, areas, rels)
    return boxes
