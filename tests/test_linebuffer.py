"""The ``linebuffer`` architecture: CNNs streamed one pixel per beat, bit for bit against the reference in Icarus
and Verilator (tiny and random CNNs: every padding, odd kernels, channels, pooling with dropped edges, batch norm,
reuse factors), known-wrong designs that fail, lint, and the one-line refusals."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from test_cnn_layers import tiny_cnn

from flow.errors import FlowError
from flow.fixed import FixedType, Rounding
from flow.ir import IR, InputSpec, Task
from flow.layers import BatchNormLayer, Conv2DLayer, DenseLayer, FlattenLayer, MaxPool2DLayer, Padding, ReluLayer
from flow.layers.base import LayerKind
from flow.rtl import generate, linebuffer
from flow.rtl.lint import lint
from flow.sim import simulate
from tb.irgen import _bias_type, _random_type, write_vectors

ROUNDINGS = list(Rounding)


def _accumulator(rng: np.random.Generator, in_t: FixedType, w_t: FixedType, n_in: int) -> FixedType:
    """Exact for the products; sometimes narrow enough to wrap (the RTL sums modulo 2**W, as the reference)."""
    frac = in_t.frac_bits + w_t.frac_bits + int(rng.integers(0, 3))
    exact = (in_t.width - in_t.frac_bits) + (w_t.width - w_t.frac_bits) + math.ceil(math.log2(n_in + 1)) + 1
    int_bits = exact - int(rng.integers(0, 4)) if rng.random() < 0.3 else exact + 1
    return FixedType(max(2, frac + int_bits), int_bits, True, ROUNDINGS[int(rng.integers(len(ROUNDINGS)))])


def _weights(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[FixedType, np.ndarray]:
    t = _random_type(rng, 2, 8)
    t = FixedType(t.width, t.int_bits, t.signed)
    w = rng.integers(t.min_raw, t.max_raw + 1, size=shape)
    w[rng.random(size=shape) < 0.2] = 0
    return t, w


def _biases(rng: np.random.Generator, n: int) -> tuple[FixedType, np.ndarray]:
    t = _bias_type(rng)
    zero = t.width == 2 and t.int_bits == 32
    return t, np.zeros(n, dtype=np.int64) if zero else rng.integers(t.min_raw, t.max_raw + 1, size=n)


def random_cnn(seed: int) -> IR:
    """1-2 convolutions (kernels 1-3 x 1-3, valid or same, 1-3 filters), relu/cast/batchnorm, maybe a max pool
    (pools that leave rows or columns out), flatten, 1-2 dense layers; random types and every cast mode."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(3, 7)), int(rng.integers(3, 7)), int(rng.integers(1, 4)))
    in_t = _random_type(rng, 3, 9)
    t, nodes, mode = in_t, [], seed
    for k in range(int(rng.integers(1, 3))):
        h, w, c = shape
        kh, kw, f = int(rng.integers(1, min(h, 3) + 1)), int(rng.integers(1, min(w, 3) + 1)), int(rng.integers(1, 4))
        padding = Padding.SAME if rng.random() < 0.5 else Padding.VALID
        w_t, wts = _weights(rng, (kh, kw, c, f))
        b_t, b = _biases(rng, f)
        acc = _accumulator(rng, t, w_t, kh * kw * c)
        res = _random_type(rng, 3, 12, mode)
        mode += 1
        conv = Conv2DLayer(f"conv{k}", shape, padding, w_t, wts, b_t, b, acc, res)
        nodes.append(conv)
        shape, t = conv.shape, res
        if rng.random() < 0.4:
            s_t = FixedType(int(rng.integers(2, 9)), int(rng.integers(-1, 4)), bool(rng.random() < 0.5))
            sb_t = FixedType(int(rng.integers(3, 9)), int(rng.integers(-1, 4)), True)
            bn_t = _random_type(rng, 3, 12, mode)
            scale = rng.integers(s_t.min_raw, s_t.max_raw + 1, size=shape[2])
            shift = rng.integers(sb_t.min_raw, sb_t.max_raw + 1, size=shape[2])
            nodes.append(BatchNormLayer(f"bn{k}", shape, bn_t, scale_t=s_t, scale=scale, bias_t=sb_t, bias=shift))
            t = bn_t
        if rng.random() < 0.6:
            t = _random_type(rng, 3, 12, mode)
            nodes.append(ReluLayer(f"relu{k}", shape, t))
        mode += 1
    if rng.random() < 0.6 and min(shape[:2]) >= 2:
        pool = (int(rng.integers(1, 3)), int(rng.integers(2, 4)) if shape[1] >= 3 else 2)
        acc_t, res_t = _random_type(rng, 3, 12, mode), _random_type(rng, 3, 12, mode + 1)
        nodes.append(MaxPool2DLayer("pool", shape, pool, pool, acc_t, res_t))
        shape, t = nodes[-1].shape, res_t
    nodes.append(FlattenLayer("flat", shape, t))
    n = math.prod(shape)
    for d in range(int(rng.integers(1, 3))):
        n_out = int(rng.integers(1, 4))
        w_t, wts = _weights(rng, (n, n_out))
        b_t, b = _biases(rng, n_out)
        acc = _accumulator(rng, t, w_t, n)
        t = _random_type(rng, 3, 12, mode + 2 + d)
        nodes.append(DenseLayer(f"fc{d}", w_t, wts, b_t, b, acc, t))
        n = n_out
    task = Task.CLASSIFICATION if n > 1 else Task.REGRESSION
    ir = IR(f"cnn{seed}", task, [InputSpec(nodes[0].in_shape, in_t)], nodes)
    ir.validate()
    return ir


