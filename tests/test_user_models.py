"""QKeras models written outside qflow: each converts with reference == C-sim == QKeras, or is refused in one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import flow.project
from flow.cli import main
from flow.project import Project

N_TRAIN, N_TEST = 120, 40


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    root = tmp_path_factory.mktemp("hls_projects")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flow.project, "PROJECTS_DIR", root)
        yield root


def _q():
    import qkeras

    return qkeras


def bits(b, i, **kw):
    return _q().quantized_bits(b, i, **({"alpha": 1} | kw))


def dense(n, name, k=None, b=None, **kw):
    return _q().QDense(n, kernel_quantizer=k or bits(6, 0), bias_quantizer=b or bits(6, 0), name=name, **kw)


def act(q, name):
    return _q().QActivation(q, name=name)


def relu(b, i, name, **kw):
    return act(_q().quantized_relu(b, i, **kw), name)


def save_user_model(tmp: Path, name: str, n_in: int, layers, n_out: int, *, scale=1.0, regression=False, seed=0):
    """A model (a chain of ``layers`` after the input) and random data, saved as a user would: .h5 and .npz."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((n_in,), name="x")
    x = inp
    for layer in layers():
        x = layer(x)
    model = tf.keras.Model(inp, x, name=name)
    rng = np.random.default_rng(seed)
    X = (rng.normal(0, scale, (N_TRAIN + N_TEST, n_in))).astype(np.float32)
    y = rng.normal(0, 1, (len(X), n_out)) if regression else rng.integers(0, n_out, len(X))
    npz = tmp / f"{name}.npz"
    np.savez(npz, X_train=X[:N_TRAIN], y_train=y[:N_TRAIN], X_test=X[N_TRAIN:], y_test=y[N_TRAIN:])
    h5 = tmp / f"{name}.h5"
    model.save(h5, save_format="h5")
    return h5, npz


# name -> (n_in, layers, n_out, options): shapes from hls4ml's QKeras tests and from users' models.
CONVERTS = {
    "single_relu": (8, lambda: [dense(4, "fc1"), relu(4, 0, "relu1")], 4, {}),
    "kwarg_relu": (8, lambda: [dense(4, "fc1", activation=_q().quantized_relu(4, 0))], 4, {}),
    "kwarg_bits": (6, lambda: [dense(5, "fc1", activation=bits(6, 2)), dense(3, "fc2")], 3, {}),
    "jet_tagger": (
        16,
        lambda: [
            dense(64, "fc1"),
            relu(6, 0, "relu1"),
            dense(32, "fc2"),
            relu(6, 0, "relu2"),
            dense(32, "fc3"),
            relu(6, 0, "relu3"),
            dense(5, "output"),
        ],
        5,
        {},
    ),
    "int_input_3_2": (8, lambda: [act(bits(3, 2), "iq"), dense(4, "fc1")], 4, {"scale": 3.0}),
    # A user's batchnorm with its own statistics (scale 1/sqrt(1 + eps), on no grid): hls4ml's exact types.
    "batchnorm_stats": (
        8,
        lambda: [dense(6, "fc1"), _keras("BatchNormalization", name="bn"), relu(6, 2, "r1"), dense(3, "fc2")],
        3,
        {},
    ),
    "int_input_6_5": (8, lambda: [act(bits(6, 5), "iq"), dense(4, "fc1"), relu(4, 2, "r")], 4, {"scale": 20.0}),
    "int_hidden": (8, lambda: [act(bits(8, 2), "iq"), dense(6, "fc1"), act(bits(4, 3), "h"), dense(3, "fc2")], 3, {}),
    "int_relu": (8, lambda: [dense(6, "fc1"), relu(3, 3, "r1"), dense(3, "fc2")], 3, {"scale": 4.0}),
    "unsigned_input": (6, lambda: [act(bits(8, 2, keep_negative=False), "iq"), dense(4, "fc1")], 4, {}),
    "unsigned_hidden": (
        8,
        lambda: [act(bits(8, 2), "iq"), dense(6, "fc1"), act(bits(6, 2, keep_negative=False), "h"), dense(3, "fc2")],
        3,
        {},
    ),
    "regression_no_bias": (
        4,
        lambda: [dense(8, "fc1", use_bias=False), relu(8, 3, "r1"), _dropout(), dense(1, "fc2")],
        1,
        {"regression": True},
    ),
    "output_quantizer": (5, lambda: [dense(6, "fc1"), relu(6, 2, "r1"), dense(2, "fc2"), act(bits(8, 3), "oq")], 2, {}),
}


def _dropout():
    import tensorflow as tf

    return tf.keras.layers.Dropout(0.25, name="drop")


