"""The vote kind: hard, soft and logit_sum against written-out oracles, the tie rule, tables, validation, JSON."""

from __future__ import annotations

import decimal
import functools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flow import reference
from flow.errors import FlowError
from flow.fixed import FixedType, Overflow, Rounding, cast
from flow.ir import IR, InputSpec, Task
from flow.layers import VoteLayer, layer_from_dict
from flow.layers.vote import SoftmaxTypes, VoteMethod, class_index_type, exp_table, recip_table

N_CLASSES = 5
LOGIT_TYPES = [FixedType.parse("fixed<6,3,RND_CONV,SAT>"), FixedType.parse("fixed<8,2,RND_CONV,SAT>")]


def first_max(values: list) -> int:
    """The lowest index holding the largest value: the documented tie rule."""
    best = max(values)
    return next(i for i, v in enumerate(values) if v == best)


def oracle_hard(members: list[list[int]]) -> int:
    counts = [0] * N_CLASSES
    for logits in members:
        counts[first_max(logits)] += 1
    return first_max(counts)


def oracle_logit_sum(members: list[list[int]], types: list[FixedType]) -> int:
    sums = [sum(Fraction(m[c], 1 << t.frac_bits) for m, t in zip(members, types)) for c in range(N_CLASSES)]
    return first_max(sums)


def oracle_soft(members: list[list[int]], types: list[FixedType], sm: SoftmaxTypes) -> int:
    """The softmax of the module docstring, one value at a time, with tables from the oracles below."""
    exp, recip = oracle_tables(sm)
    totals = [0] * N_CLASSES
    for logits, t in zip(members, types):
        top = max(logits)
        e = [exp[int(cast(np.array([top - x]), t.frac_bits, sm.exp_in_t)[0])] for x in logits]
        r = recip[int(cast(np.array([sum(e)]), sm.exp_t.frac_bits, sm.recip_in_t)[0])]
        for c in range(N_CLASSES):
            totals[c] += int(cast(np.array([e[c] * r]), sm.exp_t.frac_bits + sm.recip_t.frac_bits, sm.prob_t)[0])
    return first_max(totals)


@functools.lru_cache(maxsize=4)
def oracle_tables(sm: SoftmaxTypes) -> tuple[list[int], list[int]]:
    """EXP and RECIP from 80-digit decimals and exact fractions."""
    exp = [oracle_round(exp_value(i, sm.exp_in_t), sm.exp_t) for i in range(sm.exp_in_t.max_raw + 1)]
    recip = [sm.recip_t.max_raw] + [
        oracle_round(Fraction(1 << sm.recip_in_t.frac_bits, i), sm.recip_t) for i in range(1, sm.recip_in_t.max_raw + 1)
    ]
    return exp, recip


def exp_value(i: int, in_t: FixedType) -> decimal.Decimal:
    with decimal.localcontext() as ctx:
        ctx.prec = 80
        return (decimal.Decimal(-i) / decimal.Decimal(2) ** in_t.frac_bits).exp()


