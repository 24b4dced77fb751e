"""Synthetic NaI(Tl) gamma-ray spectra (design.md §2) and the bin-ratio diagonal features (§1)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import numpy as np
from scipy.special import ndtr

from flow.data.dataset import (
    REQUIRED,
    Dataset,
    SpecContext,
    check_bool,
    check_choice,
    check_fields,
    check_float,
    check_int,
    check_knobs,
)
from flow.data.shares import MAX_SHARES, MODES, MemberShare
from flow.features import FeatureStage

N_CHANNELS = 1024
N_FEATURES = 1023  # pairs on diagonal 0; longer offsets are zero-padded to this length
N_DIAGONALS = 20
ELECTRON_MASS_KEV = 511.0
GENERATOR_VERSION = 2  # bump whenever the generated numbers change for the same seed and parameters

# Lines (energy keV, emission probability %) from design.md §2; the class order is the label order.
ISOTOPES: dict[str, tuple[tuple[float, float], ...]] = {
    "Am-241": ((59.5, 36),),
    "Ba-133": ((81.0, 33), (276.4, 7), (302.9, 18), (356.0, 62), (383.8, 9)),
    "Co-57": ((122.1, 86), (136.5, 11)),
    "Co-60": ((1173.2, 100), (1332.5, 100)),
    "Cs-137": ((661.7, 85),),
    "Eu-152": ((121.8, 29), (244.7, 8), (344.3, 27), (778.9, 13), (964.1, 15), (1112.1, 14), (1408.0, 21)),
    "I-131": ((284.3, 6), (364.5, 82), (637.0, 7)),
    "Ir-192": ((296.0, 29), (308.5, 30), (316.5, 83), (468.1, 48), (604.4, 8)),
    "K-40": ((1460.8, 11),),
    "Na-22": ((511.0, 180), (1274.5, 100)),
    "Ra-226": ((186.2, 4), (295.2, 18), (351.9, 36), (609.3, 46), (1120.3, 15), (1764.5, 15)),
    "Th-232": ((238.6, 44), (583.2, 31), (911.2, 26), (969.0, 16), (2614.5, 36)),
    "U-235": ((143.8, 11), (163.3, 5), (185.7, 57), (205.3, 5)),
    "Tc-99m": ((140.5, 89),),
    "Tl-201": ((70.8, 46), (80.0, 20), (167.4, 10)),
    "Ga-67": ((93.3, 39), (184.6, 21), (300.2, 17), (393.5, 5)),
    "Se-75": ((136.0, 58), (264.7, 59), (279.5, 25), (400.7, 11)),
    "Y-88": ((898.0, 94), (1836.1, 99)),
}
CLASS_NAMES: list[str] = list(ISOTOPES)
NATURAL_BACKGROUND = ("K-40", "Ra-226", "Th-232")  # the room's own lines, present in every spectrum
ADC_BITS_WITH_ERROR = 5  # the low ADC bits whose weight errors make the channel widths uneven (DNL)

_FINE_KEV = 1.0  # response tables are built on this energy grid, then integrated into channels
_FINE_MAX_KEV = 3600.0  # covers 1024 channels x 3 keV with up to +15 % gain
_RESOLUTION_LEVELS = 4  # response tables per spectrum set; a spectrum's resolution mixes the two nearest


@dataclass(frozen=True)
class SpectraParams:
    """Difficulty knobs of the generator; ranges are (low, high) and drawn per spectrum."""

    kev_per_channel: float = 3.0
    fwhm_662: tuple[float, float] = (0.05, 0.12)  # uniform; relative FWHM at 662 keV, scaled as 1/sqrt(E)
    live_time_s: tuple[float, float] = (30.0, 300.0)  # log-uniform
    source_cps: tuple[float, float] = (30.0, 600.0)  # log-uniform counts per second in the detector, unshielded
    background_cps: tuple[float, float] = (60.0, 200.0)  # uniform
    natural_line_fraction: tuple[float, float] = (0.05, 0.5)  # share of the background from K/U/Th lines
    backscatter_fraction: tuple[float, float] = (0.01, 0.08)  # backscatter bump relative to the source
    shielding: tuple[float, float] = (0.0, 1.2)  # uniform; line transmission exp(-s·((E/100 keV)^-2.5 + 0.15))
    gain_drift: float = 0.04  # std of the relative gain per spectrum
    adc_bit_error: float = 0.15  # std of each low ADC bit's weight error, in channels (differential non-linearity)
    lld_kev: float = 20.0  # lower-level discriminator: no counts below this energy
    # A channel-width pattern repeating every `period` channels (drawn per spectrum); off by default (version 2).
    pattern_width_error: float = 0.0  # std of the log of each of the pattern's relative channel widths
    pattern_period: tuple[float, float] = (2.0, 20.0)  # uniform integer period in channels, both ends included

    def as_dict(self) -> dict:
        """Plain values, for provenance (Dataset.meta) and fingerprints."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}


