"""flow.fixed against the real ap_fixed headers (compiled with g++), plus parsing and card notation."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flow.errors import FlowError
from flow.fixed import FixedType, Overflow, Rounding, cast, from_float, parse_card_bits

try:  # `python -m pytest` from the repository root
    from tests._aptypes import CastPair, Harness, corner_pairs, edge_raws, random_pairs
except ImportError:  # plain `pytest`: tests/ itself is on sys.path
    from _aptypes import CastPair, Harness, corner_pairs, edge_raws, random_pairs  # type: ignore[no-redef]

PAIR_SEED = 20240611
# 5 random pairs per rounding x overflow combination of the destination, widths 1..64, plus some up to 128.
PAIRS: list[CastPair] = corner_pairs() + random_pairs(PAIR_SEED, 140, 64) + random_pairs(PAIR_SEED + 1, 8, 128)


@pytest.fixture(scope="session")
def harness() -> Harness:
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: cannot build the ap_fixed oracle")
    return Harness(PAIRS)


def ours(pair: CastPair, raws: list[int], as_object: bool = False) -> list[int]:
    """flow.fixed.cast on int64 arrays when the values fit (object arrays otherwise, or when asked)."""
    fits = all(-(1 << 63) <= v < (1 << 63) for v in raws)
    arr = np.array(raws, dtype=object if as_object or not fits else np.int64)
    return [int(v) for v in cast(arr, pair.src.frac_bits, pair.dst)]


def mismatches(harness: Harness, idx: int, raws: list[int], dst: FixedType | None = None) -> list[tuple]:
    """Cases where flow.fixed (optionally with another destination type) differs from ap_fixed."""
    pair = harness.pairs[idx]
    expected = harness.cast([(idx, v) for v in raws])
    got = ours(CastPair(pair.src, dst or pair.dst), raws)
    return [(str(pair.src), str(pair.dst), v, e, g) for v, e, g in zip(raws, expected, got) if e != g]


def test_cast_edges_match_ap_fixed(harness: Harness) -> None:
    rng = np.random.default_rng(1)
    bad, n = [], 0
    for idx, pair in enumerate(harness.pairs):
        raws = edge_raws(pair.src, pair.dst, rng, 40)
        n += len(raws)
        bad += mismatches(harness, idx, raws)
    assert n > 5000
    assert not bad, f"{len(bad)} of {n} casts differ from ap_fixed, e.g. {bad[:5]}"


@st.composite
def pair_and_raws(draw: st.DrawFn) -> tuple[int, list[int]]:
    idx = draw(st.integers(0, len(PAIRS) - 1))
    src = PAIRS[idx].src
    raws = draw(st.lists(st.integers(src.min_raw, src.max_raw), min_size=1, max_size=40))
    return idx, raws


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair_and_raws())
def test_cast_property_matches_ap_fixed(harness: Harness, case: tuple[int, list[int]]) -> None:
    idx, raws = case
    assert not mismatches(harness, idx, raws)


def _float_cases(draw: st.DrawFn, t: FixedType) -> list[float]:
    """Doubles near t's grid (ties included), around its range, and anywhere at all."""
    near_grid = st.integers(-(1 << 20), 1 << 20).map(lambda k: float(np.ldexp(k, -t.frac_bits - 1)))
    around_range = st.floats(-4 * abs(t.min_value) - 4 * t.max_value - 1, 4 * t.max_value + 1, allow_nan=False)
    anything = st.floats(allow_nan=False, allow_infinity=True)
    return draw(st.lists(st.one_of(near_grid, around_range, anything), min_size=1, max_size=30))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_from_float_matches_ap_fixed_double_ctor(harness: Harness, data: st.DataObject) -> None:
    idx = data.draw(st.integers(0, len(PAIRS) - 1))
    dst = PAIRS[idx].dst
    xs = _float_cases(data.draw, dst)
    expected = harness.from_double([(idx, x) for x in xs])
    got = [int(v) for v in from_float(np.array(xs), dst)]
    assert got == expected, [(x, e, g) for x, e, g in zip(xs, expected, got) if e != g][:5]


