"""The ensemble as one graph (raw spectrum -> features -> members -> vote) and its card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flow import reference
from flow.ensemble_card import load_ensemble_card
from flow.ensemble_graph import Member, ensemble_ir, member_node
from flow.ensemble_verify import check_ensemble, graph_members
from flow.errors import FlowError
from flow.features import diagonal_difference, log1p_fixed, log1p_type
from flow.fixed import cast
from flow.ir import IR
from flow.layers.vote import VoteMethod
from tb.irgen import mlp_ir

N_CHANNELS = 64
COUNT_WIDTH = 10
LOG_T = log1p_type(COUNT_WIDTH, 8)
DIAGONALS = (0, 3, 7)


@pytest.fixture(scope="module")
def members() -> list[Member]:
    """Three tiny members (63 -> 4 -> 5) on diagonals 0, 3, 7; the last clips its features at 0."""
    return [
        Member(f"m{k}", k, mlp_ir(f"m{k}", [N_CHANNELS - 1, 4, 5], seed=k), clip=i == 2)
        for i, k in enumerate(DIAGONALS)
    ]


@pytest.fixture(scope="module")
def counts() -> np.ndarray:
    rng = np.random.default_rng(0)
    c = rng.poisson(rng.uniform(0, 300, size=(60, N_CHANNELS))).astype(np.int64)
    c[0] = (1 << COUNT_WIDTH) - 1  # every counter full
    c[1] = 0
    return np.minimum(c, (1 << COUNT_WIDTH) - 1)


def graph(members: list[Member], method: VoteMethod = VoteMethod.HARD) -> IR:
    return ensemble_ir("ens", members, count_width=COUNT_WIDTH, log1p_t=LOG_T, method=method)


def member_logits_alone(member: Member, counts: np.ndarray) -> np.ndarray:
    """A member's logits computed apart from the graph: features by flow.features, then its own IR."""
    d = diagonal_difference(log1p_fixed(counts, COUNT_WIDTH, LOG_T), member.diagonal)
    d = np.maximum(d, 0) if member.clip else d
    x = cast(d, LOG_T.frac_bits, member.ir.input.type)
    return reference.run(member.ir, x).output_raw


def test_graph_members_equal_each_member_run_alone(members, counts):
    ir = graph(members)
    trace = reference.run(ir, counts)
    for m in members:
        np.testing.assert_array_equal(trace.of(member_node(m.name, m.ir.outputs[0])), member_logits_alone(m, counts))
    logits = [member_logits_alone(m, counts) for m in members]
    want = ir.output.kernel(logits, [m.ir.output_t for m in members])
    np.testing.assert_array_equal(trace.output_raw, want)
    assert reference.classes(ir, trace.output_raw).tolist() == want[:, 0].tolist()


def test_member_check_catches_swapped_diagonals(members, counts):
    """Known wrong: a graph wired with two members' diagonals swapped gives other member logits."""
    swapped = [Member(m.name, d, m.ir, m.clip) for m, d in zip(members, (3, 0, 7))]
    trace = reference.run(graph(swapped), counts)
    m = members[0]
    assert (trace.of(member_node(m.name, "fc2")) != member_logits_alone(m, counts)).any()


@pytest.mark.parametrize("method", list(VoteMethod))
def test_graph_round_trips_with_every_voting(members, counts, method):
    ir = graph(members, method)
    back = IR.from_dict(ir.to_dict())
    assert back.to_dict() == ir.to_dict()
    assert [n.kind.value for n in ir.nodes[:3]] == ["log1p", "diagonal_difference", "cast"]
    np.testing.assert_array_equal(reference.run(back, counts[:8]).output_raw, reference.run(ir, counts[:8]).output_raw)


def test_members_of_different_shapes_are_refused(members):
    other = Member("odd", 1, mlp_ir("odd", [N_CHANNELS - 1, 4, 6], seed=9))
    with pytest.raises(FlowError, match="members differ"):
        graph([*members, other])


ENSEMBLE = """name: {name}
members: [diag_00, diag_05]
voting: soft
features: {{count_width: 16, log1p_frac_bits: 8}}
hardware: {{arrangement: serial_members}}
"""