def _sigma_kev(energy_kev: np.ndarray, fwhm_662: float) -> np.ndarray:
    """Gaussian sigma of the detector response: FWHM = fwhm_662·662 keV·sqrt(E/662 keV)."""
    fwhm = fwhm_662 * 661.7 * np.sqrt(np.maximum(energy_kev, 1.0) / 661.7)
    return np.maximum(fwhm / 2.3548, 0.5)


def _photofraction(energy_kev: np.ndarray) -> np.ndarray:
    """Share of interactions that deposit the full energy (~0.5 at 662 keV for a 3x3 inch crystal)."""
    return 1.0 / (1.0 + (energy_kev / 700.0) ** 1.5)


def _efficiency(energy_kev: np.ndarray) -> np.ndarray:
    """Intrinsic efficiency: thin entrance window at low energy, thinning crystal at high energy."""
    return (1.0 - np.exp(-2.5 * (energy_kev / 100.0) ** -0.5)) * np.exp(-((30.0 / energy_kev) ** 3))


def _transmission(energy_kev: np.ndarray, shielding: np.ndarray) -> np.ndarray:
    """Share of a line's photons that cross a shield of thickness ``shielding`` (photoelectric + Compton)."""
    return np.exp(-shielding * ((energy_kev / 100.0) ** -2.5 + 0.15))


def _compton_density(line_kev: float, grid_kev: np.ndarray) -> np.ndarray:
    """Klein-Nishina energy-deposit density up to the Compton edge, plus a little multiple-scatter fill."""
    eps = line_kev / ELECTRON_MASS_KEV
    edge = line_kev * 2 * eps / (1 + 2 * eps)
    s = np.clip(grid_kev / line_kev, 0.0, edge / line_kev)
    kn = 2 + s**2 / (eps**2 * (1 - s) ** 2) + s / (1 - s) * (s - 2 / eps)
    dens = np.where(grid_kev <= edge, kn, 0.0)
    dens /= dens.sum()
    fill = ((grid_kev > edge) & (grid_kev < line_kev)).astype(float)  # the valley between edge and peak
    if fill.sum() > 0:
        dens = 0.95 * dens + 0.05 * fill / fill.sum()
    return dens