# Known kinds that would give hardware other than the trained model: refused before any compile.
REFUSED = {
    "binary": (
        lambda: [act(bits(8, 2), "iq"), dense(4, "fc1", k=_q().binary(alpha=1))],
        "layer fc1 (QDense) kernel_quantizer binary(alpha=1): binary is not supported",
    ),
    "ternary": (
        lambda: [act(bits(8, 2), "iq"), dense(4, "fc1", k=_q().ternary(alpha=1))],
        "layer fc1 (QDense) kernel_quantizer ternary(alpha=1): ternary is not supported",
    ),
    "alpha_auto": (
        lambda: [dense(4, "fc1", k=_q().quantized_bits(6, 0, alpha="auto"))],
        "layer fc1 (QDense) kernel_quantizer quantized_bits(6,0,1,alpha='auto'): alpha='auto'",
    ),
    "alpha_auto_po2": (
        lambda: [dense(4, "fc1", k=_q().quantized_bits(6, 0, alpha="auto_po2"))],
        "kernel_quantizer quantized_bits(6,0,1,alpha='auto_po2'): alpha='auto_po2'",
    ),
    "alpha_none_weights": (
        lambda: [dense(4, "fc1", k=_q().quantized_bits(6, 0))],
        "alpha='auto_po2' (a scale hls4ml cannot reproduce bit for bit; use alpha=1",
    ),
    "leaky_relu": (
        lambda: [dense(4, "fc1"), relu(4, 0, "leaky", negative_slope=0.25)],
        "layer leaky (QActivation) activation quantized_relu(4,0,0.25): negative_slope=0.25",
    ),
    "symmetric": (
        lambda: [act(bits(8, 2, symmetric=1), "iq"), dense(4, "fc1")],
        "layer iq (QActivation) activation quantized_bits(8,2,1,alpha=1): symmetric=1",
    ),
    "unsigned_weights": (
        lambda: [dense(4, "fc1", k=bits(6, 0, keep_negative=False))],
        "keep_negative=False weights",
    ),
    "softmax": (
        lambda: [dense(4, "fc1"), _keras("Activation", "softmax", name="softmax")],
        "layer softmax (Activation) activation 'softmax' is unquantized",
    ),
    "float_dense": (
        lambda: [_keras("Dense", 4, name="fc1")],
        "layer fc1 (Dense) is not supported (supported layers: InputLayer, QDense, QActivation, Dropout",
    ),
    "batchnorm_after_activation": (
        lambda: [dense(4, "fc1"), relu(6, 2, "r1"), _keras("BatchNormalization", name="bn")],
        "layer bn (BatchNormalization) must follow a QDense or QConv2D without an activation",
    ),
    "quantizer_only": (
        lambda: [act(bits(8, 0), "q")],
        "the model has no QDense layer (only InputLayer, QActivation); qflow converts networks with at least one",
    ),
    "double_quantizer": (
        lambda: [dense(4, "fc1"), relu(6, 2, "r1"), act(bits(5, 1), "q2")],
        "layer q2 (QActivation) quantizes the output of r1's quantizer again",
    ),
}


def _keras(kind, *args, **kw):
    import tensorflow as tf

    return getattr(tf.keras.layers, kind)(*args, **kw)


# More of the same kinds (each ~8 s on a quiet core): run with -m slow.
SLOW = {
    "batchnorm_stats",
    "jet_tagger",  # the largest: a C simulation of 16 x 64 x 32 x 32 x 5 takes the longest to compile
    "kwarg_bits",
    "int_input_6_5",
    "int_relu",
    "unsigned_input",
    "regression_no_bias",
    "output_quantizer",
    "single_relu",
}


def _params(names, slow=SLOW):
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in sorted(names)]


@pytest.mark.parametrize("name", _params(CONVERTS))
def test_user_model_converts_and_matches_qkeras(projects, tmp_path, name):
    n_in, layers, n_out, opts = CONVERTS[name]
    h5, npz = save_user_model(tmp_path, name, n_in, layers, n_out, **opts)
    assert main(["-q", "hls", "--keras", str(h5), "--data", str(npz)]) == 0
    csim = json.loads(Project.of(name).csim_json.read_text())
    assert csim["qkeras_vs_reference"]["passed"], csim["qkeras_vs_reference"]
    # These models' arithmetic is exact in float32: QKeras, the reference and the C simulation agree exactly.
    assert csim["qkeras_vs_csim"]["max_abs_diff"] == 0
    assert csim["qkeras_vs_reference"]["end_to_end"]["max_abs_diff"] == 0


