"""The ensemble in RTL: the log1p ROM, the feature stage, the voter and the arrangements against flow.reference.

Tiny random ensembles (16-channel spectra, 2-3 members of 15 -> 3 -> 4) in Icarus and Verilator; every member's
logits (out_data) and the vote (out_class) are checked on every spectrum.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import flow.rtl.ensemble as ensemble
import flow.rtl.ensemble_vote as ensemble_vote
from flow.ensemble_graph import Member, ensemble_ir
from flow.errors import FlowError
from flow.features import log1p_table, log1p_type
from flow.fixed import FixedType, Overflow, Rounding
from flow.ir import IR
from flow.layers.vote import VoteMethod
from flow.rtl import generate
from flow.rtl.ensemble_features import Log1pRom, log1p_rom
from flow.rtl.lint import lint
from flow.sim import simulate
from tb.irgen import mlp_ir, write_ensemble_vectors

N_CHANNELS = 16
COUNT_WIDTH = 10


def tiny_ensemble(method: str, diagonals=(0, 2, 5), seed: int = 0) -> IR:
    """Members 15 -> 3 -> 4 on ``diagonals``; the second clips its features at 0."""
    members = [
        Member(f"m{k}", k, mlp_ir(f"m{k}", [N_CHANNELS - 1, 3, 4], seed=seed + k), clip=i == 1)
        for i, k in enumerate(diagonals)
    ]
    log_t = log1p_type(COUNT_WIDTH, 8)
    return ensemble_ir("ens", members, count_width=COUNT_WIDTH, log1p_t=log_t, method=VoteMethod(method))


def spectra(n: int, seed: int = 0) -> np.ndarray:
    """Corners (full, empty, alternating), uniform and low Poisson counts."""
    rng = np.random.default_rng(seed)
    top = (1 << COUNT_WIDTH) - 1
    c = np.minimum(rng.poisson(rng.uniform(0, 300, size=(n, 1)), size=(n, N_CHANNELS)), top)
    c[0], c[1] = top, 0
    c[2] = np.where(np.arange(N_CHANNELS) % 2, top, 0)
    c[3 : n // 3] = rng.integers(0, top + 1, size=(n // 3 - 3, N_CHANNELS))
    return c.astype(np.int64)


def run(ir: IR, tmp_path, sim: str, n: int = 60, **knobs):
    design = generate(ir, "parallel_members", tmp_path / "rtl", **knobs)
    vectors = write_ensemble_vectors(ir, tmp_path / "vectors.npz", spectra(n))
    return design, simulate(design, vectors, sim, tmp_path / f"sim_{sim}")


# ------------------------------------------------------------------------------------------- log1p ROM


@pytest.mark.parametrize("count_width,frac_bits", [(16, 8), (10, 8), (12, 4), (8, 10), (5, 3)])
@pytest.mark.parametrize("form", ["lod", "table"])
def test_log1p_rom_equals_the_correctly_rounded_table(count_width, frac_bits, form):
    out_t = log1p_type(count_width, frac_bits)
    try:
        rom = log1p_rom(count_width, out_t, form)
    except FlowError as exc:  # narrow counts: no leading-one form is possible, which is said in one line
        assert form == "lod" and "use the full table" in str(exc)
        return
    counts = np.arange(1 << count_width)
    assert np.array_equal(rom.lookup(counts), log1p_table(count_width, out_t))


def test_log1p_rom_of_16_bit_counts_is_a_small_table():
    """The card's feature stage: 2,304 x 20 bits against 65,536 x 12 for the full table (17x fewer)."""
    rom = log1p_rom(16, log1p_type(16, 8))
    assert rom.form == "lod" and rom.top_bits == 8
    assert rom.details() == {
        "form": "lod",
        "top_bits": 8,
        "depth": 2304,
        "word_width": 20,
        "rom_bits": 46080,
        "full_table_bits": 786432,
    }


