"""The shiftadd architecture's adder graphs: qflow's CSD solver, da4ml's within a budget, the exactness check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from flow.errors import FlowError
from flow.fixed import FixedType
from flow.rtl import cmvm, csd, generate
from flow.rtl.adder_graph import Adder, AdderGraph, Term
from tb.irgen import mlp_ir


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (16, 16), (2, 16), (9, 1)])
def test_csd_solver_implements_the_matrix(shape):
    """Random integer matrices (zeros, +-powers of two, negative and odd values): the graph's kernel is W."""
    rng = np.random.default_rng(sum(shape))
    w = rng.integers(-200, 201, size=shape)
    w[rng.random(shape) < 0.3] = 0
    w.flat[0] = -128
    g = csd.solve(w)
    np.testing.assert_array_equal(g.kernel().astype(np.int64), w)
    digits = sum(len(csd.csd_digits(int(v))) for v in w.ravel())
    assert len(g.adders) <= digits  # shared multiples never cost more than one adder per digit


def test_csd_digits():
    for v in range(-300, 301):
        d = csd.csd_digits(v)
        assert sum(s * (1 << k) for k, s in d) == v
        assert all(b[0] - a[0] >= 2 for a, b in zip(d, d[1:]))  # canonical: no two adjacent non-zero digits


def test_wrong_graph_fails_the_check():
    """The exactness check rejects a graph that computes another matrix."""
    w = np.array([[3], [5]])
    good = AdderGraph(
        2, [Adder(Term(0), Term(0, 1)), Adder(Term(2), Term(1, 0)), Adder(Term(3), Term(1, 2))], [Term(4)], "t"
    )
    good.check(w)
    bad = AdderGraph(2, good.adders, [Term(4, 0, True)], "t")
    with pytest.raises(FlowError, match="does not implement the weights"):
        bad.check(w)


def test_mantissa_ranges_and_widths():
    """x0 - x1 << 3 for x in [-4, 3]: exact range from the linear forms."""
    g = AdderGraph(2, [Adder(Term(0), Term(1, 3, True))], [Term(2)], "t")
    assert g.mantissa_ranges([-4, -4], [3, 3])[2] == (-4 - 24, 3 + 32)
    assert g.needed_bits(g.lsb_exponents(), 5)[2] == 5


def test_da4ml_over_budget_falls_back_and_says_so(tmp_path, monkeypatch):
    """A budget da4ml cannot meet: qflow's own solver, with da4ml's note in design.json."""
    monkeypatch.setenv("QFLOW_CACHE", str(tmp_path / "cache"))
    # The child's answer to a budget it cannot meet (a real child first spends minutes in numba's compilation on
    # a new environment: `test_shiftadd_with_da4ml_solver_is_bit_exact`, slow, runs the real one).
    monkeypatch.setattr(
        cmvm,
        "_run_child",
        lambda w, lo, hi, budget_s: {"status": "timeout", "note": (f"did not finish within the {budget_s:g} s budget")},
    )
    ir = mlp_ir("budget", [6, 5], seed=2)
    d = generate(ir, "shiftadd", tmp_path / "rtl", solver_budget_s=0.001)
    info = d.details["cmvm"]["fc1"]
    assert info["solver"] == "csd-greedy" and "budget" in info["da4ml"]
    with pytest.raises(FlowError, match="did not finish within"):
        cmvm.solve(ir.layers[0].weights, FixedType.parse("fixed<12,5>"), "da4ml", 0.001)


def test_knob_errors(tmp_path):
    ir = mlp_ir("k", [3, 2])
    with pytest.raises(FlowError, match="solver must be one of auto, da4ml, csd"):
        generate(ir, "shiftadd", tmp_path / "x", solver="magic")
    with pytest.raises(FlowError, match="adder_depth_cut must be an integer >= 0"):
        generate(ir, "shiftadd", tmp_path / "x", adder_depth_cut=-1)
    with pytest.raises(FlowError, match="solver_budget_s"):
        generate(ir, "shiftadd", tmp_path / "x", solver_budget_s=0)


@pytest.mark.parametrize("seed", range(12))
def test_value_ranges_hold_every_layer_output(seed):
    """The propagated ranges (which size shiftadd's adders) contain every layer output of random vectors, corner
    and saturating ones included; a range one value too narrow is caught."""
    from flow import reference
    from flow.rtl import value_ranges
    from flow.rtl.common import segments
    from tb.irgen import random_inputs, random_ir

    ir = random_ir(seed, mode_offset=seed)
    x, _ = random_inputs(ir, 2000, seed)
    trace = reference.run(ir, x)
    r = value_ranges.type_range(ir.input.type, ir.input.n)
    k = -1
    for seg in segments(ir, "shiftadd"):
        r = value_ranges.segment_output_ranges(seg, r)
        k += (seg.dense is not None) + len(seg.post)
        if k < 0:
            continue
        out = np.asarray(trace.raw[k], dtype=object)
        lo, hi = np.array([a for a, _ in r], dtype=object), np.array([b for _, b in r], dtype=object)
        assert (out >= lo).all() and (out <= hi).all()
        too_narrow = hi - 1
        hit = out.max(axis=0) == hi
        assert not hit.any() or (out[:, hit] > too_narrow[hit]).any()


