"""Adder graphs for constant matrix-vector products: the form both CMVM solvers return and ``shiftadd`` emits.

A graph computes ``y = x @ W`` for integer inputs ``x`` (``n_in`` of them) and an integer matrix ``W``. Node
``k < n_in`` is input ``k``; every later node is ``a + b`` of two :class:`Term` s (a node shifted left and maybe
negated). Each output is a term or ``None`` (an all-zero column). Shifts may be negative: a node's value is then
a multiple of a power of two below one, tracked as its LSB exponent, so every wire holds an integer mantissa.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from flow.errors import FlowError

DENSE_FORMS_LIMIT = 4_000_000  # n_in x nodes up to which value ranges come from exact linear forms


@dataclass(frozen=True)
class Term:
    """``(-1)**neg * node * 2**shift``."""

    node: int
    shift: int = 0
    neg: bool = False


@dataclass(frozen=True)
class Adder:
    """One adder: ``a + b``."""

    a: Term
    b: Term


@dataclass
class AdderGraph:
    """A multiplierless ``x @ W``: adders over the inputs, one output term per column."""

    n_in: int
    adders: list[Adder]
    outputs: list[Term | None]
    solver: str
    details: dict = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        return self.n_in + len(self.adders)

    def operands(self, k: int) -> tuple[Term, Term]:
        """The two terms of node ``k`` (an adder)."""
        add = self.adders[k - self.n_in]
        return add.a, add.b

    def lsb_exponents(self) -> list[int]:
        """Per node, the exponent of its lowest possibly non-zero bit (inputs: 0)."""
        exp = [0] * self.n_in
        for add in self.adders:
            exp.append(min(exp[add.a.node] + add.a.shift, exp[add.b.node] + add.b.shift))
        return exp

    def levels(self) -> list[int]:
        """Adder depth of every node (inputs: 0)."""
        lv = [0] * self.n_in
        for add in self.adders:
            lv.append(1 + max(lv[add.a.node], lv[add.b.node]))
        return lv

    def kernel(self) -> np.ndarray:
        """The matrix the graph implements, from its exact linear forms (object integers)."""
        forms = self._forms(np.identity(self.n_in, dtype=np.int64).astype(object))
        w = np.zeros((self.n_in, len(self.outputs)), dtype=object)
        for j, t in enumerate(self.outputs):
            if t is not None:
                w[:, j] = _scaled(forms[t.node], t.shift, t.neg)
        return w

    def _forms(self, start: np.ndarray) -> list[np.ndarray]:
        """Each node's value as the rows of ``start`` combined (exact; exponents applied, may be fractions)."""
        forms = [start[k] for k in range(self.n_in)]
        for add in self.adders:
            a, b = add.a, add.b
            forms.append(_scaled(forms[a.node], a.shift, a.neg) + _scaled(forms[b.node], b.shift, b.neg))
        return forms

    def check(self, weights: np.ndarray) -> None:
        """A FlowError unless the graph implements exactly ``weights``."""
        got = self.kernel()
        want = np.asarray(weights).astype(object)
        if got.shape != want.shape or not (got == want).all():
            bad = np.argwhere(got != want)[0] if got.shape == want.shape else None
            raise FlowError(f"{self.solver} adder graph does not implement the weights (first difference at {bad})")

    def mantissa_ranges(self, lo: list[int], hi: list[int]) -> list[tuple[int, int]]:
        """Per node, [min, max] of its mantissa (value / 2**lsb) for inputs in [lo, hi].

        Exact (from linear forms over the inputs) when the graph is small enough, else interval arithmetic (a
        sound bound: it ignores that two operands may share inputs).
        """
        exp = self.lsb_exponents()
        if self.n_in * self.n_nodes <= DENSE_FORMS_LIMIT:
            forms = self._int_forms(exp)
            lo_a, hi_a = np.asarray(lo, dtype=object), np.asarray(hi, dtype=object)
            out = []
            for f in forms:
                a, b = f * lo_a, f * hi_a
                out.append((int(np.minimum(a, b).sum()), int(np.maximum(a, b).sum())))
            return out
        ranges = [(int(a), int(b)) for a, b in zip(lo, hi)]
        for k, add in enumerate(self.adders, start=self.n_in):
            r = (0, 0)
            for t in (add.a, add.b):
                s = exp[t.node] + t.shift - exp[k]
                a, b = ranges[t.node][0] << s, ranges[t.node][1] << s
                if t.neg:
                    a, b = -b, -a
                r = (r[0] + a, r[1] + b)
            ranges.append(r)
        return ranges

    def _int_forms(self, exp: list[int]) -> list[np.ndarray]:
        """Each node's mantissa as integer coefficients of the inputs."""
        forms = [np.eye(1, self.n_in, k, dtype=np.int64).ravel().astype(object) for k in range(self.n_in)]
        for k, add in enumerate(self.adders, start=self.n_in):
            f = np.zeros(self.n_in, dtype=object)
            for t in (add.a, add.b):
                part = forms[t.node] * (1 << (exp[t.node] + t.shift - exp[k]))
                f = f - part if t.neg else f + part
            forms.append(f)
        return forms

    def needed_bits(self, exp: list[int], out_bits: int) -> list[int]:
        """Per node, how many low mantissa bits its consumers need when outputs matter modulo ``2**out_bits``."""
        need = [0] * self.n_nodes
        for t in self.outputs:
            if t is not None:
                need[t.node] = max(need[t.node], out_bits - (exp[t.node] + t.shift))
        for k in range(self.n_nodes - 1, self.n_in - 1, -1):
            for t in self.operands(k):
                need[t.node] = max(need[t.node], need[k] - (exp[t.node] + t.shift - exp[k]))
        return need

    def to_dict(self) -> dict:
        """Figures for design.json."""
        return {
            "solver": self.solver,
            "adders": len(self.adders),
            "depth": max(self.levels(), default=0),
            **self.details,
        }


def _scaled(form: np.ndarray, shift: int, neg: bool) -> np.ndarray:
    """``(-1)**neg * form * 2**shift``, exact (a negative shift gives fractions)."""
    f = form * (1 << shift) if shift >= 0 else form * Fraction(1, 1 << -shift)
    return -f if neg else f