def test_log1p_rom_in_other_modes_and_saturation():
    """Any declared type: truncation and a saturating narrow type keep the table monotone and exact."""
    for t in (FixedType(9, 3, False, Rounding.TRN, Overflow.SAT), FixedType(14, 4, False, Rounding.RND, Overflow.SAT)):
        rom = log1p_rom(12, t)
        assert np.array_equal(rom.lookup(np.arange(1 << 12)), log1p_table(12, t))


def test_log1p_rom_errors_are_one_line():
    with pytest.raises(FlowError, match=r"^log1p: form 'fast' is not allowed \(choose from: auto, table, lod\)$"):
        log1p_rom(10, log1p_type(10, 8), "fast")
    with pytest.raises(FlowError, match=r"^log1p: the RTL takes count_width <= 20, got 24$"):
        log1p_rom(24, log1p_type(24, 8))


# ------------------------------------------------------------------------------------ the whole design


@pytest.fixture(scope="module")
def hard_design(tmp_path_factory):
    """The hard-voting tiny ensemble, generated once: its Icarus build is shared by the tests that use it."""
    root = tmp_path_factory.mktemp("ens_hard")
    ir = tiny_ensemble("hard")
    return ir, generate(ir, "parallel_members", root / "rtl"), root


def test_parallel_members_is_bit_exact_hard_icarus(hard_design):
    ir, design, root = hard_design
    vectors = write_ensemble_vectors(ir, root / "vectors.npz", spectra(60))
    r = simulate(design, vectors, "icarus", root / "sim")
    assert r.passed, r.error
    assert r.mismatches == 0 and r.vectors == 60 and r.latency_cycles == design.latency_cycles_expected


@pytest.mark.parametrize(
    "sim,method",
    [
        pytest.param("icarus", "soft", marks=pytest.mark.slow),
        pytest.param("icarus", "logit_sum", marks=pytest.mark.slow),
        pytest.param("verilator", "soft", marks=pytest.mark.slow),
        pytest.param("verilator", "hard", marks=pytest.mark.slow),
    ],
)
def test_parallel_members_is_bit_exact(tmp_path, sim, method):
    """Raw spectra in: every member's logits and the vote equal the reference, at the expected latency."""
    design, r = run(tiny_ensemble(method), tmp_path, sim)
    assert r.passed, r.error
    assert r.mismatches == 0 and r.vectors == 60
    assert r.latency_cycles == design.latency_cycles_expected
    assert design.details["log1p"]["form"] == "lod" and design.details["members"] == 3
    assert design.ports["out_data"]["elements"] == 12 and design.ports["out_class"]["width"] == 2


@pytest.mark.slow
def test_parallel_members_full_table_and_lint(tmp_path):
    """The full-table log1p form, two members (hard voting: many ties), lint-clean."""
    ir = tiny_ensemble("hard", diagonals=(1, 4), seed=3)
    design, r = run(ir, tmp_path, "icarus", log1p="table")
    assert r.passed, r.error
    assert design.details["log1p"]["form"] == "table"
    assert lint(design) == []


def test_wrong_log1p_rom_entry_fails(tmp_path, monkeypatch):
    """Known-wrong feature stage: one ROM word off; the members' logits differ."""
    good = log1p_rom

    def bad_rom(count_width, out_t, form="auto"):
        rom = good(count_width, out_t, form)
        base = list(rom.base)
        base[0] += 64  # log1p(0) read as 1/4: every empty channel
        return Log1pRom(rom.form, rom.count_width, rom.out_t, rom.top_bits, tuple(base), rom.threshold)

    monkeypatch.setattr(ensemble, "log1p_rom", bad_rom)
    _, r = run(tiny_ensemble("hard"), tmp_path, "icarus", n=20)
    assert not r.passed and r.mismatches > 0 and "output" in r.error


@pytest.mark.slow
def test_wrong_diagonal_fails(tmp_path, monkeypatch):
    """Known-wrong difference: a member tapping the delay line one place off; its logits differ."""
    good = ensemble.plan

    def shifted(ir):
        p = good(ir)
        m = p.members[1]
        lane = ensemble.Lane(m.lane.name, m.lane.diagonal + 1, m.lane.layers, m.lane.out_t)
        p.members[1] = ensemble.MemberPlan(lane, m.chain, m.logits_t)
        return p

    monkeypatch.setattr(ensemble, "plan", shifted)
    _, r = run(tiny_ensemble("hard"), tmp_path, "icarus", n=20)
    assert not r.passed and r.mismatches > 0


