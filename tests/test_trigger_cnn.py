"""The trigger CNN card: per-type bitwidths and overrides, one-line errors, and (slow) the tiny CNN through hls
and verify: 0 mismatches on every layer, QKeras within float32 rounding, eff_at_10khz at every stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import flow.project
from flow import reference
from flow.card import load_card
from flow.cli import main
from flow.errors import FlowError
from flow.ir import IR
from flow.layers import LayerKind
from flow.project import Project

CARDS = Path(__file__).parent / "cards"
QMODELS = Path(__file__).parent.parent / "qmodels"

CNN = """\
name: card
dataset: {{kind: trigger, size: 6}}
input: (9,8)
bitwidths:
  conv: (12,2)
  dense: (10,1)
  activation: (16,6)
layers:
{layers}
"""
BODY = """\
  - {type: conv2d, filters: 2, kernel: 3, padding: same, weight: '(8,1)'}
  - {type: relu}
  - {type: maxpool2d}
  - {type: flatten}
  - {type: dense, units: 1}"""


def card(tmp_path: Path, layers: str = BODY, head: str = CNN) -> Path:
    path = tmp_path / "card.yaml"
    path.write_text(head.format(layers=layers))
    return path


def test_per_type_bitwidths_and_overrides(tmp_path):
    c = load_card(card(tmp_path))
    conv, relu, pool, flat, fc = c.layers
    assert (str(conv.weight), str(conv.bias), conv.padding, conv.filters, conv.kernel) == (
        "(8,1)",
        "(12,2)",
        "same",
        2,
        3,
    )
    assert str(relu.activation) == "(16,6)" and pool.pool == 2 and flat.type == "flatten"
    assert (str(fc.weight), str(fc.bias)) == ("(10,1)", "(10,1)")
    assert {"conv1", "relu1", "pool1", "flatten1", "fc1"} == {layer.name for layer in c.layers}
    assert load_card("trigger_cnn").hardware.sample_rate_mhz == 40


@pytest.mark.parametrize(
    ("layers", "head", "needle"),
    [
        (BODY.replace("filters: 2, ", ""), CNN, "layers[0].filters: missing; a conv2d layer needs filters and kernel"),
        (BODY.replace("same", "full"), CNN, "layers[0].padding: 'full' is not allowed; expected one of valid, same"),
        (BODY.replace("{type: flatten}", "{type: dropout}"), CNN, "layers: a network with conv2d or maxpool2d"),
        (BODY.replace("{type: maxpool2d}", "{type: maxpool2d, pool: 1}"), CNN, "layers[2].pool: 1 is not allowed"),
        (
            BODY,
            CNN.replace("  activation: (16,6)\n", ""),
            "layers[1].activation: missing; give it here or as bitwidths.activation",
        ),
        (BODY, CNN.replace("  conv: (12,2)\n", "  conv: (12,13)\n"), "bitwidths.conv: "),
        (
            BODY,
            CNN.replace("  conv: (12,2)\n", "  pool: (12,2)\n"),
            "bitwidths.pool: unknown field; allowed: activation, batchnorm, conv, dense",
        ),
    ],
)
def test_card_errors_are_one_line_naming_the_field(tmp_path, layers, head, needle):
    with pytest.raises(FlowError) as exc:
        load_card(card(tmp_path, layers, head))
    assert needle in str(exc.value) and "\n" not in str(exc.value) and str(exc.value).startswith(str(tmp_path))


@pytest.mark.parametrize("name", ["trigger_cnn", "trigger_cnn_bn"])
def test_trigger_cards_choose_the_architecture_that_sustains_40_mhz(name):
    """`make sim`'s default is the card's hardware.arch: shiftadd, whose conv_ii 5 takes a crossing every 25 ns."""
    hw = load_card(QMODELS / f"{name}.yaml").hardware
    assert hw.arch == "shiftadd" and hw.sample_rate_mhz == 40.0 and hw.clock_period_ns == 5.0


def test_chunked_prediction_equals_one_trace(monkeypatch):
    from tests.test_cnn_layers import tiny_cnn

    ir = tiny_cnn()
    x = np.random.default_rng(2).integers(0, 255, (300, 36)).astype(np.float64)
    whole = reference.predict(ir, x)
    monkeypatch.setattr(reference, "TRACE_BUDGET", 10_000)  # blocks of a few dozen vectors
    assert reference.batch_limit(ir) < 100
    np.testing.assert_array_equal(reference.predict(ir, x), whole)


@pytest.fixture(scope="module")
def tiny_cnn_project(tmp_path_factory):
    """tiny_cnn (6 x 6 crossings, 2 filters, one epoch) built and verified once."""
    root = tmp_path_factory.mktemp("hls_projects")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flow.project, "PROJECTS_DIR", root)
        assert main(["-q", "hls", str(CARDS / "tiny_cnn.yaml")]) == 0
        assert main(["-q", "verify", "tiny_cnn"]) == 0
        yield Project.of("tiny_cnn")


@pytest.mark.slow
def test_tiny_cnn_verifies_on_every_layer(tiny_cnn_project):
    p = tiny_cnn_project
    ir = IR.load(p.ir_json)
    kinds = [n.kind for n in ir.nodes]
    assert kinds[:6] == [
        LayerKind.CONV2D,
        LayerKind.RELU,
        LayerKind.MAXPOOL2D,
        LayerKind.CONV2D,
        LayerKind.RELU,
        LayerKind.FLATTEN,
    ]
    assert ir.input.shape == (6, 6, 1) and ir.nodes[0].padding.value == "same"
    v = json.loads(p.verify_json.read_text())
    assert v["passed"] and v["mismatches"] == 0 and v["layers_compared"] == len(ir.nodes) - 1  # flatten: no trace
    assert set(v["mismatches_by_layer"]) == {n.name for n in ir.nodes if n.kind is not LayerKind.FLATTEN}
    assert v["qkeras_vs_reference"]["passed"]
    train, csim = json.loads(p.train_json.read_text()), json.loads(p.csim_json.read_text())
    assert train["primary_metric"] == "eff_at_10khz" and set(train["roc"]) == {"float", "qkeras"}
    for m in (train["float"]["metrics"], train["qkeras"]["metrics"], csim["metrics"], v["hardware_metrics"]):
        assert 0 <= m["eff_at_10khz"] <= 1 and m["eff_at_10khz_err"] >= 0
    # The reference is the hardware; C-sim and the reference agree bit for bit, so their figures are equal.
    assert v["hardware_metrics"] == csim["metrics"]
    assert v["roc"]["fpr"] and len(v["roc"]["fpr"]) == len(v["roc"]["efficiency"])


@pytest.mark.slow
def test_tiny_cnn_with_batchnorm_verifies_and_simulates(tmp_path, monkeypatch):
    """Unfused batch normalisation through the chain: folded in training, its own IR node, 0 mismatches in verify
    and in the parallel RTL (Icarus)."""
    monkeypatch.setattr(flow.project, "PROJECTS_DIR", tmp_path)
    assert main(["-q", "hls", str(CARDS / "tiny_cnn_bn.yaml")]) == 0
    assert main(["-q", "verify", "tiny_cnn_bn"]) == 0
    p = Project.of("tiny_cnn_bn")
    ir = IR.load(p.ir_json)
    bns = [n for n in ir.nodes if n.kind is LayerKind.BATCHNORM]
    assert [n.name for n in bns] == ["bn1", "bn2"] and ir.nodes[ir.nodes.index(bns[0]) - 1].kind is LayerKind.CONV2D
    v = json.loads(p.verify_json.read_text())
    assert v["passed"] and v["mismatches"] == 0 and {"bn1", "bn2"} <= set(v["mismatches_by_layer"])
    assert v["qkeras_vs_reference"]["passed"]
    assert main(["-q", "sim", "tiny_cnn_bn", "--sim", "icarus", "--arch", "parallel", "-n", "100"]) == 0