def tricky_doubles(t: FixedType) -> list[float]:
    """Ties and their float neighbours in units of t's LSB, signed zeros, infinities, subnormals, huge values."""
    out = [0.0, -0.0, np.inf, -np.inf, 5e-324, -5e-324, 1e300, -1e300, 2.0**70, -(2.0**63)]
    for k in (-3, -1, 0, 1, 2, 5, t.max_raw, t.min_raw, -t.max_raw):
        for frac in (0.0, 0.5, 0.25):
            v = float(np.ldexp(k + frac, -t.frac_bits))
            out += [v, float(np.nextafter(v, np.inf)), float(np.nextafter(v, -np.inf))]
    return [v for v in out if not np.isnan(v)]


def test_from_float_tricky_doubles_match_ap_fixed(harness: Harness) -> None:
    bad, n = [], 0
    for idx, pair in enumerate(harness.pairs):
        xs = tricky_doubles(pair.dst)
        n += len(xs)
        expected = harness.from_double([(idx, x) for x in xs])
        got = [int(v) for v in from_float(np.array(xs), pair.dst)]
        bad += [(str(pair.dst), x, e, g) for x, e, g in zip(xs, expected, got) if e != g]
    assert not bad, f"{len(bad)} of {n} differ, e.g. {bad[:5]}"


def test_wrong_rounding_or_overflow_is_detected(harness: Harness) -> None:
    """The oracle comparison must fail when our semantics are wrong (a test that cannot fail is a defect)."""
    rng = np.random.default_rng(2)
    wrong_rounding, wrong_overflow = 0, 0
    for idx, pair in enumerate(harness.pairs):
        raws = edge_raws(pair.src, pair.dst, rng, 40)
        if pair.dst.rounding is Rounding.RND_CONV and pair.src.frac_bits > pair.dst.frac_bits:
            wrong_rounding += len(mismatches(harness, idx, raws, dataclasses.replace(pair.dst, rounding=Rounding.TRN)))
        if pair.dst.overflow is Overflow.SAT:
            wrong_overflow += len(mismatches(harness, idx, raws, dataclasses.replace(pair.dst, overflow=Overflow.WRAP)))
    assert wrong_rounding > 10
    assert wrong_overflow > 10


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_int64_and_object_paths_agree(data: st.DataObject) -> None:
    pair = PAIRS[data.draw(st.integers(0, len(PAIRS) - 1))]
    lo, hi = max(pair.src.min_raw, -(1 << 63)), min(pair.src.max_raw, (1 << 63) - 1)
    raws = data.draw(st.lists(st.integers(lo, hi), min_size=1, max_size=20))
    assert ours(pair, raws) == ours(pair, raws, as_object=True)


# ---------------------------------------------------------------------------------------------------------------
# Hand-checked semantics.

TIES = [2.5, -2.5, 3.5, -3.5, 2.25, -2.75]
ROUNDED = {
    Rounding.TRN: [2, -3, 3, -4, 2, -3],
    Rounding.TRN_ZERO: [2, -2, 3, -3, 2, -2],
    Rounding.RND: [3, -2, 4, -3, 2, -3],
    Rounding.RND_ZERO: [2, -2, 3, -3, 2, -3],
    Rounding.RND_MIN_INF: [2, -3, 3, -4, 2, -3],
    Rounding.RND_INF: [3, -3, 4, -4, 2, -3],
    Rounding.RND_CONV: [2, -2, 4, -4, 2, -3],
}


@pytest.mark.parametrize("mode", list(Rounding))
def test_rounding_modes_by_hand(mode: Rounding) -> None:
    t = FixedType(8, 8, rounding=mode)
    assert from_float(np.array(TIES), t).tolist() == ROUNDED[mode]
    # The same through cast: values with 2 fraction bits.
    assert cast(np.array([round(v * 4) for v in TIES]), 2, t).tolist() == ROUNDED[mode]