@pytest.mark.slow
def test_wrong_vote_fails(tmp_path, monkeypatch):
    """Known-wrong voter: the class scores in reverse order; the logits agree, the vote does not."""
    hard = ensemble_vote.VOTE_EMITTERS[VoteMethod.HARD]

    def reversed_hard(layer, in_types):
        text, scores, width, signed = hard(layer, in_types)
        return text, scores[::-1], width, signed

    monkeypatch.setitem(ensemble_vote.VOTE_EMITTERS, VoteMethod.HARD, reversed_hard)
    _, r = run(tiny_ensemble("hard"), tmp_path, "icarus", n=20)
    assert not r.passed and "out_class" in r.error


def test_wrong_expected_class_fails(hard_design, tmp_path):
    """The checker: a correct design against one altered expected vote fails, naming that spectrum."""
    ir, design, root = hard_design
    vectors = write_ensemble_vectors(ir, tmp_path / "vectors.npz", spectra(20))
    data = dict(np.load(vectors))
    data["classes"][7] = (data["classes"][7] + 1) % 4
    np.savez(vectors, **data)
    r = simulate(design, vectors, "icarus", root / "sim")
    assert not r.passed and r.mismatches == 1 and r.error.startswith("vector 7 ") and "out_class" in r.error


def test_ensemble_arrangement_errors_are_one_line(tmp_path):
    ir = tiny_ensemble("hard")
    with pytest.raises(FlowError, match=r"^reuse_factors: no member layer named fc9"):
        generate(ir, "parallel_members", tmp_path / "a", reuse_factors={"fc9": 2})
    with pytest.raises(FlowError, match=r"^reuse_factors: the first layer of each member takes one input per step"):
        generate(ir, "parallel_members", tmp_path / "b", reuse_factors={"fc1": 5})
    with pytest.raises(FlowError, match=r"needs a vote output node"):
        generate(mlp_ir("m", [4, 3, 2]), "parallel_members", tmp_path / "c")
    assert not any((tmp_path / d).exists() for d in "abc")


@pytest.mark.slow
def test_later_member_layers_fold_by_their_reuse_factor(tmp_path):
    """A member's second layer folded by R = 2 * n_in (outputs share a multiplier), as --reuse fc2=6 sets it."""
    design, r = run(tiny_ensemble("soft"), tmp_path, "icarus", n=20, reuse_factors={"fc2": 6})
    assert r.passed, r.error
    assert design.knobs["reuse_factors"] == {"fc1": 15, "fc2": 6}


# ----------------------------------------------------------------------------------------- serial_members


@pytest.mark.parametrize(
    "sim,method",
    [pytest.param("icarus", "hard", marks=pytest.mark.slow), pytest.param("icarus", "soft", marks=pytest.mark.slow)]
    + [pytest.param("verilator", "logit_sum", marks=pytest.mark.slow)],
)
def test_serial_members_is_bit_exact(tmp_path, sim, method):
    """One datapath for the three members (weight banks), one feature pass per member: bit-exact (the default
    tier runs the members of different types below)."""
    ir = tiny_ensemble(method)
    design = generate(ir, "serial_members", tmp_path / "rtl")
    vectors = write_ensemble_vectors(ir, tmp_path / "vectors.npz", spectra(40))
    r = simulate(design, vectors, sim, tmp_path / f"sim_{sim}")
    assert r.passed, r.error
    assert r.mismatches == 0 and r.latency_cycles == design.latency_cycles_expected
    assert design.details["weight_banks"] == 3
    assert sum(f.endswith("_fc1.v") for f in design.files) == 1  # one shared first layer


