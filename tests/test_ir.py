"""flow.ir v2 and the layer-kind registry: round trip, shapes, graphs, version refusal, completeness."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from flow import reference, rtl
from flow.errors import FlowError
from flow.features import difference_type
from flow.fixed import FixedType
from flow.ir import IR, InputSpec, Task
from flow.layers import (
    KINDS,
    BatchNormLayer,
    CastLayer,
    ClampLayer,
    Conv2DLayer,
    DenseLayer,
    DiagonalDifferenceLayer,
    FlattenLayer,
    LayerKind,
    Log1pLayer,
    MaxPool2DLayer,
    ReluLayer,
    VoteLayer,
)
from flow.layers.log1p import count_type
from flow.layers.vote import VoteMethod, class_index_type
from tb.irgen import mlp_ir

T = FixedType.parse("fixed<8,3,RND_CONV,SAT>")

# One small instance of every kind, on an input of 3 values (1-D, or a 1 x 3 x 1 image for the 2-D kinds): adding a
# kind adds its example here.
IMG = (1, 3, 1)
EXAMPLES = {
    LayerKind.DENSE: DenseLayer("d", T, np.array([[1, -2], [3, 0], [0, 5]]), T, np.array([1, -1]), T, T),
    LayerKind.RELU: ReluLayer("r", 3, T),
    LayerKind.CAST: CastLayer("c", (3,), FixedType.parse("fixed<4,2,RND,SAT>")),
    LayerKind.CLAMP: ClampLayer("k", 3, FixedType.parse("fixed<6,3,RND_CONV,SAT>"), -8, 9),
    LayerKind.CONV2D: Conv2DLayer(
        "cv", IMG, "same", T, np.array([[1, -2, 3]]).reshape(1, 3, 1, 1), T, np.array([2]), T, T
    ),
    LayerKind.MAXPOOL2D: MaxPool2DLayer("mp", IMG, (1, 2), (1, 1), T, T),
    LayerKind.FLATTEN: FlattenLayer("f", IMG, T),
    LayerKind.BATCHNORM: BatchNormLayer(
        "bn", 3, T, scale_t=T, scale=np.array([3, -4, 5]), bias_t=T, bias=np.array([1, 0, -1])
    ),
    LayerKind.LOG1P: Log1pLayer("l", (3,), FixedType.parse("ufixed<8,3,RND_CONV,SAT>"), 8),
    LayerKind.DIAGONAL_DIFFERENCE: DiagonalDifferenceLayer("dd", (2,), difference_type(T), 0),
    LayerKind.VOTE: VoteLayer("v", VoteMethod.HARD, 3, class_index_type(3)),
}
# Kinds that take other inputs than T: the input type and the raw values the registry test feeds them.
EXAMPLE_INPUTS = {LayerKind.LOG1P: (count_type(8), np.array([[0, 1, 255], [7, 0, 128]]))}
METHODS = ("to_dict", "from_dict", "out_shape", "validate", "kernel")


def in_shape(node) -> tuple[int, ...]:
    return getattr(node, "in_shape", (3,))


def one_node_ir(node) -> IR:
    in_t = EXAMPLE_INPUTS.get(node.kind, (T,))[0]
    ir = IR("one", Task.REGRESSION, [InputSpec(in_shape(node), in_t, "x")], [node])
    ir.validate()
    return ir


def test_registry_is_complete():
    """Every kind is registered and owns (de)serialisation, a shape rule, validation and a reference kernel."""
    assert set(KINDS) == set(LayerKind) == set(EXAMPLES)
    for kind, cls in KINDS.items():
        assert cls.kind is kind and isinstance(cls.in_hls, bool)
        assert all(callable(getattr(cls, m, None)) for m in METHODS), cls
        node = EXAMPLES[kind]
        ir = one_node_ir(node)
        again = IR.from_dict(json.loads(json.dumps(ir.to_dict())))
        assert again.to_dict() == ir.to_dict() and again.digest() == ir.digest()
        assert node.out_shape([in_shape(node)]) == node.shape
        x = EXAMPLE_INPUTS.get(kind, (T, np.array([[-128, 0, 127], [5, -6, 7]], dtype=np.int64)))[1]
        assert reference.run(ir, x).output_raw.shape == (2, *node.shape)


@pytest.mark.parametrize("arch", sorted(rtl.ARCHS))
def test_every_architecture_emits_or_refuses_every_kind(arch, tmp_path, monkeypatch):
    """Each kind is in the architecture's KINDS (it emits it), or generate() refuses it in one line."""
    gen = rtl.get_arch(arch)
    for kind in LayerKind:
        ir = mlp_ir("k", [3, 2], seed=1) if kind is LayerKind.DENSE else one_node_ir(EXAMPLES[kind])
        if kind in gen.KINDS:
            continue  # emitted: test_rtl / test_sim check it bit for bit
        with pytest.raises(FlowError, match=rf"^{arch}: layer \w+ is a {kind.value} layer, which {arch} does not"):
            rtl.generate(ir, arch, tmp_path / kind.value)
    # The refusal itself, for a kind the architecture is made not to emit.
    monkeypatch.setattr(gen, "KINDS", gen.KINDS - {LayerKind.CLAMP})
    with pytest.raises(FlowError, match=f"layer k is a clamp layer, which {arch} does not emit"):
        rtl.generate(one_node_ir(EXAMPLES[LayerKind.CLAMP]), arch, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_schema_v2_names_inputs_shapes_outputs():
    ir = mlp_ir("m", [4, 3, 2], seed=0)
    d = ir.to_dict()
    assert d["version"] == 2 and d["inputs"] == [{"name": "input", "shape": [4], "type": str(ir.input.type)}]
    assert [n["inputs"] for n in d["nodes"]] == [["input"], ["fc1"], ["relu1"]]
    assert [n["shape"] for n in d["nodes"]] == [[3], [3], [2]] and d["outputs"] == ["fc2"]
    assert ir.chain() == ir.nodes and ir.n_outputs == 2


@pytest.mark.parametrize("version", [1, 3])
def test_other_versions_are_one_line(tmp_path, version):
    path = tmp_path / "ir.json"
    path.write_text(json.dumps({"version": version, "name": "diag_05", "layers": []}))
    with pytest.raises(FlowError) as err:
        IR.load(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ir.json version {version} is from")
    assert msg.endswith("qflow; rebuild with `make hls MODEL=diag_05`")


def test_shape_rule_refuses_a_wrong_declared_shape():
    """The shape check must fail on a known-wrong shape: a relu of 4 values after a dense layer of 3."""
    ir = mlp_ir("m", [4, 3, 2], seed=0)
    bad = [ir.nodes[0], dataclasses.replace(ir.nodes[1], shape=(4,)), ir.nodes[2]]
    with pytest.raises(FlowError, match="relu1: shape \\[4\\] but its input has shape \\[3\\]"):
        IR("m", ir.task, ir.inputs, bad).validate()
    d = ir.to_dict()
    d["nodes"][2]["shape"] = [5]
    with pytest.raises(FlowError, match="fc2 declares shape \\[5\\], its rule gives \\[2\\]"):
        IR.from_dict(d)
    d = ir.to_dict()
    d["nodes"][1]["inputs"] = ["nowhere"]
    with pytest.raises(FlowError, match="relu1 takes nowhere, not defined before it"):
        IR.from_dict(d)


def test_a_graph_runs_in_the_reference_and_chain_architectures_refuse_it(tmp_path):
    """Two branches from one input: the reference evaluates the graph; chain-based RTL refuses in one line."""
    relu = ReluLayer("pos", 3, T, inputs=("x",))
    cast = CastLayer("half", 3, FixedType.parse("fixed<6,3,TRN,SAT>"), inputs=("x",))  # 2 fraction bits fewer
    ir = IR("g", Task.REGRESSION, [InputSpec(3, T, "x")], [relu, cast], outputs=["pos", "half"])
    ir.validate()
    x = np.array([[-16, 3, 17]], dtype=np.int64)
    trace = reference.run(ir, x)
    assert trace.of("pos").tolist() == [[0, 3, 17]] and trace.of("half").tolist() == [[-4, 0, 4]]
    with pytest.raises(FlowError, match="node half takes x, not only the node before it; the folded architecture"):
        rtl.generate(ir, "folded", tmp_path / "rtl")
    assert not (tmp_path / "rtl").exists()


def test_every_kind_has_one_registered_class_and_a_second_is_refused():
    import dataclasses

    from flow.layers import KINDS, LayerKind, ReluLayer
    from flow.layers.base import register

    assert set(KINDS) == set(LayerKind) and KINDS[LayerKind.RELU] is ReluLayer
    impostor = dataclasses.make_dataclass("Impostor", [], bases=(ReluLayer,), frozen=True)
    with pytest.raises(FlowError, match="layer kind relu registered twice"):
        register(impostor)
    assert KINDS[LayerKind.RELU] is ReluLayer