def test_overflow_modes_by_hand() -> None:
    x = np.array([200, -200, 127, -128, -127])
    assert cast(x, 0, FixedType(8, 8, overflow=Overflow.WRAP)).tolist() == [-56, 56, 127, -128, -127]
    assert cast(x, 0, FixedType(8, 8, overflow=Overflow.SAT)).tolist() == [127, -128, 127, -128, -127]
    assert cast(x, 0, FixedType(8, 8, overflow=Overflow.SAT_ZERO)).tolist() == [0, 0, 127, -128, -127]
    # SAT_SYM: the most negative value itself becomes -max.
    assert cast(x, 0, FixedType(8, 8, overflow=Overflow.SAT_SYM)).tolist() == [127, -127, 127, -127, -127]
    assert cast(x, 0, FixedType(8, 8, False, overflow=Overflow.SAT_SYM)).tolist() == [200, 0, 127, 0, 0]
    assert cast(x, 0, FixedType(8, 8, False, overflow=Overflow.WRAP)).tolist() == [200, 56, 127, 128, 129]
    # Quantization first: 127.5 rounds up to 128, which then saturates.
    assert cast(np.array([255]), 1, FixedType(8, 8, rounding=Rounding.RND, overflow=Overflow.SAT)).tolist() == [127]
    # Negative to unsigned with rounding: -0.25 rounds to 0 (not an underflow), -0.75 saturates to 0.
    u = FixedType(4, 4, False, Rounding.RND, Overflow.SAT)
    assert cast(np.array([-1, -3, 5]), 2, u).tolist() == [0, 0, 1]


def test_wide_types_are_exact_objects() -> None:
    t = FixedType(100, 100)
    raw = cast(np.array([3], dtype=np.int64), -90, t)
    assert raw.dtype == object and int(raw[0]) == 3 << 90
    u64 = FixedType(64, 64, False, overflow=Overflow.SAT)
    assert cast(np.array([-5, 7]), 0, u64).tolist() == [0, 7]
    assert cast(np.array([1 << 70], dtype=object), 0, u64).tolist() == [(1 << 64) - 1]
    assert FixedType(64, 64).from_float(np.array([2.0**70])).tolist() == [0]  # WRAP of 2**70 modulo 2**64
    # Huge shifts: x = 1.5 * 2**-200 cast to 1 fraction bit.
    assert cast(np.array([3], dtype=np.int64), 201, FixedType(8, 7, rounding=Rounding.RND)).tolist() == [0]
    assert cast(np.array([-3], dtype=np.int64), 201, FixedType(8, 7)).tolist() == [-1]


def test_from_float_rejects_nan() -> None:
    with pytest.raises(FlowError, match="NaN"):
        from_float(np.array([0.0, np.nan]), FixedType(8, 3))


def test_properties() -> None:
    t = FixedType.parse("fixed<12,3,RND_CONV,SAT>")
    assert (t.frac_bits, t.min_raw, t.max_raw, t.lsb) == (9, -2048, 2047, 2.0**-9)
    assert (t.min_value, t.max_value) == (-4.0, 4.0 - 2.0**-9)
    u = FixedType.parse("ufixed<8,-2>")
    assert (u.frac_bits, u.min_raw, u.max_raw, u.max_value) == (10, 0, 255, 255 / 1024)
    assert FixedType(4, 8).lsb == 16.0
    assert np.array_equal(t.to_float(np.array([-2048, 1])), [-4.0, 2.0**-9])


# ---------------------------------------------------------------------------------------------------------------
# Parsing and card notation.