@pytest.mark.slow
def test_serial_members_wrong_bank_fails(tmp_path, monkeypatch):
    """Known-wrong shared datapath: the members' weight banks in reverse order; the logits differ."""
    good = ensemble.shared_chain

    def reversed_banks(p):
        chain, banks = good(p)
        return chain, {name: layers[::-1] for name, layers in banks.items()}

    monkeypatch.setattr(ensemble, "shared_chain", reversed_banks)
    ir = tiny_ensemble("hard")
    design = generate(ir, "serial_members", tmp_path / "rtl")
    r = simulate(design, write_ensemble_vectors(ir, tmp_path / "v.npz", spectra(10)), "icarus", tmp_path / "sim")
    assert not r.passed and r.mismatches > 0


def mixed_type_ensemble(method: str = "hard") -> IR:
    """Three members of one structure whose dense types differ, as hls4ml's bit-exact pass gives real members:
    weights (fixed<8,2> / fixed<7,1> / fixed<6,3>), biases and so the accumulators and dense results."""
    weights = ("fixed<8,2>", "fixed<7,1>", "fixed<6,3>")
    members = [
        Member(f"m{k}", k, mlp_ir(f"m{k}", [N_CHANNELS - 1, 3, 4], seed=k + 7, w_t=w), clip=i == 1)
        for i, (k, w) in enumerate(zip((0, 2, 5), weights))
    ]
    return ensemble_ir("ens", members, count_width=COUNT_WIDTH, log1p_t=log1p_type(COUNT_WIDTH, 8), method=method)


@pytest.fixture(scope="module")
def mixed_serial(tmp_path_factory):
    """The mixed-type ensemble's serial_members design, generated once."""
    root = tmp_path_factory.mktemp("ens_mixed")
    ir = mixed_type_ensemble()
    return ir, generate(ir, "serial_members", root / "rtl"), root


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_serial_members_of_different_types_is_bit_exact(mixed_serial, sim):
    """Members whose weight, bias and accumulator types differ share one datapath of their union types."""
    ir, design, root = mixed_serial
    accs = {str(n.accum_t) for n in ir.nodes if n.name.endswith("/fc1")}
    assert len(accs) == 3  # the case the union datapath is for
    vectors = write_ensemble_vectors(ir, root / f"v_{sim}.npz", spectra(40))
    r = simulate(design, vectors, sim, root / f"sim_{sim}")
    assert r.passed, r.error
    assert r.mismatches == 0 and r.vectors == 40 and r.latency_cycles == design.latency_cycles_expected


@pytest.mark.slow
def test_serial_members_of_different_types_unaligned_bias_fails(tmp_path, monkeypatch):
    """Known-wrong union datapath: each bank's bias left at its own accumulator's LSB, not the union's."""
    import flow.rtl.folded as folded
    from flow.rtl.common import aligned_biases

    good = folded.shared_banks

    def unaligned(layers, in_t):
        shared = good(layers, in_t)
        return replace(shared, biases=[aligned_biases(b) for b in shared.own])

    monkeypatch.setattr(folded, "shared_banks", unaligned)
    ir = mixed_type_ensemble()
    design = generate(ir, "serial_members", tmp_path / "rtl")
    r = simulate(design, write_ensemble_vectors(ir, tmp_path / "v.npz", spectra(20)), "icarus", tmp_path / "sim")
    assert not r.passed and r.mismatches > 0


def test_serial_members_refuses_members_of_another_structure(tmp_path):
    members = [
        Member("a", 0, mlp_ir("a", [N_CHANNELS - 1, 3, 4], seed=1)),
        Member("b", 2, mlp_ir("b", [N_CHANNELS - 1, 5, 4], seed=2)),
    ]
    ir = ensemble_ir("ens", members, count_width=COUNT_WIDTH, log1p_t=log1p_type(COUNT_WIDTH, 8), method="hard")
    with pytest.raises(FlowError, match=r"^serial_members: member b differs from a at fc1 .*use parallel_members\)$"):
        generate(ir, "serial_members", tmp_path / "rtl")
    assert not (tmp_path / "rtl").exists()