def _lines() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every line of every isotope: (class index, energy keV, detected photons per emitted decay)."""
    rows = [(c, e, p / 100.0 * _efficiency(np.float64(e))) for c, ln in enumerate(ISOTOPES.values()) for e, p in ln]
    cls, energy, weight = (np.array(col) for col in zip(*rows))
    return cls.astype(np.int64), energy, weight


@functools.lru_cache(maxsize=8)
def _line_tables(fwhm_662: float) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative response per line on the fine grid, 1 detected photon each: (photopeak + Compton, backscatter)."""
    edges = np.arange(0.0, _FINE_MAX_KEV + _FINE_KEV, _FINE_KEV)  # the cumulative tables are sampled here
    centres = edges[:-1] + _FINE_KEV / 2
    # Smearing matrix: cumulative Gaussian of each fine-grid deposit evaluated at every edge.
    smear = ndtr((edges[:, None] - centres[None, :]) / _sigma_kev(centres, fwhm_662)[None, :]).astype(np.float32)
    _, energies, _ = _lines()
    full = np.zeros((energies.size, edges.size))
    back = np.zeros((energies.size, edges.size))
    compton = np.zeros((energies.size, centres.size), dtype=np.float32)
    for j, energy in enumerate(energies):
        pf = _photofraction(np.float64(energy))
        full[j] = pf * ndtr((edges - energy) / _sigma_kev(np.float64(energy), fwhm_662))
        compton[j] = (1 - pf) * _compton_density(energy, centres)
        bs_kev = energy / (1 + 2 * energy / ELECTRON_MASS_KEV)  # photon scattered back at 180 degrees
        bs_sigma = np.hypot(_sigma_kev(np.float64(bs_kev), fwhm_662), 0.12 * bs_kev)
        back[j] = _efficiency(np.float64(bs_kev)) / _efficiency(np.float64(energy)) * ndtr((edges - bs_kev) / bs_sigma)
    full += compton @ smear.T  # one float32 product for every line's continuum
    return full / full[:, -1:], back


@functools.lru_cache(maxsize=1)
def _background_tables() -> np.ndarray:
    """Cumulative environmental continuum on the fine grid: soft and hard falling components, lead X-rays."""
    centres = np.arange(0.0, _FINE_MAX_KEV, _FINE_KEV) + _FINE_KEV / 2
    falloff = 1.0 - np.exp(-((centres / 60.0) ** 2))  # housing absorbs the lowest energies
    soft = falloff * np.exp(-centres / 150.0)
    hard = falloff * np.exp(-centres / 700.0)
    xray = np.exp(-0.5 * ((centres - 75.0) / 6.0) ** 2)
    return np.stack([np.cumsum(np.r_[0.0, b / b.sum()]) for b in (soft, hard, xray)])


def _resolution_levels(fwhm_662: tuple[float, float]) -> np.ndarray:
    """The resolutions whose response tables are built; a single one when the range is a point."""
    lo, hi = fwhm_662
    return np.array([lo]) if hi <= lo else np.linspace(lo, hi, _RESOLUTION_LEVELS)


def _channel_edges(n: int, bit_error: float, rng: np.random.Generator) -> np.ndarray:
    """Per-spectrum ADC code edges in channels: edge(i) = i + sum of the set low bits' weight errors (DNL)."""
    codes = np.arange(N_CHANNELS + 1)
    bits = (codes[:, None] >> np.arange(ADC_BITS_WITH_ERROR)) & 1  # (1025, bits)
    errors = bit_error * rng.standard_normal((n, ADC_BITS_WITH_ERROR))
    edges = codes[None, :] + errors @ bits.T
    return np.maximum.accumulate(edges, axis=1)  # a code never ends before it starts


def _width_pattern(n: int, p: SpectraParams, rng: np.random.Generator) -> np.ndarray:
    """Per-spectrum relative channel widths (n, 1024) repeating with the spectrum's own period (a fine-stage DNL).

    Diagonal k's differences cancel the pattern exactly when its offset k+1 is a multiple of the period, so each
    spectrum hides the pattern from a different set of diagonals (measured: the members learn to ignore it).
    """
    lo, hi = (int(round(v)) for v in p.pattern_period)
    period = rng.integers(lo, hi + 1, n)
    widths = np.exp(p.pattern_width_error * rng.standard_normal((n, hi)))  # log-normal relative widths
    return np.take_along_axis(widths, np.arange(N_CHANNELS)[None, :] % period[:, None], axis=1)


