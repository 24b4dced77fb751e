"""Member training shares: which training rows each ensemble member learns from (bagging of the real data's kind).

The real bin-ratio members were variance-limited (few spectra per class each); a member trained on its own share
of the training spectra reproduces that, so the members' mistakes differ. ``full``: every row (the single cards);
``disjoint``: the rows split class by class into ``count`` near-equal parts, part ``index`` (the parts are disjoint
and cover every row); ``bootstrap``: a ``1/count``-sized draw with replacement, its own per member.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MAX_SHARES = 1000


def _full(labels: np.ndarray, share: MemberShare) -> np.ndarray:
    return np.arange(labels.size)


def _disjoint(labels: np.ndarray, share: MemberShare) -> np.ndarray:
    rng = np.random.default_rng((share.seed, 7))  # one permutation for every member: the parts stay disjoint
    parts = [np.array_split(rng.permutation(np.flatnonzero(labels == c)), share.count) for c in _classes(labels)]
    return np.sort(np.concatenate([p[share.index] for p in parts]))


def _bootstrap(labels: np.ndarray, share: MemberShare) -> np.ndarray:
    rng = np.random.default_rng((share.seed, 11, share.index))  # the member's own draw
    rows = []
    for c in _classes(labels):
        own = np.flatnonzero(labels == c)
        rows.append(rng.choice(own, size=max(1, round(own.size / share.count)), replace=True))
    return np.sort(np.concatenate(rows))


def _classes(labels: np.ndarray) -> np.ndarray:
    return np.unique(labels)


MODES: dict[str, Callable[[np.ndarray, MemberShare], np.ndarray]] = {
    "full": _full,
    "disjoint": _disjoint,
    "bootstrap": _bootstrap,
}


@dataclass(frozen=True)
class MemberShare:
    """Member ``index`` of ``count`` takes its ``mode`` share of the training rows, drawn from ``seed``."""

    mode: str = "full"
    index: int = 0
    count: int = 1
    seed: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"share mode {self.mode!r}; expected one of {', '.join(MODES)}")
        if not 0 <= self.index < self.count <= MAX_SHARES:
            raise ValueError(f"share {self.index} of {self.count}: expected 0 <= index < count <= {MAX_SHARES}")

    def rows(self, labels: np.ndarray) -> np.ndarray:
        """Sorted indices into the training rows (labels ``labels``) this member trains on."""
        return MODES[self.mode](np.asarray(labels), self)

    def as_dict(self) -> dict:
        """Plain values, for a dataset spec and its fingerprint."""
        return {"mode": self.mode, "index": self.index, "count": self.count, "seed": self.seed}
