"""Fixed-point bin-ratio features: log1p against a decimal oracle, the diagonal difference against a loop."""

from __future__ import annotations

import decimal
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flow.errors import FlowError
from flow.features import diagonal_difference, difference_type, log1p_fixed, log1p_table, log1p_type
from flow.fixed import FixedType, Overflow, Rounding

Log1p = Callable[[np.ndarray, int, FixedType], np.ndarray]


def oracle_log1p(count: int, out: FixedType) -> int:
    """Raw mantissa of the round-half-even, saturated log1p(count), from 60-digit decimal arithmetic."""
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        scaled = decimal.Decimal(count + 1).ln() * decimal.Decimal(2) ** out.frac_bits
        raw = int(scaled.to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
    return min(max(raw, out.min_raw), out.max_raw)


def log1p_mismatches(fn: Log1p, counts: np.ndarray, count_width: int, out: FixedType) -> list[tuple[int, int, int]]:
    """(count, expected, got) wherever ``fn`` differs from the oracle."""
    got = fn(counts, count_width, out)
    want = [oracle_log1p(int(c), out) for c in counts]
    return [(int(c), w, int(g)) for c, w, g in zip(counts, want, got) if w != g]


def rnd_conv_sat(width: int, int_bits: int, signed: bool = False) -> FixedType:
    return FixedType(width, int_bits, signed=signed, rounding=Rounding.RND_CONV, overflow=Overflow.SAT)


@st.composite
def counts_and_type(draw: st.DrawFn) -> tuple[np.ndarray, int, FixedType]:
    count_width = draw(st.integers(1, 32))
    width = draw(st.integers(1, 40))
    out = rnd_conv_sat(width, draw(st.integers(-4, width + 2)), draw(st.booleans()))
    counts = draw(st.lists(st.integers(0, (1 << count_width) - 1), min_size=1, max_size=40))
    return np.array(counts, dtype=np.int64), count_width, out


@settings(max_examples=150, deadline=None)
@given(counts_and_type())
def test_log1p_is_the_correctly_rounded_saturated_value(case):
    counts, count_width, out = case
    assert not log1p_mismatches(log1p_fixed, counts, count_width, out)


def test_log1p_full_16_bit_table_matches_the_oracle_and_never_saturates_in_its_own_type():
    out = log1p_type(16, 8)
    assert out == rnd_conv_sat(12, 4)  # log1p(65535) = 11.09 needs 4 integer bits
    table = log1p_table(16, out)
    assert table.shape == (65536,) and table.max() < out.max_raw
    assert (np.diff(table) >= 0).all()
    sample = np.r_[np.arange(300), np.arange(300, 65536, 97), 65535]
    assert not log1p_mismatches(log1p_fixed, sample, 16, out)
    np.testing.assert_array_equal(log1p_fixed(np.arange(65536).reshape(256, 256), 16, out).ravel(), table)


def test_log1p_saturates_at_the_declared_maximum():
    out = rnd_conv_sat(6, 2)  # ufixed<6,2>: max 3.9375; log1p(c) > 3.97 from c = 52 on
    got = log1p_fixed(np.array([51, 52, 1000, 65535]), 16, out)
    assert got[-1] == out.max_raw and got[-2] == out.max_raw
    assert not log1p_mismatches(log1p_fixed, np.arange(65536, step=61), 16, out)


def test_near_ties_are_settled_exactly():
    # frac_bits large enough that float64 alone cannot resolve every rounding decision.
    out = rnd_conv_sat(62, 6)
    counts = np.array([1, 2, 3, 1 << 20, (1 << 31) - 1, (1 << 40) + 12345], dtype=np.int64)
    assert not log1p_mismatches(log1p_fixed, counts, 41, out)


def test_known_wrong_log1p_is_caught():
    out = log1p_type(16, 8)

    def float32_round_half_up(counts, count_width, out):  # a plausible but wrong shortcut
        return np.floor(np.log1p(counts.astype(np.float32)) * np.float32(256) + np.float32(0.4)).astype(np.int64)

    assert log1p_mismatches(float32_round_half_up, np.arange(4096), 16, out)


@pytest.mark.parametrize(
    ("counts", "count_width", "message"),
    [
        (np.array([65536]), 16, "0..65535"),
        (np.array([-1]), 16, "0..65535"),
        (np.array([1.5]), 16, "integers"),
        (np.array([1]), 0, "count width"),
    ],
)
def test_log1p_bad_inputs_give_one_line(counts, count_width, message):
    with pytest.raises(FlowError, match=message):
        log1p_fixed(counts, count_width, log1p_type(16, 8))


def loop_difference(L: np.ndarray, k: int) -> np.ndarray:
    """The definition, one pair at a time."""
    n = L.shape[-1]
    out = np.zeros((L.shape[0], n - 1), dtype=np.int64)
    for s in range(L.shape[0]):
        for i in range(n - k - 1):
            out[s, i] = int(L[s, i + k + 1]) - int(L[s, i])
    return out


def difference_mismatches(fn: Callable[[np.ndarray, int], np.ndarray], L: np.ndarray, k: int) -> int:
    """Entries where ``fn`` differs from the definition (padding included)."""
    return int((fn(L, k) != loop_difference(L, k)).sum())


@st.composite
def logs_and_k(draw: st.DrawFn) -> tuple[np.ndarray, int, FixedType]:
    in_type = rnd_conv_sat(draw(st.integers(1, 30)), draw(st.integers(-2, 8)), draw(st.booleans()))
    n = draw(st.integers(2, 40))
    k = draw(st.integers(0, n - 2))
    raws = st.integers(in_type.min_raw, in_type.max_raw)
    rows = draw(st.lists(st.lists(raws, min_size=n, max_size=n), min_size=1, max_size=4))
    return np.array(rows, dtype=np.int64), k, in_type


@settings(max_examples=150, deadline=None)
@given(logs_and_k())
def test_diagonal_difference_is_the_definition_and_fits_its_type(case):
    L, k, in_type = case
    assert difference_mismatches(diagonal_difference, L, k) == 0
    got = diagonal_difference(L, k)
    assert not got[:, L.shape[1] - k - 1 :].any()  # zero padding
    diff_t = difference_type(in_type)
    assert diff_t.frac_bits == in_type.frac_bits and diff_t.signed
    assert got.min() >= diff_t.min_raw and got.max() <= diff_t.max_raw


def test_difference_type_is_tight():
    for in_type in (rnd_conv_sat(12, 4), rnd_conv_sat(12, 4, signed=True)):
        extremes = np.array([[in_type.min_raw, in_type.max_raw], [in_type.max_raw, in_type.min_raw]])
        d = diagonal_difference(extremes, 0)[:, 0]
        diff_t = difference_type(in_type)
        # One bit fewer would not hold both extremes.
        narrower = FixedType(diff_t.width - 1, diff_t.int_bits - 1, signed=True)
        assert not (narrower.min_raw <= d.min() and d.max() <= narrower.max_raw)


def test_known_wrong_difference_is_caught():
    def off_by_one(L, k):  # L[i+k] - L[i] instead of L[i+k+1] - L[i]
        return diagonal_difference(L, k - 1)[..., : L.shape[-1] - 1] if k else np.zeros_like(L[..., 1:])

    L = np.arange(40, dtype=np.int64).reshape(2, 20) ** 2
    assert difference_mismatches(off_by_one, L, 3) > 0


def test_features_match_the_float_differences_within_rounding():
    from flow.data import generate_spectra

    counts, _ = generate_spectra(18, seed=3)
    counts = np.minimum(counts, 65535)  # 16-bit channel counters
    out = log1p_type(16, 10)
    raw = diagonal_difference(log1p_fixed(counts, 16, out), 5)
    logs = np.log1p(counts.astype(np.float64))
    want = np.zeros_like(raw, dtype=np.float64)
    want[:, : 1024 - 6] = logs[:, 6:] - logs[:, :-6]
    assert np.abs(raw * out.lsb - want).max() <= out.lsb + 1e-6  # two roundings of at most half an LSB each


def test_dataset_features_are_the_feature_stage_values():
    """What a diag_NN member trains on is the stage's raw difference, exactly; counts saturate at the width."""
    from flow.data import diagonal_features, generate_spectra
    from flow.features import FeatureStage

    counts, _ = generate_spectra(18, seed=3)
    counts[0, 100] = 70000  # beyond a 16-bit counter
    stage = FeatureStage(16, 8)
    raw = diagonal_difference(log1p_fixed(np.minimum(counts, 65535), 16, log1p_type(16, 8)), 4)
    np.testing.assert_array_equal(diagonal_features(counts, 4, stage=stage), raw * 2.0**-8)
    clipped = diagonal_features(counts, 4, clip=True, stage=stage)
    np.testing.assert_array_equal(clipped, np.maximum(raw, 0) * 2.0**-8)