def generate_spectra(n: int, seed: int, params: SpectraParams | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Counts (n, 1024) int32 and balanced, shuffled labels (n,) int64 from one seeded generator."""
    p = params or SpectraParams()
    rng = np.random.default_rng(seed)
    n_cls = len(CLASS_NAMES)
    labels = rng.permutation(np.arange(n) % n_cls).astype(np.int64)

    def log_uniform(lo_hi: tuple[float, float]) -> np.ndarray:
        return np.exp(rng.uniform(np.log(lo_hi[0]), np.log(lo_hi[1]), n))

    live_s = log_uniform(p.live_time_s)
    src_counts = log_uniform(p.source_cps) * live_s
    bkg_counts = rng.uniform(*p.background_cps, n) * live_s
    natural = rng.uniform(*p.natural_line_fraction, n)
    backscatter = rng.uniform(*p.backscatter_fraction, n)
    shielding = rng.uniform(*p.shielding, n)
    gain = np.clip(1.0 + p.gain_drift * rng.standard_normal(n), 0.5, 1.5)
    mix = rng.dirichlet(np.ones(3) * 4.0, n) * np.array([1.0, 1.0, 0.2])  # soft / hard / X-ray shares
    nat_mix = rng.dirichlet(np.ones(3) * 4.0, n)
    fwhm = rng.uniform(*p.fwhm_662, n)
    code_edges = _channel_edges(n, p.adc_bit_error, rng)

    # Each line's detected photons: the isotope's share (each isotope emits 1 detected photon unshielded) times the
    # line's transmission through this spectrum's shield; the room's lines are not behind the shield.
    line_cls, line_kev, line_weight = _lines()
    share = line_weight / np.bincount(line_cls, line_weight)[line_cls]
    own = labels[:, None] == line_cls[None, :]  # (n, lines)
    line_counts = own * src_counts[:, None] * share * _transmission(line_kev[None, :], shielding[:, None])
    nat_idx = [CLASS_NAMES.index(name) for name in NATURAL_BACKGROUND]
    nat_counts = np.zeros((n, n_cls))
    nat_counts[:, nat_idx] = (bkg_counts * natural)[:, None] * nat_mix
    line_counts += nat_counts[:, line_cls] * share
    back_counts = line_counts * own * backscatter[:, None]
    continuum = (bkg_counts * (1 - natural))[:, None] * mix / mix.sum(axis=1, keepdims=True)

    # A spectrum's resolution mixes the response tables of the two nearest levels (linear in the FWHM).
    levels = _resolution_levels(p.fwhm_662)
    pos = np.interp(fwhm, levels, np.arange(levels.size))
    lo_level = np.minimum(pos.astype(np.int64), levels.size - 1)
    hi_share = pos - lo_level
    level_share = np.zeros((n, levels.size))
    level_share[np.arange(n), lo_level] = 1 - hi_share
    level_share[np.arange(n), np.minimum(lo_level + 1, levels.size - 1)] += hi_share
    per_level = np.concatenate([line_counts, back_counts], axis=1)  # (n, 2 lines)
    weights = np.concatenate([(level_share[:, :, None] * per_level[:, None, :]).reshape(n, -1), continuum], axis=1)
    tables = np.concatenate([*(np.concatenate(_line_tables(float(f))) for f in levels), _background_tables()])
    tables = tables.astype(np.float32)

    expected = np.empty((n, N_CHANNELS), dtype=np.float64)
    for c in range(n_cls):  # a class uses few of the tables' rows: its own lines, the room's and the continuum
        members = np.flatnonzero(labels == c)
        cols = np.flatnonzero((weights[members] != 0).any(axis=0))
        for start in range(0, members.size, 1024):  # chunks keep the (chunk, fine grid) matrix small
            rows = members[start : start + 1024]
            cum = weights[np.ix_(rows, cols)].astype(np.float32) @ tables[cols]  # cumulative expected counts
            pos = np.clip(code_edges[rows] * p.kev_per_channel * gain[rows, None], 0, _FINE_MAX_KEV - _FINE_KEV)
            i0 = (pos / _FINE_KEV).astype(np.int64)
            frac = pos / _FINE_KEV - i0
            lo = np.take_along_axis(cum, i0, axis=1)
            hi = np.take_along_axis(cum, i0 + 1, axis=1)
            expected[rows] = np.diff(lo + frac * (hi - lo), axis=1)
    expected[:, np.arange(1, N_CHANNELS + 1) * p.kev_per_channel <= p.lld_kev] = 0.0
    if p.pattern_width_error > 0:
        expected *= _width_pattern(n, p, np.random.default_rng((seed, 3)))
    counts = rng.poisson(np.maximum(expected, 0.0)).astype(np.int32)
    return counts, labels


def diagonal_features(counts: np.ndarray, k: int, clip: bool = False, stage: FeatureStage | None = None) -> np.ndarray:
    """Diagonal k as the hardware computes it: log1p(h[i+k+1]) - log1p(h[i]) in fixed point, zero-padded.

    ``stage`` (default 16-bit counts, log1p with 8 fraction bits) saturates the counts, rounds log1p exactly
    and subtracts exactly (:class:`flow.features.FeatureStage`); the float32 values are those raw mantissas.
    """
    if not 0 <= k < N_DIAGONALS:
        raise ValueError(f"diagonal {k} outside 0..{N_DIAGONALS - 1}")
    return (stage or FeatureStage()).features(counts, k, clip)


# ---- the `spectra` dataset kind ----

_RANGES = {  # knob -> (lowest, highest) value a card may ask for
    "fwhm_662": (0.01, 0.3),
    "live_time_s": (0.1, 1e5),
    "source_cps": (0.01, 1e6),
    "background_cps": (0.0, 1e6),
    "natural_line_fraction": (0.0, 1.0),
    "backscatter_fraction": (0.0, 1.0),
    "shielding": (0.0, 10.0),
    "pattern_period": (2.0, 64.0),
}
# kev_per_channel stops at 3.3: the response tables end at 3.6 MeV (1024 channels plus gain drift).
_SCALARS = {
    "kev_per_channel": (1.0, 3.3),
    "gain_drift": (0.0, 0.2),
    "adc_bit_error": (0.0, 0.2),
    "lld_kev": (0.0, 500.0),
    "pattern_width_error": (0.0, 0.5),
}
# Knobs added after version 2: left out of a checked spec while they are at their defaults, so the specs (and the
# fingerprints) of every card trained on version 2 stay what they were.
_LATER_KNOBS = ("pattern_width_error", "pattern_period")
# An ensemble member's training share (flow.data.shares), set by the ensemble card's member_training; left out of
# a checked spec at `full`, so the single cards' specs and fingerprints stay what they were.
SHARE_FIELDS = ("share", "share_index", "share_count")
FIELDS = {
    "diagonal": REQUIRED,
    "n_spectra": 30000,  # total, split train/val/test
    "clip": False,  # clip features at 0 (all inputs non-negative)
    "count_width": 16,  # bits of a channel counter (counts saturate there): the feature stage's input
    "log1p_frac_bits": 8,  # fraction bits of log1p (flow.features.log1p_type); the difference has as many
    "val_fraction": 0.15,
    "test_fraction": 0.15,
    "share": "full",
    "share_index": 0,
    "share_count": 1,
    **{name: SpectraParams.__dataclass_fields__[name].default for name in (*_RANGES, *_SCALARS)},
}


def check_spec(spec: dict, ctx: SpecContext) -> dict:
    """Validate a `kind: spectra` mapping and fill in the defaults."""
    out = check_fields(spec, FIELDS, ctx, "spectra")
    out["diagonal"] = check_int(out["diagonal"], "diagonal", ctx, 0, N_DIAGONALS - 1)
    out["n_spectra"] = check_int(out["n_spectra"], "n_spectra", ctx, 10 * len(CLASS_NAMES), 2_000_000)
    out["clip"] = check_bool(out["clip"], "clip", ctx)
    out["count_width"] = check_int(out["count_width"], "count_width", ctx, 1, 32)
    out["log1p_frac_bits"] = check_int(out["log1p_frac_bits"], "log1p_frac_bits", ctx, 0, 24)
    out["val_fraction"] = check_float(out["val_fraction"], "val_fraction", ctx, 0.01, 0.5)
    out["test_fraction"] = check_float(out["test_fraction"], "test_fraction", ctx, 0.01, 0.5)
    check_knobs(out, _RANGES, _SCALARS, ctx)
    if out["pattern_width_error"] == 0:
        for name in _LATER_KNOBS:
            del out[name]
    out["share"] = check_choice(out["share"], "share", ctx, list(MODES))
    out["share_count"] = check_int(out["share_count"], "share_count", ctx, 1, MAX_SHARES)
    out["share_index"] = check_int(out["share_index"], "share_index", ctx, 0, out["share_count"] - 1)
    if out["share"] == "full":
        for name in SHARE_FIELDS:
            del out[name]
    return out


def member_share(checked: dict, seed: int) -> MemberShare:
    """The training share a checked spec asks for (``full`` when it names none), drawn from the data seed."""
    if "share" not in checked:
        return MemberShare()
    return MemberShare(checked["share"], checked["share_index"], checked["share_count"], seed)


def params_from_spec(checked: dict) -> SpectraParams:
    """The generator knobs of a checked spec."""
    given = {name: checked[name] for name in (*_RANGES, *_SCALARS) if name in checked}
    return SpectraParams(**{name: tuple(v) if name in _RANGES else v for name, v in given.items()})


@functools.lru_cache(maxsize=1)
def _cached_spectra(n: int, seed: int, params: SpectraParams) -> tuple[np.ndarray, np.ndarray]:
    """The last spectra generated: the 20 diagonals of an ensemble share one set (read-only arrays)."""
    counts, labels = generate_spectra(n, seed, params)
    counts.setflags(write=False)
    labels.setflags(write=False)
    return counts, labels


def spectra_of(checked: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (counts, labels) behind a checked spec: every diagonal of the same spec and seed shares them."""
    return _cached_spectra(checked["n_spectra"], seed, params_from_spec(checked))


def feature_stage(checked: dict) -> FeatureStage:
    """The fixed-point feature stage a checked spec describes."""
    return FeatureStage(checked["count_width"], checked["log1p_frac_bits"])


@functools.lru_cache(maxsize=1)
def _cached_logs(n: int, seed: int, params: SpectraParams, stage: FeatureStage) -> np.ndarray:
    """Raw log1p of the last spectra: the diagonals of an ensemble share them (read-only)."""
    logs = stage.logs(_cached_spectra(n, seed, params)[0])
    logs.setflags(write=False)
    return logs


def split(checked: dict) -> tuple[slice, slice, slice]:
    """The train, validation and test rows of a checked spec's spectra."""
    n = checked["n_spectra"]
    n_val, n_test = round(n * checked["val_fraction"]), round(n * checked["test_fraction"])
    n_train = n - n_val - n_test
    return slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, n)


