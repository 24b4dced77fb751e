"""Small IRs for tests and benchmarks (random types and modes, odd bias types) and their vectors files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from flow import reference
from flow.fixed import FixedType, Overflow, Rounding
from flow.ir import IR, CastLayer, DenseLayer, InputSpec, ReluLayer, Task
from flow.layers import BatchNormLayer, Conv2DLayer, FlattenLayer, MaxPool2DLayer
from flow.project import write_npz

ROUNDINGS = list(Rounding)
OVERFLOWS = list(Overflow)


def _random_type(rng: np.random.Generator, lo_w: int, hi_w: int, mode_index: int | None = None) -> FixedType:
    width = int(rng.integers(lo_w, hi_w + 1))
    signed = bool(rng.random() < 0.7)
    int_bits = int(rng.integers(-2, width + 3))
    if mode_index is None:
        rnd, ovf = ROUNDINGS[int(rng.integers(len(ROUNDINGS)))], OVERFLOWS[int(rng.integers(len(OVERFLOWS)))]
    else:
        rnd, ovf = ROUNDINGS[mode_index % len(ROUNDINGS)], OVERFLOWS[(mode_index // len(ROUNDINGS)) % len(OVERFLOWS)]
    return FixedType(width, int_bits, signed, rnd, ovf)


def _bias_type(rng: np.random.Generator) -> FixedType:
    choice = int(rng.integers(4))
    if choice == 0:
        return FixedType(2, 32, signed=False)  # hls4ml's type for all-zero biases: frac_bits = -30
    if choice == 1:
        return FixedType(16, -12)  # frac_bits = 28: more than the accumulator has
    return _random_type(rng, 3, 10)


def random_ir(
    seed: int, *, max_layers: int = 3, max_width: int = 6, mode_offset: int = 0, batchnorm: bool = False
) -> IR:
    """A small random network: 1-3 dense layers with relu/cast layers, random types and every cast mode.

    The output casts cycle through the 28 rounding x overflow combinations from ``mode_offset``; accumulators
    are exact for the products and sometimes narrow enough to wrap. ``batchnorm`` puts a batchnorm after every
    dense layer (drawn from its own generator, so the rest of the network is the one the seed gives without).
    """
    rng = np.random.default_rng(seed)
    bn_rng = np.random.default_rng(seed + 7919)
    n = int(rng.integers(1, max_width + 1))
    in_t = _random_type(rng, 3, 10)
    layers: list = []
    t = in_t
    mode = mode_offset
    for d in range(int(rng.integers(1, max_layers + 1))):
        n_out = int(rng.integers(1, max_width + 1))
        w_t = _random_type(rng, 2, 8)
        w_t = FixedType(w_t.width, w_t.int_bits, w_t.signed)
        w = rng.integers(w_t.min_raw, w_t.max_raw + 1, size=(n, n_out))
        w[rng.random(size=w.shape) < 0.25] = 0
        b_t = _bias_type(rng)
        if b_t.width == 2 and b_t.int_bits == 32:
            b = np.zeros(n_out, dtype=np.int64)
        else:
            b = rng.integers(b_t.min_raw, b_t.max_raw + 1, size=n_out)
        frac = t.frac_bits + w_t.frac_bits + int(rng.integers(0, 3))
        exact_int = (t.width - t.frac_bits) + (w_t.width - w_t.frac_bits) + math.ceil(math.log2(n + 1)) + 1
        int_bits = exact_int - int(rng.integers(0, 4)) if rng.random() < 0.3 else exact_int + 1
        acc_t = FixedType(max(2, frac + int_bits), int_bits, True, ROUNDINGS[int(rng.integers(len(ROUNDINGS)))])
        res_t = _random_type(rng, 3, 12, mode)
        mode += 1
        layers.append(DenseLayer(f"fc{d}", w_t, w, b_t, b, acc_t, res_t))
        t = res_t
        if batchnorm:
            s_t = FixedType(*[int(v) for v in bn_rng.integers((2, -1), (9, 4))], bool(bn_rng.random() < 0.5))
            sb_t = _random_type(bn_rng, 2, 8)
            sb_t = FixedType(sb_t.width, sb_t.int_bits, True)
            bn_t = _random_type(bn_rng, 3, 12, mode)
            mode += 1
            scale = bn_rng.integers(s_t.min_raw, s_t.max_raw + 1, size=n_out)
            shift = bn_rng.integers(sb_t.min_raw, sb_t.max_raw + 1, size=n_out)
            layers.append(BatchNormLayer(f"bn{d}", (n_out,), bn_t, scale_t=s_t, scale=scale, bias_t=sb_t, bias=shift))
            t = bn_t
        for _ in range(int(rng.integers(0, 2))):
            nt = _random_type(rng, 3, 12, mode)
            mode += 1
            layers.append((ReluLayer if rng.random() < 0.5 else CastLayer)(f"act{d}_{len(layers)}", n_out, nt))
            t = nt
        n = n_out
    task = Task.CLASSIFICATION if n > 1 and rng.random() < 0.7 else Task.REGRESSION
    ir = IR(f"rand{seed}", task, [InputSpec(int(layers[0].n_in), in_t)], layers)
    ir.validate()
    return ir


def random_cnn_ir(seed: int, *, mode_offset: int = 0) -> IR:
    """A small random CNN: 1-2 convolutions (valid or same, 1-3 filters, 2x2 or 3x3), each followed by relu or a
    cast and maybe a max pool, then flatten and a dense layer; random types, every cast mode, wrapping
    accumulators now and then, zero weights."""
    rng = np.random.default_rng(seed)
    h, w, c = int(rng.integers(3, 7)), int(rng.integers(3, 7)), int(rng.integers(1, 3))
    in_t = _random_type(rng, 3, 9)
    layers: list = []
    t, shape, mode = in_t, (h, w, c), mode_offset

    def acc_type(n_terms: int, x_t: FixedType, w_t: FixedType) -> FixedType:
        frac = x_t.frac_bits + w_t.frac_bits + int(rng.integers(0, 2))
        exact = (x_t.width - x_t.frac_bits) + (w_t.width - w_t.frac_bits) + math.ceil(math.log2(n_terms + 1)) + 1
        int_bits = exact - int(rng.integers(0, 3)) if rng.random() < 0.25 else exact + 1
        return FixedType(max(2, frac + int_bits), int_bits, True)

    for d in range(int(rng.integers(1, 3))):
        k = int(rng.integers(2, 4)) if min(shape[:2]) >= 3 else 2
        padding = "same" if rng.random() < 0.5 or min(shape[:2]) < k else "valid"
        f = int(rng.integers(1, 4))
        w_t = _random_type(rng, 2, 6)
        w_t = FixedType(w_t.width, w_t.int_bits, w_t.signed)
        wts = rng.integers(w_t.min_raw, w_t.max_raw + 1, size=(k, k, shape[2], f))
        wts[rng.random(size=wts.shape) < 0.25] = 0
        b_t = _random_type(rng, 3, 8)
        b_t = FixedType(b_t.width, b_t.int_bits, True)
        bias = rng.integers(b_t.min_raw, b_t.max_raw + 1, size=f)
        acc = acc_type(k * k * shape[2], t, w_t)
        res = _random_type(rng, 3, 10, mode)
        mode += 1
        conv = Conv2DLayer(f"conv{d}", shape, padding, w_t, wts, b_t, bias, acc, res)
        layers.append(conv)
        shape, t = conv.shape, res
        act = _random_type(rng, 3, 10, mode)
        mode += 1
        layers.append((ReluLayer if rng.random() < 0.6 else CastLayer)(f"act{d}", shape, act))
        t = act
        if min(shape[:2]) >= 2 and rng.random() < 0.5:
            pool_t = _random_type(rng, 3, 10, mode)
            mode += 1
            layers.append(MaxPool2DLayer(f"pool{d}", shape, (2, 2), (2, 2), t, pool_t))
            shape, t = layers[-1].shape, pool_t
    layers.append(FlattenLayer("flat", shape, t))
    n_in, n_out = int(np.prod(shape)), int(rng.integers(1, 4))
    w_t = FixedType(6, 1, True)
    wts = rng.integers(w_t.min_raw, w_t.max_raw + 1, size=(n_in, n_out))
    b_t = FixedType(6, 2, True)
    layers.append(
        DenseLayer(
            "fc", w_t, wts, b_t, rng.integers(-20, 20, size=n_out), acc_type(n_in, t, w_t), _random_type(rng, 4, 12)
        )
    )
    task = Task.CLASSIFICATION if n_out > 1 else Task.REGRESSION
    ir = IR(f"cnn{seed}", task, [InputSpec((h, w, c), in_t)], layers)
    ir.validate()
    return ir


def mlp_ir(
    name: str,
    sizes: list[int],
    *,
    seed: int = 0,
    in_t: str = "fixed<12,5,RND_CONV,SAT>",
    w_t: str = "fixed<8,2>",
    relu_t: str = "ufixed<8,3,RND_CONV,SAT>",
    out_t: str = "fixed<12,6,RND_CONV,SAT>",
    task: Task = Task.CLASSIFICATION,
) -> IR:
    """A dense/relu network with hls4ml-style types (auto accumulators), random weights: for benchmarks."""
    rng = np.random.default_rng(seed)
    it, wt = FixedType.parse(in_t), FixedType.parse(w_t)
    bt = FixedType.parse("fixed<8,3>")
    layers: list = []
    t = it
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = k == len(sizes) - 2
        lg = math.ceil(math.log2(a))
        iw = t.width - t.frac_bits + wt.width - wt.frac_bits + lg + 1
        frac = max(t.frac_bits + wt.frac_bits, bt.frac_bits)
        acc = FixedType(iw + frac, iw)
        w = rng.integers(wt.min_raw, wt.max_raw + 1, size=(a, b))
        bias = rng.integers(bt.min_raw, bt.max_raw + 1, size=b)
        res = FixedType.parse(out_t) if last else acc
        layers.append(DenseLayer(f"fc{k + 1}", wt, w, bt, bias, acc, res))
        if not last:
            layers.append(ReluLayer(f"relu{k + 1}", b, FixedType.parse(relu_t)))
            t = layers[-1].result_t
    ir = IR(name, task, [InputSpec(sizes[0], it)], layers)
    ir.validate()
    return ir


def random_inputs(ir: IR, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` raw input rows: corners first (min, max, 0, +-1 LSB, alternating), then uniform random."""
    rng = np.random.default_rng(seed)
    t, k = ir.input.type, ir.input.n
    corners = [np.full(k, t.min_raw), np.full(k, t.max_raw), np.zeros(k, dtype=np.int64), np.ones(k, dtype=np.int64)]
    if t.signed:
        corners.append(-np.ones(k, dtype=np.int64))
    alt = np.where(np.arange(k) % 2 == 0, t.max_raw, t.min_raw)
    corners += [alt, alt[::-1].copy()]
    c = np.array(corners[:n], dtype=np.int64).reshape(-1, k)
    r = rng.integers(t.min_raw, t.max_raw + 1, size=(max(0, n - len(c)), k), dtype=np.int64)
    kinds = np.array(["corner"] * len(c) + ["random"] * len(r))
    return np.concatenate([c, r]), kinds


def write_vectors(ir: IR, path: Path, n: int, seed: int = 0) -> Path:
    """A vectors file as ``flow verify`` writes it, with outputs from ``flow.reference``."""
    x, kinds = random_inputs(ir, n, seed)
    y = np.asarray(reference.run(ir, x).raw[-1], dtype=np.int64)
    arrays = {"inputs": x, "outputs": y, "kind": kinds, "ir_sha256": np.array(ir.digest())}
    if ir.task is Task.CLASSIFICATION:
        arrays["classes"] = np.argmax(y, axis=1).astype(np.int64)
    write_npz(Path(path), **arrays)
    return Path(path)


def write_ensemble_vectors(ir: IR, path: Path, counts: np.ndarray) -> Path:
    """An ensemble's vectors file as ``flow verify`` writes it: raw spectra, the members' logits, the vote."""
    from flow.ensemble_graph import observed_outputs

    logits, classes = observed_outputs(ir, reference.run(ir, counts))
    kinds = np.array(["random"] * len(counts))
    write_npz(Path(path), inputs=counts, outputs=logits, classes=classes, kind=kinds, ir_sha256=np.array(ir.digest()))
    return Path(path)