@pytest.mark.parametrize("name", _params(["int_input_3_2", "unsigned_hidden", "int_input_6_5", "kwarg_relu"]))
def test_user_model_verifies_bit_exact(projects, name):
    """After the conversion test: every layer of reference == C-sim on test + random vectors, and QKeras agrees."""
    project = Project.of(name)
    if not project.ir_json.exists():
        pytest.skip("conversion test did not run")
    assert main(["-q", "verify", name, "-n", "300"]) == 0
    summary = json.loads(project.verify_json.read_text())
    assert summary["mismatches"] == 0 and summary["bit_exact"] and summary["qkeras_vs_reference"]["passed"]


def test_user_model_rtl_in_both_simulators(projects):
    """The integer-input model end to end: its RTL in both simulators equals the reference on every vector."""
    from flow.sim import run_stage

    project = Project.of("int_input_3_2")
    if not project.vectors.exists():
        pytest.skip("verify test did not run")
    for arch, simulator in (("parallel", "icarus"), ("folded", "verilator")):  # one Verilator build is enough
        result = run_stage("int_input_3_2", simulator, arch, 40, projects_dir=projects)
        assert result.passed and result.mismatches == 0, result.error


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_user_model_refused_in_one_line(projects, tmp_path, capsys, name):
    layers, expected = REFUSED[name]
    h5, npz = save_user_model(tmp_path, name, 8, layers, 8 if name == "quantizer_only" else 4)
    capsys.readouterr()
    assert main(["-q", "hls", "--keras", str(h5), "--data", str(npz)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {h5}: "), err
    assert expected in err, err
    assert not (projects / name).exists()  # refused before anything was compiled or written


def test_input_type_from_data_and_from_the_option(projects, tmp_path, capsys):
    """Without an input quantizer: 16 bits with integer bits from X_train's range; --input-bits overrides."""
    from flow.input_bits import choose_input

    x = np.array([[-5.0, 3.9], [7.5, 0.1]])
    choice = choose_input(x)
    assert (choice.width, choice.int_bits, choice.saturated) == (16, 3, 0)
    assert str(choice.fixed) == "fixed<16,4,RND_CONV,SAT>"
    assert choose_input(x, (6, 2)).saturated == 2  # 7.5 and -5.0 are beyond [-4, 3.875]
    h5, npz = save_user_model(tmp_path, "given_bits", 4, lambda: [dense(3, "fc1")], 3)
    assert main(["hls", "--keras", str(h5), "--data", str(npz), "--input-bits", "(8,1)"]) == 0
    err = capsys.readouterr().err
    assert "input quantized_bits(8,1) = fixed<8,2,RND_CONV,SAT> (--input-bits); saturates" in err
    assert Project.of("given_bits").ir_json.exists()
    from flow.ir import IR

    assert str(IR.load(Project.of("given_bits").ir_json).input.type) == "fixed<8,2,RND_CONV,SAT>"
    for bad in ("(8,8)", "(40,2)", "eight"):
        assert main(["hls", "--keras", str(h5), "--data", str(npz), "--input-bits", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: --input-bits {bad!r}: ") and len(err.splitlines()) == 1


def test_qkeras_check_fails_on_a_known_wrong_reference(projects):
    """The check against QKeras names the first layer whose reference differs: a weight, a rounding mode."""
    from flow import qkeras_check, reference
    from flow.fixed import Rounding
    from flow.ir import IR
    from flow.model import load_keras

    project = Project.of("jet_tagger")
    if not project.ir_json.exists():
        pytest.skip("conversion test did not run")
    ir = IR.load(project.ir_json)
    model = load_keras(project.keras)
    with np.load(project.data) as d:
        x_raw = reference.quantize_input(ir, d["X_test"])
    assert qkeras_check.check(model, ir, x_raw).passed
    fc2 = next(i for i, layer in enumerate(ir.layers) if layer.name == "fc2")
    w = ir.layers[fc2].weights.copy()
    w[0, 0] += 1
    bad = replace(ir, nodes=[*ir.layers[:fc2], replace(ir.layers[fc2], weights=w), *ir.layers[fc2 + 1 :]])
    result = qkeras_check.check(model, bad, x_raw)
    assert not result.passed and result.first_failure.keras_layer == "fc2"
    assert "QKeras vs reference: layer fc2 (IR fc2) differs" in result.message()
    r2 = next(i for i, layer in enumerate(ir.layers) if layer.name == "relu2")
    trn = replace(ir.layers[r2], result_t=replace(ir.layers[r2].result_t, rounding=Rounding.TRN))
    result = qkeras_check.check(model, replace(ir, nodes=[*ir.layers[:r2], trn, *ir.layers[r2 + 1 :]]), x_raw)
    assert not result.passed and result.first_failure.keras_layer == "relu2"