def held_out_spectra(checked: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The raw counts (as the counters hold them: saturated) and labels of the test spectra every diagonal shares."""
    counts, labels = spectra_of(checked, seed)
    test = split(checked)[2]
    return feature_stage(checked).counts(counts[test]), labels[test].copy()


def build(checked: dict, seed: int, ctx: SpecContext) -> Dataset:
    """Generate the spectra and cut them into train/val/test features of one diagonal (the hardware's values)."""
    n = checked["n_spectra"]
    labels = spectra_of(checked, seed)[1]
    stage = feature_stage(checked)
    logs = _cached_logs(n, seed, params_from_spec(checked), stage)
    X = stage.difference_t.to_float(stage.diagonal(logs, checked["diagonal"], checked["clip"])).astype(np.float32)
    cut = split(checked)
    n_train, n_val = cut[0].stop, cut[1].stop - cut[1].start
    y = labels.copy()
    own = member_share(checked, seed).rows(y[cut[0]])  # an ensemble member's share of the training spectra
    return Dataset(
        name=f"spectra_diag{checked['diagonal']:02d}",
        task="classification",
        X_train=X[cut[0]][own],
        y_train=y[cut[0]][own],
        X_val=X[cut[1]],
        y_val=y[cut[1]],
        X_test=X[cut[2]],
        y_test=y[cut[2]],
        class_names=list(CLASS_NAMES),
        # n_train: the training spectra of the set (the large model's); n_member_train: those this dataset holds
        meta={
            "n_channels": N_CHANNELS,
            "n_train": n_train,
            "n_member_train": int(own.size),
            "n_val": n_val,
            "n_test": n - n_train - n_val,
        },
    )
