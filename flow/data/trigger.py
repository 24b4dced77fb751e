"""Synthetic calorimeter images for the 40 MHz trigger CNN (design.md §1): one bunch crossing per image.

An image is ``size x size`` towers of one channel holding integer transverse energies (``lsb_gev`` per count,
``bits`` wide, saturating). Every crossing has pile-up (a Poisson number of soft particles, each in one tower,
plus a per-image pile-up level), electronic noise (Gaussian per tower, then digitised: negative readings are 0)
and, with probability ``jet_probability``, a QCD jet: a falling power-law energy and a shower of broad, random
width. Signal crossings add one compact, energetic electromagnetic deposit with a core-plus-halo shower profile.
A narrow, hard jet looks like signal, which is what keeps the efficiency at 10 kHz below 1.

Labels are 0 (background) and 1 (signal). Train and validation are balanced; the test set holds
``n_test_background`` background crossings (>= 200,000 by default: ~50 pass at a false-positive rate of 2.5e-4)
and ``n_test_signal`` signal ones. Features are the towers flattened in (row, column, channel) order, as Keras'
``channels_last`` Flatten; ``Dataset.meta["image_shape"]`` gives ``[size, size, 1]``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from flow.data.dataset import Dataset, SpecContext, check_fields, check_int, check_knobs

GENERATOR_VERSION = 1  # bump whenever the generated numbers change for the same seed and parameters
CLASS_NAMES = ["background", "signal"]
_HALO_SHARE = 0.15  # share of a shower's energy in its halo
_HALO_WIDTH = 3.0  # halo width in units of the core width
_CHUNK = 32_768  # images generated per block (bounds the (chunk, size, size) float64 temporaries)


@dataclass(frozen=True)
class TriggerParams:
    """The generator's knobs (energies in GeV, widths in towers); pairs are (low, high) drawn per image."""

    size: int = 12
    lsb_gev: float = 0.5
    bits: int = 8
    noise_gev: float = 0.4
    pileup_particles: tuple[float, float] = (10.0, 40.0)  # uniform mean of the Poisson count per crossing
    pileup_gev: float = 0.6  # mean energy of a pile-up particle (exponential)
    jet_probability: float = 0.3
    jet_min_gev: float = 5.0
    jet_slope: float = 6.0  # dN/dE ~ E^-slope above jet_min_gev
    jet_width: tuple[float, float] = (0.6, 2.5)  # log-uniform core width of a jet's shower
    signal_gev: tuple[float, float] = (10.0, 40.0)  # uniform
    signal_width: tuple[float, float] = (0.3, 0.5)  # uniform core width of the electromagnetic shower


def _tower_fractions(centre: np.ndarray, width: np.ndarray, size: int) -> np.ndarray:
    """Share of a 1-D core-plus-halo Gaussian profile in each tower ``(n, size)`` (tower i spans [i, i+1))."""
    edges = np.arange(size + 1, dtype=np.float64)
    out = np.zeros((centre.size, size))
    for share, scale in ((1 - _HALO_SHARE, 1.0), (_HALO_SHARE, _HALO_WIDTH)):
        cdf = ndtr((edges[None, :] - centre[:, None]) / (scale * width[:, None]))
        out += share * np.diff(cdf, axis=1)
    return out