def write_card(tmp_path: Path, text: str, name: str = "ens") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_ensemble_card_loads(tmp_path):
    card = load_ensemble_card(write_card(tmp_path, ENSEMBLE.format(name="ens")))
    assert card.member_names == ("diag_00", "diag_05") and card.voting is VoteMethod.SOFT
    assert card.arrangement == "serial_members" and str(card.stage.log1p_t) == "ufixed<12,4,RND_CONV,SAT>"
    shipped = load_ensemble_card("diag_ensemble")
    assert shipped.member_names == tuple(f"diag_{k:02d}" for k in range(7, 20))
    assert shipped.member_training.share == "disjoint" and shipped.members[0].dataset["share_count"] == 180


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("voting: soft", "voting: median", "voting: 'median' is not allowed; expected one of hard, soft, logit_sum"),
        ("[diag_00, diag_05]", "[diag_00, diag_00]", "members: diag_00 is named twice"),
        ("[diag_00, diag_05]", "[]", "members: [] is not allowed"),
        ("[diag_00, diag_05]", "[diag_00, lut_charge]", "members: lut_charge has dataset kind 'table'"),
        ("[diag_00, diag_05]", "[diag_00, diag_99]", "diag_99.yaml: no such model card"),
        ("log1p_frac_bits: 8", "log1p_frac_bits: 7", "features.log1p_frac_bits: 7 but member diag_00 trains on"),
        ("count_width: 16", "count_width: 40", "features.count_width: 40 is not allowed; expected an integer 1..32"),
        ("serial_members", "pipelined", "hardware.arrangement: 'pipelined' is not allowed"),
        ("voting: soft", "voting: soft\nvote: hard", "vote: is not a field"),
        ("name: ens", "name: other", "name: 'other' must be the file name 'ens'"),
    ],
)
def test_ensemble_card_errors_are_one_line_naming_the_field(tmp_path, old, new, message):
    text = ENSEMBLE.format(name="ens").replace(old, new)
    with pytest.raises(FlowError) as exc:
        load_ensemble_card(write_card(tmp_path, text))
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert str(exc.value).startswith(str(tmp_path)) or "no such model card" in str(exc.value)


def member_inputs(member: Member, counts: np.ndarray) -> np.ndarray:
    d = diagonal_difference(log1p_fixed(counts, COUNT_WIDTH, LOG_T), member.diagonal)
    return cast(np.maximum(d, 0) if member.clip else d, LOG_T.frac_bits, member.ir.input.type)


def reference_csim(name: str, ir: IR, x_raw: np.ndarray) -> dict[str, np.ndarray]:
    """A stand-in for a member's C simulation: its own IR run alone (a correct one)."""
    trace = reference.run(ir, x_raw)
    return dict(zip(trace.names, trace.raw))


def test_ensemble_check_passes_a_correct_graph(members, counts):
    ir = graph(members, VoteMethod.SOFT)
    assert [m.name for m in graph_members(ir)] == [m.name for m in members]
    features = {m.name: member_inputs(m, counts[:20]) for m in members}
    result = check_ensemble(ir, counts, 20, features, reference_csim)
    assert result["mismatches"] == 0 and result["vote"] == 0
    assert all(v["layers_compared"] == 3 for v in result["members"].values())


def test_ensemble_check_catches_wrong_features_members_and_votes(members, counts):
    """Known wrong: another diagonal's features, a member C-sim one LSB off, logits that change the vote."""
    ir = graph(members, VoteMethod.HARD)
    features = {m.name: member_inputs(m, counts[:20]) for m in members}
    features["m3"] = member_inputs(members[0], counts[:20])
    assert check_ensemble(ir, counts, 20, features, reference_csim)["features"]["m3"] > 0

    good = {m.name: member_inputs(m, counts[:20]) for m in members}

    def off_by_one(name, member_ir, x):
        out = reference_csim(name, member_ir, x)
        if name == "m0":
            out["fc1"] = out["fc1"].copy()
            out["fc1"][5, 0] += 1
        return out

    r = check_ensemble(ir, counts, 20, good, off_by_one)
    assert r["members"]["m0"]["mismatches"] == 1 and r["first_mismatch"]["layer"] == "fc1"

    def every_member_votes_class_4(name, member_ir, x):
        out = reference_csim(name, member_ir, x)
        out["fc2"] = np.where(np.arange(5) == 4, 2047, -2048) + 0 * out["fc2"]
        return out

    assert check_ensemble(ir, counts, 20, good, every_member_votes_class_4)["vote"] > 0


def test_report_of_an_unbuilt_ensemble_is_one_line(tmp_path, monkeypatch, capsys):
    """The ensemble's own report (flow/ensemble_report.py) refuses a folder qflow did not write, in one line."""
    import flow.project
    from flow.cli import main

    monkeypatch.setattr(flow.project, "PROJECTS_DIR", tmp_path)
    (tmp_path / "ens").mkdir()
    (tmp_path / "ens" / "card.yaml").write_text(ENSEMBLE.format(name="ens"))
    assert main(["report", "ens"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "qflow did not write" in err and "\n" not in err