def run(ir: IR, tmp_path, sim: str, n: int, rtl_ir: IR | None = None, **knobs):
    """Generate ``rtl_ir`` (default ``ir``), simulate it against ``ir``'s reference on ``n`` vectors."""
    design = generate(rtl_ir or ir, "linebuffer", tmp_path / f"rtl_{sim}", **knobs)
    vectors = write_vectors(ir, tmp_path / "vectors.npz", n, seed=5)
    return design, simulate(design, vectors, sim, tmp_path / f"sim_{sim}", seed=5)


def test_tiny_cnn_in_icarus(tmp_path) -> None:
    """conv (same) -> relu -> maxpool -> batchnorm -> conv (valid) -> flatten -> dense, images back to back with
    random gaps and back-pressure: every output bit for bit; the interface is one pixel per beat."""
    design, r = run(tiny_cnn(), tmp_path, "icarus", 5)
    assert r.passed and r.mismatches == 0, r.error
    din = design.ports["in_data"]
    assert (din["elements"], din["beats"], design.ports["in_last"]["dir"]) == (1, 36, "in")
    assert r.ii_cycles == design.ii_cycles == 36 * (9 + 3)  # the first convolution: 9 taps + 3 per output pixel
    assert r.latency_cycles <= design.latency_cycles_expected  # an upper bound
    assert design.layer_modules[:2] == ["qflow_cnn_c1_lb", "qflow_cnn_c1"]


def test_generated_cnns_are_lint_clean(tmp_path) -> None:
    for seed in range(4):
        design = generate(random_cnn(seed), "linebuffer", tmp_path / f"d{seed}")
        assert lint(design) == [], f"seed {seed}"


