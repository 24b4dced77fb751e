"""qflow's own CMVM solver: canonical signed digits with greedy sharing (the fallback when da4ml's is too slow).

Two kinds of sharing, both deterministic:

1. Per input, every distinct odd multiple ``c * x`` is built once (reused by every output that needs it), from an
   already built multiple in one adder when possible (``c = a * 2**s +- b``), else from its CSD digits.
2. Across outputs, the two-term pattern (``t1 +- t2 << d``) that occurs in the most output sums becomes one adder,
   repeatedly (Hartley's greedy common-subexpression elimination), while a column has at most
   :data:`PAIR_TERMS_LIMIT` terms (the pair count grows with its square) and for at most :data:`MAX_ROUNDS` rounds.

Each output then sums its remaining terms in a balanced tree, common low zero bits shifted out of each adder.
"""

from __future__ import annotations

import heapq
from collections import Counter

import numpy as np

from flow.rtl.adder_graph import Adder, AdderGraph, Term

PAIR_TERMS_LIMIT = 400
MAX_ROUNDS = 20_000

Pattern = tuple[int, int, int, bool]  # (node 1, node 2, shift of 2 relative to 1, opposite signs)


def csd_digits(v: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``v`` as (shift, +-1), lowest first."""
    digits = []
    s = 0
    while v:
        if v & 1:
            d = 2 - (v & 3)
            digits.append((s, d))
            v -= d
        v >>= 1
        s += 1
    return digits


def odd_part(v: int) -> tuple[int, int]:
    """(odd c, shift s) with ``|v| = c * 2**s`` (v != 0)."""
    v = abs(v)
    s = (v & -v).bit_length() - 1
    return v >> s, s


class _Builder:
    """Adders appended to a growing graph."""

    def __init__(self, n_in: int) -> None:
        self.n_in = n_in
        self.adders: list[Adder] = []

    def add(self, a: Term, b: Term) -> Term:
        """A term equal to ``a + b``: common low shifts and a common sign are kept outside the adder."""
        m = min(a.shift, b.shift)
        neg = a.neg and b.neg
        a2 = Term(a.node, a.shift - m, a.neg and not neg)
        b2 = Term(b.node, b.shift - m, b.neg and not neg)
        self.adders.append(Adder(a2, b2))
        return Term(self.n_in + len(self.adders) - 1, m, neg)


def _multiples(b: _Builder, i: int, consts: list[int]) -> dict[int, Term]:
    """Term for ``c * x_i`` for every odd ``c`` in ``consts`` (and 1)."""
    have: dict[int, Term] = {1: Term(i)}
    top = max(consts, default=1).bit_length() + 1

    def one_adder(c: int) -> Term | None:
        for a in sorted(have):
            for s in range(1, top + 1):
                r = c - (a << s)
                if r and abs(r) in have:
                    t = have[abs(r)]
                    return b.add(Term(have[a].node, have[a].shift + s, have[a].neg), Term(t.node, t.shift, r < 0))
        return None

    def build(c: int) -> Term:
        if c in have:
            return have[c]
        t = one_adder(c)
        if t is None:
            d = csd_digits(c)[0][1]  # c is odd: its lowest digit is at shift 0
            rest, s = odd_part(c - d)
            hi = build(rest)
            t = b.add(Term(hi.node, hi.shift + s, hi.neg), Term(i, 0, d < 0))
        have[c] = t
        return t

    for c in sorted(set(consts), key=lambda c: (len(csd_digits(c)), c)):
        build(c)
    return have


def _pattern(t1: Term, t2: Term) -> tuple[Pattern, Term]:
    """The pattern of a pair and the first term (whose shift and sign the shared adder keeps)."""
    if (t2.shift, t2.node) < (t1.shift, t1.node):
        t1, t2 = t2, t1
    return (t1.node, t2.node, t2.shift - t1.shift, t1.neg != t2.neg), t1


def _column_patterns(col: list[Term]) -> set[Pattern]:
    out = set()
    for x in range(len(col)):
        for y in range(x + 1, len(col)):
            out.add(_pattern(col[x], col[y])[0])
    return out


def _share_pairs(b: _Builder, cols: list[list[Term]]) -> int:
    """Greedy pair sharing across columns; returns the number of rounds (shared adders)."""
    active = [j for j, c in enumerate(cols) if len(c) <= PAIR_TERMS_LIMIT]
    sets = {j: _column_patterns(cols[j]) for j in active}
    count: Counter[Pattern] = Counter()
    where: dict[Pattern, set[int]] = {}
    for j, ps in sets.items():
        for p in ps:
            count[p] += 1
            where.setdefault(p, set()).add(j)
    heap = [(-n, p) for p, n in count.items() if n >= 2]
    heapq.heapify(heap)
    rounds = 0
    while heap and rounds < MAX_ROUNDS:
        n, p = heapq.heappop(heap)
        if -n != count.get(p, 0) or -n < 2:
            continue
        n1, n2, d, opp = p
        shared = b.add(Term(n1), Term(n2, d, opp))
        rounds += 1
        for j in sorted(where.get(p, ())):
            col = cols[j]
            pair = next(
                (x, y) for x in range(len(col)) for y in range(x + 1, len(col)) if _pattern(col[x], col[y])[0] == p
            )
            first = _pattern(col[pair[0]], col[pair[1]])[1]
            new = Term(shared.node, first.shift + shared.shift, first.neg != shared.neg)
            cols[j] = [t for k, t in enumerate(col) if k not in pair] + [new]
            ps = _column_patterns(cols[j])
            for q in sets[j] - ps:
                count[q] -= 1
                where[q].discard(j)
            for q in ps - sets[j]:
                count[q] += 1
                where.setdefault(q, set()).add(j)
                if count[q] >= 2:
                    heapq.heappush(heap, (-count[q], q))
            sets[j] = ps
    return rounds


def _tree(b: _Builder, terms: list[Term]) -> Term | None:
    """A balanced adder tree over ``terms`` (None when there is none)."""
    terms = sorted(terms, key=lambda t: (t.shift, t.node, t.neg))
    while len(terms) > 1:
        nxt = [b.add(terms[k], terms[k + 1]) for k in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    return terms[0] if terms else None


def solve(weights: np.ndarray) -> AdderGraph:
    """An adder graph for ``x @ weights`` (integer matrix ``(n_in, n_out)``)."""
    w = np.asarray(weights)
    n_in, n_out = w.shape
    b = _Builder(n_in)
    cols: list[list[Term]] = [[] for _ in range(n_out)]
    for i in range(n_in):
        nz = [int(v) for v in w[i] if v]
        have = _multiples(b, i, [odd_part(v)[0] for v in nz])
        for j in range(n_out):
            v = int(w[i, j])
            if v:
                c, s = odd_part(v)
                t = have[c]
                cols[j].append(Term(t.node, t.shift + s, t.neg != (v < 0)))
    multiples = len(b.adders)
    shared = _share_pairs(b, cols)
    outputs = [_tree(b, col) for col in cols]
    details = {"multiple_adders": multiples, "shared_pair_adders": shared}
    return AdderGraph(n_in, b.adders, outputs, "csd-greedy", details)