@pytest.mark.parametrize(
    "text, expected",
    [
        ("fixed<16,6,RND_CONV,SAT>", FixedType(16, 6, True, Rounding.RND_CONV, Overflow.SAT)),
        ("ufixed<8,3,RND_CONV,SAT>", FixedType(8, 3, False, Rounding.RND_CONV, Overflow.SAT)),
        ("ap_fixed<16,6>", FixedType(16, 6)),
        ("ap_ufixed<8,0,RND,SAT_SYM>", FixedType(8, 0, False, Rounding.RND, Overflow.SAT_SYM)),
        ("ap_fixed<18, 8, AP_RND_ZERO, AP_SAT_ZERO>", FixedType(18, 8, True, Rounding.RND_ZERO, Overflow.SAT_ZERO)),
        ("fixed<16,6,RND,SAT,0>", FixedType(16, 6, True, Rounding.RND, Overflow.SAT)),
        ("fixed<8,-2,TRN_ZERO>", FixedType(8, -2, True, Rounding.TRN_ZERO)),
        ("int<8>", FixedType(8, 8)),
        ("uint<4>", FixedType(4, 4, False)),
        ("ap_int<8>", FixedType(8, 8)),
        ("ap_uint<1>", FixedType(1, 1, False)),
    ],
)
def test_parse(text: str, expected: FixedType) -> None:
    assert FixedType.parse(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("fixed<16,6,RND,SAT,2>", "saturation bits"),
        ("fixed<16>", "expected <width,int_bits"),
        ("fixed<a,3>", "width must be an integer"),
        ("fixed<16,6,ROUND>", "unknown rounding mode 'ROUND'"),
        ("fixed<16,6,RND,CLAMP>", "unknown overflow mode"),
        ("fixed<0,0>", "width must be >= 1"),
        ("int<8,2>", "one argument"),
        ("float", "not a fixed-point type"),
        ("fixed<16,6", "not a fixed-point type"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(FlowError, match=message):
        FixedType.parse(text)


@settings(max_examples=300)
@given(
    st.integers(1, 200),
    st.integers(-300, 300),
    st.booleans(),
    st.sampled_from(list(Rounding)),
    st.sampled_from(list(Overflow)),
)
def test_str_parse_round_trip(width: int, int_bits: int, signed: bool, r: Rounding, o: Overflow) -> None:
    t = FixedType(width, int_bits, signed, r, o)
    assert FixedType.parse(str(t)) == t


def test_canonical_strings() -> None:
    assert str(FixedType(12, 3, True, Rounding.RND_CONV, Overflow.SAT)) == "fixed<12,3,RND_CONV,SAT>"
    assert str(FixedType(8, 3, False, Rounding.RND_CONV, Overflow.SAT)) == "ufixed<8,3,RND_CONV,SAT>"
    assert str(FixedType(8, 1)) == "fixed<8,1>"
    assert str(FixedType(8, 1, rounding=Rounding.RND)) == "fixed<8,1,RND>"
    assert str(FixedType(8, 1, overflow=Overflow.SAT)) == "fixed<8,1,TRN,SAT>"


def test_from_card() -> None:
    assert FixedType.from_card((12, 2), "bits") == FixedType.parse("fixed<12,3,RND_CONV,SAT>")
    assert FixedType.from_card("(8,3)", "relu") == FixedType.parse("ufixed<8,3,RND_CONV,SAT>")
    assert FixedType.from_card([8, 0], "bits") == FixedType.parse("fixed<8,1,RND_CONV,SAT>")
    assert FixedType.from_card("8,8", "relu") == FixedType.parse("ufixed<8,8,RND_CONV,SAT>")


@pytest.mark.parametrize(
    "bits, kind, message",
    [
        ((12, 13), "bits", r"\(12,13\): integer bits must be < width 12"),
        ((12, 12), "bits", r"\(12,12\): integer bits must be < width 12"),
        ((8, 9), "relu", r"\(8,9\): integer bits must be <= width 8"),
        ((0, 0), "relu", "width must be >= 1"),
        ((8, -1), "bits", "integer bits must be >= 0"),
        ("(8,x)", "bits", "bad bitwidth"),
        ((8, 2), "tanh", "unknown quantizer kind"),
    ],
)
def test_from_card_errors(bits: tuple[int, int] | str, kind: str, message: str) -> None:
    with pytest.raises(FlowError, match=message):
        FixedType.from_card(bits, kind)  # type: ignore[arg-type]


def test_parse_card_bits() -> None:
    assert parse_card_bits("(12,2)") == (12, 2)
    assert parse_card_bits(" 12 , 2 ") == (12, 2)
    assert parse_card_bits([12, 2]) == (12, 2)
    assert parse_card_bits((16, 6)) == (16, 6)
    for bad in ("(12)", "12,2,3", [1, 2, 3], "(a,b)"):
        with pytest.raises(FlowError):
            parse_card_bits(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [5, np.int64(5), -(2**70), np.array(7)])
def test_zero_dimensional_inputs_on_the_object_path(value):
    """A Python int or NumPy scalar, destination wider than 63 bits (or a value beyond int64): a 0-d result."""
    wide = FixedType.parse("fixed<80,40>")
    got = cast(value, 0, wide)
    assert got.shape == () and int(got) == cast(np.array([int(value)], dtype=object), 0, wide)[0]
    assert int(got) == (int(value) << 40) % (1 << 80) - ((1 << 80) if (int(value) << 40) % (1 << 80) >= 1 << 79 else 0)
    assert from_float(1.5, wide).shape == () and int(from_float(np.float64(1.5), wide)) == 3 << 39
    assert from_float([1.5], wide).shape == (1,)