def test_refusals_are_one_line(tmp_path) -> None:
    ir = tiny_cnn()
    with pytest.raises(FlowError, match=r"layer c2: reuse factor 5 must give whole pixels .* choose from 18, 9$"):
        generate(ir, "linebuffer", tmp_path / "x", reuse_factors={"c2": 5})
    with pytest.raises(FlowError, match="no conv2d or dense layer named p1"):
        generate(ir, "linebuffer", tmp_path / "x", reuse_factors={"p1": 2})
    nodes = list(ir.nodes)
    nodes[2] = dataclasses.replace(nodes[2], stride=(1, 1))
    nodes[3] = dataclasses.replace(nodes[3], shape=(5, 5, 2))
    nodes[4] = dataclasses.replace(nodes[4], in_shape=(5, 5, 2))
    nodes[5] = FlattenLayer("fl", (3, 3, 2), nodes[5].result_t)
    nodes[6] = dataclasses.replace(nodes[6], weights=np.zeros((18, 1), dtype=np.int64))
    strided = IR(ir.name, ir.task, ir.inputs, nodes)
    with pytest.raises(FlowError, match="layer p1: max pooling streams only with stride = pool"):
        generate(strided, "linebuffer", tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_random_cnns(tmp_path, seed, sim) -> None:
    ir = random_cnn(seed)
    conv = next(n for n in ir.nodes if n.kind is LayerKind.CONV2D)
    c = conv.in_shape[2]
    knobs = {"reuse_factors": {conv.name: conv.as_dense().n_in // c}} if seed % 2 and c > 1 else {}
    design, r = run(ir, tmp_path, sim, 12 if sim == "icarus" else 200, **knobs)
    assert r.passed and r.mismatches == 0, r.error
    assert design.ii_cycles <= r.ii_cycles and r.latency_cycles <= design.latency_cycles_expected  # bounds


def _flipped(ir: IR) -> IR:
    """The first convolution flipped (a true convolution, not Keras' correlation): the window read in reverse."""
    nodes = list(ir.nodes)
    nodes[0] = dataclasses.replace(nodes[0], weights=nodes[0].weights[::-1, ::-1].copy())
    return IR(ir.name, ir.task, ir.inputs, nodes)


def _bn_shift(ir: IR) -> IR:
    """One channel's batch-norm shift off by one LSB of the layer's result."""
    nodes = list(ir.nodes)
    i = next(i for i, n in enumerate(nodes) if n.kind is LayerKind.BATCHNORM)
    bn = nodes[i]
    bias = bn.bias.copy()
    step = 1 << max(0, bn.bias_t.frac_bits - bn.result_t.frac_bits)
    bias[1] += step if bias[1] + step <= bn.bias_t.max_raw else -step
    nodes[i] = dataclasses.replace(bn, bias=bias)
    return IR(ir.name, ir.task, ir.inputs, nodes)


@pytest.mark.slow
@pytest.mark.parametrize("broken", ["conv", "batchnorm", "padding", "pool"])
def test_known_wrong_designs_fail(tmp_path, monkeypatch, broken) -> None:
    """A design that reads the window in the wrong order, shifts a batch norm, pads on the wrong side or starts
    a pooling window late gives mismatches."""
    ir = tiny_cnn()
    rtl_ir = {"conv": _flipped, "batchnorm": _bn_shift}.get(broken, lambda x: x)(ir)
    if broken == "padding":  # same padding's zeros after the image instead of before (kernel 3: 2 after, 0 before)
        monkeypatch.setattr(linebuffer, "pad_before_after", lambda k, p: (0, k - 1) if p is Padding.SAME else (0, 0))
    if broken == "pool":  # the partial maximum restarted one column late
        real = linebuffer.pool_module
        monkeypatch.setattr(linebuffer, "pool_module", lambda *a: real(*a).replace("pc == 1'd0;", "pc == 1'd1;"))
    _, r = run(ir, tmp_path, "icarus", 8, rtl_ir)
    assert not r.passed and r.mismatches > 0, broken


@pytest.mark.slow
def test_tiny_cnn_in_verilator_with_more_multipliers(tmp_path) -> None:
    """The second convolution with both input channels per step (R = 9: 2 multipliers per filter)."""
    design, r = run(tiny_cnn(), tmp_path, "verilator", 500, reuse_factors={"c2": 9})
    assert r.passed and r.mismatches == 0, r.error
    assert design.knobs["reuse_factors"] == {"c1": 9, "c2": 9, "fc": 2}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 2, 5])
def test_folded_takes_a_cnn_as_full_dense_layers(tmp_path, seed) -> None:
    """The architecture linebuffer is measured against: each convolution folded as its full dense layer, max
    pooling in the layer's module (random CNNs and the tiny one, Icarus)."""
    for k, ir in enumerate([random_cnn(seed)] + ([tiny_cnn()] if seed == 0 else [])):
        design = generate(ir, "folded", tmp_path / f"rtl{k}")
        r = simulate(design, write_vectors(ir, tmp_path / f"v{k}.npz", 6, seed=5), "icarus", tmp_path / f"s{k}")
        assert r.passed and r.mismatches == 0, r.error