def test_a_child_that_could_not_start_is_remembered_for_auto_and_retried_for_da4ml(tmp_path, monkeypatch):
    """auto builds a layer the same way on every run once the child failed to start; solver=da4ml tries again."""
    monkeypatch.setenv("QFLOW_CACHE", str(tmp_path / "cache"))
    calls = []

    def no_start(w, lo, hi, budget_s):
        calls.append(1)
        return {"status": "failed", "note": "could not start: numba compilation killed"}

    monkeypatch.setattr(cmvm, "_run_child", no_start)
    w = np.array([[3, -5], [7, 1]])
    t = FixedType.parse("fixed<8,3>")
    for _ in range(2):
        assert cmvm.solve(w, t, "auto").solver == "csd-greedy"
    assert len(calls) == 1  # the second run read the cached failure instead of waiting for the child
    with pytest.raises(FlowError, match="could not start"):
        cmvm.solve(w, t, "da4ml")
    assert len(calls) == 2


def test_user_knobs_are_typed_and_checked():
    """Card or command-line knobs: typed like the defaults, checked by the architecture; bad ones fail in one line."""
    from flow.rtl import parse_knob_args, settable_knobs, user_knobs

    got = user_knobs("shiftadd", parse_knob_args(["solver=csd", "solver_budget_s=30", "conv_ii=5"]))
    assert got == {"solver": "csd", "solver_budget_s": 30.0, "conv_ii": 5}
    assert user_knobs("shiftadd", {"solver_budget_s": 30}) == {"solver_budget_s": 30.0}
    assert "reuse_factors" not in settable_knobs("folded")  # --reuse sets it
    for given, match in (
        ({"solver": "magic"}, "solver must be one of"),
        ({"conv_ii": "0"}, "conv_ii must be an integer >= 1"),
        ({"conv_ii": "two"}, "'two' is not a int"),
        ({"adder_depth_cut": 1.5}, "is not a int"),
        ({"tree_pipeline": 2}, "no knob 'tree_pipeline'"),
    ):
        with pytest.raises(FlowError, match=match):
            user_knobs("shiftadd", given)
    with pytest.raises(FlowError, match="expected NAME=VALUE"):
        parse_knob_args(["solver"])


def test_card_knobs_are_checked_when_the_card_is_read(tmp_path):
    """hardware.knobs names the architecture and its knobs; a wrong one names the file and the field."""
    from flow.card import load_card

    qmodels = Path(__file__).parent.parent / "qmodels"
    base = (qmodels / "lut_charge.yaml").read_text()
    (tmp_path / "_lut.yaml").write_text((qmodels / "_lut.yaml").read_text())
    good = tmp_path / "lut_charge.yaml"
    card = yaml.safe_load(base)
    card.setdefault("hardware", {})["knobs"] = {"shiftadd": {"solver": "csd"}}
    good.write_text(yaml.safe_dump(card))
    assert load_card(good).hardware.knobs == {"shiftadd": {"solver": "csd"}}
    for knobs, match in (
        ({"shiftad": {"solver": "csd"}}, r"hardware\.knobs\.shiftad: unknown architecture"),
        ({"shiftadd": {"solver": "fast"}}, r"hardware\.knobs\.shiftadd: solver must be one of"),
        ({"shiftadd": "csd"}, r"hardware\.knobs\.shiftadd: must be a mapping"),
    ):
        card["hardware"]["knobs"] = knobs
        bad = good
        bad.write_text(yaml.safe_dump(card))
        with pytest.raises(FlowError, match=match) as err:
            load_card(bad)
        assert str(bad) in str(err.value)


# Few-bit types, so ties (dropped bits exactly 100..0) are frequent: a ReLU rounding to even, an output rounding up.
FOLD_TYPES = {"in_t": "fixed<4,2>", "w_t": "fixed<4,1>", "relu_t": "ufixed<4,2,RND_CONV,SAT>"}
FOLD_OUTS = ["fixed<6,3,RND,SAT>", "fixed<6,3,RND_CONV,WRAP>"]


@pytest.mark.parametrize("out_t", FOLD_OUTS)
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_rounding_folded_into_the_bias_is_bit_exact(tmp_path, monkeypatch, sim, out_t):
    """The rounding casts done as a floor after the bias (half LSB in the constant, ties fixed for RND_CONV)."""
    import flow.rtl.shiftadd as shiftadd
    from flow.sim import simulate
    from tb.irgen import write_vectors

    folds = []
    real = shiftadd._rounding_fold
    monkeypatch.setattr(shiftadd, "_rounding_fold", lambda *a: folds.append(real(*a)) or folds[-1])
    ir = mlp_ir("fold", [6, 8, 3], seed=5, **FOLD_TYPES, out_t=out_t)
    design = generate(ir, "shiftadd", tmp_path / "rtl", solver="csd")
    assert [f is not None for f in folds] == [True, True] and folds[0].post  # the ReLU's cast and the output's
    vectors = write_vectors(ir, tmp_path / "vectors.npz", 400, seed=2)
    r = simulate(design, vectors, sim, tmp_path / "sim", seed=2)
    assert r.passed and r.mismatches == 0, r.error
    if sim == "icarus":  # the same fold without its tie fix rounds ties up: the check sees it
        monkeypatch.setattr(shiftadd, "_rounding_fold", lambda *a: (f := real(*a)) and _no_ties(f))
        wrong = generate(ir, "shiftadd", tmp_path / "wrong", solver="csd")
        assert simulate(wrong, vectors, sim, tmp_path / "sim_wrong", seed=2).mismatches > 0


def _no_ties(fold):
    import dataclasses

    return dataclasses.replace(fold, to_even=False)