def _showers(energy: np.ndarray, width: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Images ``(n, size, size)`` of one shower each at a random position (kept a tower away from the edge)."""
    n = energy.size
    lo, hi = (1.0, size - 1.0) if size > 2 else (0.0, float(size))
    row, col = rng.uniform(lo, hi, n), rng.uniform(lo, hi, n)
    fr, fc = _tower_fractions(row, width, size), _tower_fractions(col, width, size)
    return energy[:, None, None] * fr[:, :, None] * fc[:, None, :]


def _crossings(labels: np.ndarray, rng: np.random.Generator, p: TriggerParams) -> np.ndarray:
    """Tower energies in GeV ``(n, size, size)`` of crossings with these labels."""
    n, s = labels.size, p.size
    n_particles = rng.poisson(rng.uniform(*p.pileup_particles, n))
    owner = np.repeat(np.arange(n), n_particles)
    flat = owner * (s * s) + rng.integers(0, s * s, owner.size)
    gev = np.bincount(flat, rng.exponential(p.pileup_gev, owner.size), minlength=n * s * s).reshape(n, s, s)
    jets = np.flatnonzero(rng.random(n) < p.jet_probability)
    jet_gev = p.jet_min_gev * rng.random(jets.size) ** (-1.0 / (p.jet_slope - 1.0))
    jet_width = np.exp(rng.uniform(*np.log(p.jet_width), jets.size))
    gev[jets] += _showers(jet_gev, jet_width, rng, s)
    sig = np.flatnonzero(labels == 1)
    gev[sig] += _showers(rng.uniform(*p.signal_gev, sig.size), rng.uniform(*p.signal_width, sig.size), rng, s)
    return gev + p.noise_gev * rng.standard_normal(gev.shape)


def digitise(gev: np.ndarray, p: TriggerParams) -> np.ndarray:
    """Tower readings: round to ``lsb_gev`` counts, negative readings to 0, saturate at ``2**bits - 1``."""
    return np.clip(np.rint(gev / p.lsb_gev), 0, 2**p.bits - 1).astype(np.int16)


def generate_images(labels: np.ndarray, seed: int, p: TriggerParams | None = None) -> np.ndarray:
    """Integer tower energies ``(n, size, size)`` int16 for the given labels, from one seeded generator."""
    p = p or TriggerParams()
    rng = np.random.default_rng(seed)
    blocks = [digitise(_crossings(labels[i : i + _CHUNK], rng, p), p) for i in range(0, labels.size, _CHUNK)]
    return np.concatenate(blocks) if blocks else np.zeros((0, p.size, p.size), dtype=np.int16)


# ---- the `trigger` dataset kind ----

_RANGES = {  # knob -> (lowest, highest) value a card may ask for
    "pileup_particles": (0.0, 1000.0),
    "jet_width": (0.05, 20.0),
    "signal_gev": (0.0, 1e4),
    "signal_width": (0.05, 20.0),
}
_SCALARS = {
    "lsb_gev": (1e-3, 100.0),
    "noise_gev": (0.0, 100.0),
    "pileup_gev": (0.0, 100.0),
    "jet_probability": (0.0, 1.0),
    "jet_min_gev": (0.01, 1e4),
    "jet_slope": (1.5, 10.0),
}
_DEFAULTS = TriggerParams()
FIELDS = {
    "n_train": 40_000,
    "n_val": 10_000,
    "n_test_signal": 20_000,
    "n_test_background": 200_000,
    "size": _DEFAULTS.size,
    "bits": _DEFAULTS.bits,
    **{name: getattr(_DEFAULTS, name) for name in (*_RANGES, *_SCALARS)},
}


def check_spec(spec: dict, ctx: SpecContext) -> dict:
    """Validate a `kind: trigger` mapping and fill in the defaults."""
    out = check_fields(spec, FIELDS, ctx, "trigger")
    for name in ("n_train", "n_val", "n_test_signal", "n_test_background"):
        out[name] = check_int(out[name], name, ctx, 10, 5_000_000)
    out["size"] = check_int(out["size"], "size", ctx, 3, 64)
    out["bits"] = check_int(out["bits"], "bits", ctx, 1, 16)
    check_knobs(out, _RANGES, _SCALARS, ctx)
    return out


def params_from_spec(checked: dict) -> TriggerParams:
    """The generator knobs of a checked spec."""
    ranges = {name: tuple(checked[name]) for name in _RANGES}
    return TriggerParams(size=checked["size"], bits=checked["bits"], **ranges, **{k: checked[k] for k in _SCALARS})


def _labels(checked: dict, rng: np.random.Generator) -> list[np.ndarray]:
    """Train and validation labels balanced and shuffled; test: the background crossings, then the signal ones."""
    balanced = [rng.permutation(np.arange(checked[k]) % 2) for k in ("n_train", "n_val")]
    test = np.r_[np.zeros(checked["n_test_background"]), np.ones(checked["n_test_signal"])]
    return [*balanced, rng.permutation(test)]


@functools.lru_cache(maxsize=1)
def _cached(key: tuple, seed: int) -> tuple[np.ndarray, ...]:
    """The last images generated (read-only): ``make hls`` and the search load one spec many times."""
    checked = dict(key)
    rng = np.random.default_rng(seed)
    parts = _labels(checked, rng)
    labels = np.concatenate(parts).astype(np.int64)
    images = generate_images(labels, int(rng.integers(2**63)), params_from_spec(checked))
    for a in (images, labels):
        a.setflags(write=False)
    return images, labels


def build(checked: dict, seed: int, ctx: SpecContext) -> Dataset:
    """Generate the crossings and split them into train/val/test."""
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in checked.items()))
    images, labels = _cached(key, seed)
    s = checked["size"]
    X = images.reshape(len(images), s * s).astype(np.float32)
    n_train, n_val = checked["n_train"], checked["n_val"]
    cut = (slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, None))
    return Dataset(
        name=f"trigger{s}x{s}",
        task="classification",
        X_train=X[cut[0]],
        y_train=labels[cut[0]].copy(),
        X_val=X[cut[1]],
        y_val=labels[cut[1]].copy(),
        X_test=X[cut[2]],
        y_test=labels[cut[2]].copy(),
        class_names=list(CLASS_NAMES),
        meta={
            "image_shape": [s, s, 1],
            "n_train": n_train,
            "n_val": n_val,
            "n_test": checked["n_test_signal"] + checked["n_test_background"],
            "signal_class": 1,
        },
    )