def oracle_round(v, out: FixedType) -> int:
    """Round half to even (the tables' types are RND_CONV, SAT) from an exact or 80-digit value."""
    with decimal.localcontext() as ctx:
        ctx.prec = 80
        scaled = decimal.Decimal(v.numerator) / decimal.Decimal(v.denominator) if isinstance(v, Fraction) else v
        raw = int((scaled * decimal.Decimal(2) ** out.frac_bits).to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
    return min(max(raw, out.min_raw), out.max_raw)


SMALL_SOFTMAX = SoftmaxTypes(
    FixedType(5, 3, False, Rounding.TRN, Overflow.SAT),
    FixedType(7, 1, False, Rounding.RND_CONV, Overflow.SAT),
    FixedType(7, 4, False, Rounding.TRN, Overflow.SAT),
    FixedType(8, 1, False, Rounding.RND_CONV, Overflow.SAT),
    FixedType(6, 1, False, Rounding.RND_CONV, Overflow.SAT),
)


def vote_ir(method: VoteMethod, n_members: int = 3) -> IR:
    """Members' logits as graph inputs (types alternate) -> vote."""
    inputs = [InputSpec((N_CLASSES,), LOGIT_TYPES[m % 2], f"m{m}") for m in range(n_members)]
    soft = SMALL_SOFTMAX if method is VoteMethod.SOFT else None
    names = tuple(i.name for i in inputs)
    node = VoteLayer("vote", method, N_CLASSES, class_index_type(N_CLASSES), soft, inputs=names)
    ir = IR("v", Task.CLASSIFICATION, inputs, [node])
    ir.validate()
    return ir


def run_vote(ir: IR, members: list[np.ndarray]) -> np.ndarray:
    """The vote node's kernel on each member's raw logits (batch, n_classes)."""
    node = ir.nodes[0]
    return node.kernel(members, [i.type for i in ir.inputs])[:, 0]


ORACLES = {
    VoteMethod.HARD: lambda ms, ts: oracle_hard(ms),
    VoteMethod.LOGIT_SUM: oracle_logit_sum,
    VoteMethod.SOFT: lambda ms, ts: oracle_soft(ms, ts, SMALL_SOFTMAX),
}


def vote_mismatches(method: VoteMethod, members: list[np.ndarray], kernel=None) -> int:
    """Rows where the kernel (or a given one) differs from the method's oracle."""
    ir = vote_ir(method, len(members))
    got = run_vote(ir, members) if kernel is None else kernel(members)
    types = [i.type for i in ir.inputs]
    want = [ORACLES[method]([m[b].tolist() for m in members], types) for b in range(members[0].shape[0])]
    return int(np.sum(np.asarray(got) != np.asarray(want)))


def draw_members(data, n_members: int, batch: int) -> list[np.ndarray]:
    """Logits in a narrow range, so that ties within and between members are common."""
    out = []
    for m in range(n_members):
        t = LOGIT_TYPES[m % 2]
        lo = data.draw(st.integers(t.min_raw, t.max_raw - 3))
        span = data.draw(st.sampled_from([3, 12, t.max_raw - lo]))
        size = batch * N_CLASSES
        vals = data.draw(st.lists(st.integers(lo, min(lo + span, t.max_raw)), min_size=size, max_size=size))
        out.append(np.array(vals, dtype=np.int64).reshape(batch, N_CLASSES))
    return out


@pytest.mark.parametrize("method", list(VoteMethod))
@settings(max_examples=40, deadline=None)
@given(data=st.data(), n_members=st.integers(1, 4))
def test_vote_equals_its_oracle(method, data, n_members):
    assert vote_mismatches(method, draw_members(data, n_members, 6)) == 0


def test_hard_vote_ties_go_to_the_lowest_class():
    """Members pick 3, 1, 3, 1 (counts tie): class 1; a member whose logits tie votes for its lowest class."""
    ir = vote_ir(VoteMethod.HARD, 4)
    rows = [[0, 0, 0, 5, 0], [0, 5, 0, 0, 0], [0, 0, 0, 5, 0], [0, 5, 0, 0, 0]]
    assert run_vote(ir, [np.array([r]) for r in rows]).tolist() == [1]
    flat = [[2, 2, 2, 2, 2]] * 4
    assert run_vote(ir, [np.array([r]) for r in flat]).tolist() == [0]


def test_vote_check_catches_the_highest_index_tie_rule():
    """Known wrong: a hard vote whose ties go to the highest class fails the oracle comparison."""
    rng = np.random.default_rng(1)
    members = [rng.integers(-2, 2, size=(40, N_CLASSES)) for _ in range(4)]

    def highest(ms):
        counts = np.zeros((40, N_CLASSES), dtype=np.int64)
        for m in ms:
            counts[np.arange(40), N_CLASSES - 1 - np.argmax(m[:, ::-1], axis=1)] += 1
        return N_CLASSES - 1 - np.argmax(counts[:, ::-1], axis=1)

    assert vote_mismatches(VoteMethod.HARD, members, highest) > 0
    assert vote_mismatches(VoteMethod.HARD, members) == 0


def test_soft_check_catches_a_float_softmax():
    """Known wrong: the float softmax's argmax differs from the fixed-point one somewhere (near-ties)."""
    rng = np.random.default_rng(2)
    members = [rng.integers(-8, 8, size=(150, N_CLASSES)) for _ in range(3)]
    types = [LOGIT_TYPES[m % 2] for m in range(3)]

    def float_soft(ms):
        total = 0
        for m, t in zip(ms, types):
            z = np.exp(t.to_float(m) - t.to_float(m).max(axis=1, keepdims=True))
            total = total + z / z.sum(axis=1, keepdims=True)
        return np.argmax(total, axis=1)

    assert vote_mismatches(VoteMethod.SOFT, members, float_soft) > 0
    assert vote_mismatches(VoteMethod.SOFT, members) == 0


def test_softmax_tables_are_correctly_rounded():
    sm = SoftmaxTypes.default()
    exp = exp_table(sm.exp_in_t, sm.exp_t)
    assert exp[0] == 1 << sm.exp_t.frac_bits  # exp(0) = 1 exactly
    assert exp.tolist() == [oracle_round(exp_value(i, sm.exp_in_t), sm.exp_t) for i in range(exp.size)]
    recip = recip_table(sm.recip_in_t, sm.recip_t)
    want = [oracle_round(Fraction(1 << sm.recip_in_t.frac_bits, i), sm.recip_t) for i in range(1, recip.size)]
    assert recip[0] == sm.recip_t.max_raw and recip[1:].tolist() == want


def test_one_member_soft_probabilities_sum_to_about_one():
    sm = SoftmaxTypes.default()
    t = FixedType.parse("fixed<12,5,RND_CONV,SAT>")
    x = np.random.default_rng(3).integers(-600, 600, size=(200, 18))
    node = VoteLayer("v", VoteMethod.SOFT, 18, class_index_type(18), sm, inputs=("m",))
    p = sm.prob_t.to_float(node.scores([x], [t]))
    assert np.all(np.abs(p.sum(axis=1) - 1) < 0.1)
    # One member: the pick has the member's top probability (its argmax, or a class whose d rounds alike).
    pick, top = node.kernel([x], [t])[:, 0], np.argmax(x, axis=1)
    rows = np.arange(len(x))
    np.testing.assert_array_equal(p[rows, pick], p[rows, top])
    assert np.all(pick <= top)


@pytest.mark.parametrize("method", list(VoteMethod))
def test_vote_ir_round_trip_and_reference(method):
    ir = vote_ir(method)
    back = IR.from_dict(ir.to_dict())
    assert back.to_dict() == ir.to_dict()
    assert layer_from_dict(ir.nodes[0].to_dict()).to_dict() == ir.nodes[0].to_dict()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda n: n.update(result_t="ufixed<2,2>"), "must be an unsigned integer holding 0..4"),
        (lambda n: n.pop("softmax"), "soft voting needs softmax types"),
        (lambda n: n["softmax"].update(exp_in_t="ufixed<17,4>"), "wider than 16 bits"),
        (lambda n: n["softmax"].update(prob_t="fixed<8,1>"), "must be unsigned"),
        (lambda n: n.update(inputs=[]), "node vote names no inputs"),
        (lambda n: n.update(method="median"), "'median' is not a valid VoteMethod"),
    ],
)
def test_vote_refuses_bad_fields_in_one_line(edit, message):
    d = vote_ir(VoteMethod.SOFT).to_dict()
    edit(d["nodes"][0])
    with pytest.raises((FlowError, ValueError), match=message) as exc:
        IR.from_dict(d)
    assert "\n" not in str(exc.value)


def test_one_class_is_refused():
    with pytest.raises(FlowError, match="n_classes must be an integer >= 2"):
        VoteLayer("v", VoteMethod.HARD, 1, class_index_type(2)).validate()


def test_members_of_another_class_count_are_refused():
    ir = vote_ir(VoteMethod.HARD).to_dict()
    ir["inputs"][1]["shape"] = [4]
    with pytest.raises(FlowError, match=r"every member must give \[5\] logits"):
        IR.from_dict(ir)


def test_reference_classes_reads_the_vote_output():
    ir = vote_ir(VoteMethod.HARD, 1)
    x = np.array([[0, 1, 9, 1, 0]])
    assert reference.classes(ir, ir.nodes[0].kernel([x], [ir.inputs[0].type])).tolist() == [2]
