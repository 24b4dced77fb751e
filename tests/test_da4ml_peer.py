"""da4ml's own design of an IR (the area benchmark's peer): bit-exact with the reference, and the check bites."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flow import da4ml_peer
from flow.errors import FlowError
from flow.fixed import FixedType
from flow.ir import IR, CastLayer, ClampLayer, InputSpec, ReluLayer, Task
from tb.irgen import mlp_ir, random_inputs


def _every_input(ir: IR) -> np.ndarray:
    t = ir.input.type
    return np.arange(t.min_raw, t.max_raw + 1, dtype=np.int64).reshape(-1, 1)


def _cast_ir(result_t: str, name: str = "casts") -> IR:
    """Casts only (no CMVM solve, so no numba compilation): every input of a 9-bit type, many ties."""
    in_t = FixedType.parse("fixed<9,4>")
    layers = [
        CastLayer("c1", 1, FixedType.parse(result_t)),
        ReluLayer("r1", 1, FixedType.parse("ufixed<5,3,RND_CONV,SAT>")),
        ClampLayer("out", 1, FixedType.parse("ufixed<4,3,RND_CONV,SAT>"), 2, 13),
    ]
    ir = IR(name, Task.REGRESSION, [InputSpec(1, in_t)], layers)
    ir.validate()
    return ir


@pytest.mark.parametrize("result_t", ["fixed<6,3,RND_CONV,SAT>", "fixed<6,3,RND,SAT_SYM>", "fixed<5,2,TRN,WRAP>"])
def test_casts_are_bit_exact(result_t):
    """RND_CONV built from da4ml's TRN/RND operations, RND, TRN, SAT/SAT_SYM/WRAP, ReLU, clamp: every input."""
    ir = _cast_ir(result_t)
    x = _every_input(ir)
    assert da4ml_peer.check(ir, da4ml_peer.trace(ir), x) == len(x)


def test_a_wrong_design_fails_the_check():
    """The check compares integers on every output: da4ml's RND (half up) is not the IR's RND_CONV."""
    comb = da4ml_peer.trace(_cast_ir("fixed<6,3,RND,SAT>"))
    with pytest.raises(FlowError, match="vector"):
        da4ml_peer.check(_cast_ir("fixed<6,3,RND_CONV,SAT>"), comb, _every_input(_cast_ir("fixed<6,3,RND,SAT>")))


def test_unsupported_mode_is_one_line():
    with pytest.raises(FlowError, match="not supported"):
        da4ml_peer.trace(_cast_ir("fixed<6,3,RND_ZERO,SAT>"))


@pytest.mark.slow  # da4ml's CMVM solver compiles with numba for minutes in a new environment
def test_mlp_design_is_written_and_bit_exact(tmp_path):
    ir = mlp_ir("peer_mlp", [4, 6, 3], in_t="fixed<6,3,RND_CONV,SAT>", w_t="fixed<6,1>")
    x, _ = random_inputs(ir, 500, seed=3)
    d = da4ml_peer.generate(ir, tmp_path / "da4ml", x)
    assert d.vectors_checked == 500
    files = (tmp_path / "da4ml" / "files.txt").read_text().split()
    assert all((tmp_path / "da4ml" / f).is_file() for f in files)
    assert json.loads((tmp_path / "da4ml" / "design.json").read_text())["top"] == d.top
