"""Ensemble cards: ``qmodels/diag_ensemble.yaml`` names member cards, the voting, the feature stage and the
hardware arrangement (schema: qmodels/README.md, "Ensemble cards").

A card is an ensemble card when it has a ``members`` field. Every member is an ordinary card (``diag_NN``, found
beside the ensemble card or among the shipped cards) of
the ``spectra`` dataset kind; the members must share everything in their dataset but the diagonal (one test set
of spectra for the vote) and compute the ensemble's feature stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flow.card import Card, list_cards, load_card, load_merged, load_raw, parse_card, resolve_card_path
from flow.card_schema import Where
from flow.errors import FlowError
from flow.features import FeatureStage
from flow.layers.vote import VoteMethod

ARRANGEMENTS = ("parallel_members", "serial_members")  # flow.rtl.ENSEMBLE_ARCHS generates them
FIELDS = {"name", "description", "members", "voting", "features", "hardware", "member_training"}
FEATURE_FIELDS = {"count_width", "log1p_frac_bits"}
MEMBER_TRAINING_FIELDS = {"share", "shares", "epochs", "dataset"}
HARDWARE_FIELDS = {"arrangement"}
MEMBER_FIELDS = ("count_width", "log1p_frac_bits")  # dataset fields of a member the feature stage must match


@dataclass(frozen=True)
class MemberTraining:
    """How the ensemble trains its members: member i on share i of ``shares`` of the training spectra."""

    share: str = "full"  # flow.data.shares.MODES
    shares: int | None = None  # None: one share per member
    epochs: int | None = None  # None: each member card's own training.epochs
    dataset: tuple[tuple[str, Any], ...] = ()  # generator knobs for every member, over its card's (sorted pairs)

    def dataset_fields(self, index: int, n_members: int) -> dict:
        """The spectra dataset fields member ``index`` trains with: the ensemble's knobs and its share."""
        knobs = dict(self.dataset)
        if self.share == "full":
            return knobs
        return knobs | {"share": self.share, "share_index": index, "share_count": self.shares or n_members}


@dataclass(frozen=True)
class EnsembleCard:
    """A validated ensemble card and its members' cards."""

    name: str
    path: Path
    members: tuple[Card, ...]
    voting: VoteMethod
    stage: FeatureStage
    arrangement: str
    description: str = ""
    member_training: MemberTraining = MemberTraining()

    @property
    def member_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)


def is_ensemble_card(name_or_path: str | Path) -> bool:
    """Whether the card (a name or a path) is an ensemble card (it has ``members``)."""
    try:
        return "members" in load_raw(resolve_card_path(name_or_path))
    except FlowError:
        return False


def card_arrangement(path: Path) -> str:
    """The hardware arrangement a project's copy of its ensemble card names (the default when it names none)."""
    hardware = load_raw(path).get("hardware") or {}
    arrangement = hardware.get("arrangement", ARRANGEMENTS[0]) if isinstance(hardware, dict) else None
    if arrangement not in ARRANGEMENTS:
        raise Where(path).error(
            "hardware.arrangement", f"{arrangement!r} is not allowed; expected one of {', '.join(ARRANGEMENTS)}"
        )
    return arrangement


def load_ensemble_card(name_or_path: str | Path) -> EnsembleCard:
    """Load and validate an ensemble card and its members; every error is one line naming file and field."""
    path = resolve_card_path(name_or_path)
    data = load_raw(path)
    w = Where(path)
    _unknown(w, "", data, FIELDS)
    name = data.get("name", path.stem)
    if name != path.stem:
        raise w.error("name", f"{name!r} must be the file name {path.stem!r}")
    members = _members(w, data.get("members"))
    voting = data.get("voting", VoteMethod.HARD.value)
    if voting not in {m.value for m in VoteMethod}:
        raise w.error("voting", f"{voting!r} is not allowed; expected one of {', '.join(m.value for m in VoteMethod)}")
    features = _mapping(w, "features", data.get("features", {}), FEATURE_FIELDS)
    stage = FeatureStage(
        _int(w, "features.count_width", features.get("count_width", 16), 1, 32),
        _int(w, "features.log1p_frac_bits", features.get("log1p_frac_bits", 8), 0, 24),
    )
    hardware = _mapping(w, "hardware", data.get("hardware", {}), HARDWARE_FIELDS)
    arrangement = hardware.get("arrangement", ARRANGEMENTS[0])
    if arrangement not in ARRANGEMENTS:
        raise w.error(
            "hardware.arrangement", f"{arrangement!r} is not allowed; expected one of {', '.join(ARRANGEMENTS)}"
        )
    training = _member_training(w, data.get("member_training", {}), len(members))
    paths = [_member_path(path, m) for m in members]
    _check_members(w, tuple(load_card(p) for p in paths), stage)
    cards = tuple(_trained_as_member(p, training, i, len(paths)) for i, p in enumerate(paths))
    description = str(data.get("description", ""))
    return EnsembleCard(name, path, cards, VoteMethod(voting), stage, arrangement, description, training)


def _member_training(w: Where, value: Any, n_members: int) -> MemberTraining:
    """The ``member_training`` mapping: share (full/disjoint/bootstrap), shares and epochs."""
    from flow.data.shares import MAX_SHARES, MODES  # lazy: flow.data pulls in numpy and scipy

    given = _mapping(w, "member_training", value, MEMBER_TRAINING_FIELDS)
    share = given.get("share", "full")
    if share not in MODES:
        raise w.error("member_training.share", f"{share!r} is not allowed; expected one of {', '.join(MODES)}")
    shares = given.get("shares")
    if shares is not None:
        _int(w, "member_training.shares", shares, n_members, MAX_SHARES)  # member i takes share i: one each at least
    epochs = given.get("epochs")
    if epochs is not None:
        _int(w, "member_training.epochs", epochs, 1, 10000)
    if share == "full" and shares is not None:
        raise w.error("member_training.shares", "needs share disjoint or bootstrap (share full trains on every row)")
    return MemberTraining(share, shares, epochs, _member_knobs(w, given.get("dataset", {})))


def _member_knobs(w: Where, value: Any) -> tuple[tuple[str, Any], ...]:
    """``member_training.dataset``: spectra generator knobs every member trains with (checked as a dataset)."""
    from flow.data.dataset import SpecContext
    from flow.data.spectra import FIELDS as SPECTRA_FIELDS
    from flow.data.spectra import SHARE_FIELDS, check_spec

    allowed = set(SPECTRA_FIELDS) - {"diagonal", *SHARE_FIELDS}
    knobs = _mapping(w, "member_training.dataset", value, allowed)
    try:
        check_spec({"kind": "spectra", "diagonal": 0, **knobs}, SpecContext(w.path, files=False))
    except FlowError as exc:  # the same check as a member's dataset, named as this card's field
        raise FlowError(str(exc).replace(f"{w.path}: dataset.", f"{w.path}: member_training.dataset.", 1)) from None
    return tuple(sorted(knobs.items()))


def _trained_as_member(path: Path, training: MemberTraining, index: int, n_members: int) -> Card:
    """The member card as the ensemble trains it: its share in its dataset, the ensemble's epochs in its training.

    Both enter the member's dataset and training fingerprints, so a member built another way is trained again.
    """
    data, origins = load_merged(path)
    data["dataset"] = {**data["dataset"], **training.dataset_fields(index, n_members)}
    if training.epochs is not None:
        data["training"] = {**(data.get("training") or {}), "epochs": training.epochs}
    return parse_card(data, path, origins)


def _member_path(card_path: Path, name: str) -> Path:
    """A member card: beside the ensemble card, else a shipped card (qmodels/<name>.yaml)."""
    beside = card_path.parent / f"{name}.yaml"
    return beside if beside.is_file() else resolve_card_path(name)


def _members(w: Where, value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise w.error(
            "members", f"{value!r} is not allowed; expected a list of member card names, e.g. [diag_00, diag_05]"
        )
    seen = [v for i, v in enumerate(value) if v in value[:i]]
    if seen:
        raise w.error("members", f"{seen[0]} is named twice")
    known = ", ".join(list_cards()[:8])
    for v in value:
        if "/" in v or v.endswith((".yaml", ".yml")):
            raise w.error("members", f"{v!r}: name member cards (qmodels/<name>.yaml), not paths")
        try:
            path = _member_path(w.path, v)
        except FlowError:
            raise w.error(
                "members", f"{v}.yaml: no such model card beside this card or in qmodels/ (known: {known}, ...)"
            ) from None
        if is_ensemble_card(path):
            raise w.error("members", f"{v} is an ensemble card; members are single networks")
    return value


def _check_members(w: Where, cards: tuple[Card, ...], stage: FeatureStage) -> None:
    """One test set of spectra for every member, each computing the ensemble's feature stage."""
    from flow.data import check_dataset  # lazy: flow.data pulls in numpy and scipy
    from flow.data.spectra import SHARE_FIELDS

    for card in cards:
        if card.dataset.get("kind") != "spectra":
            kind = card.dataset.get("kind")
            raise w.error("members", f"{card.name} has dataset kind {kind!r}; members need kind spectra")
        own = [f for f in SHARE_FIELDS if f in card.dataset]
        if own:
            raise w.error("members", f"{card.name} sets dataset.{own[0]}; the ensemble's member_training sets shares")
    checked = [check_dataset(c.dataset, card_path=c.path, files=False) for c in cards]
    first, first_ds = cards[0], checked[0]
    for card, ds in zip(cards, checked):
        for fld in MEMBER_FIELDS:
            if ds[fld] != getattr(stage, fld):
                raise w.error(
                    f"features.{fld}",
                    f"{getattr(stage, fld)} but member {card.name} trains on dataset.{fld} {ds[fld]}; they must agree",
                )
        others = {k: v for k, v in ds.items() if k != "diagonal"}
        if others != {k: v for k, v in first_ds.items() if k != "diagonal"}:
            diff = sorted(k for k in others if others[k] != first_ds.get(k))
            raise w.error("members", f"{card.name} and {first.name} differ in dataset.{diff[0]}; one set of spectra")
        if card.training.seed != first.training.seed:
            raise w.error("members", f"{card.name} and {first.name} differ in training.seed (the data seed)")
    diagonals = [ds["diagonal"] for ds in checked]
    if len(set(diagonals)) != len(diagonals):
        raise w.error("members", "two members use the same diagonal")


def _mapping(w: Where, fld: str, value: Any, allowed: set[str]) -> dict:
    if not isinstance(value, dict):
        raise w.error(fld, f"must be a mapping of {', '.join(sorted(allowed))}")
    _unknown(w, f"{fld}.", value, allowed)
    return value


def _unknown(w: Where, prefix: str, given: dict, allowed: set[str]) -> None:
    extra = sorted(set(given) - allowed, key=str)
    if extra:
        raise w.error(f"{prefix}{extra[0]}", f"is not a field; allowed: {', '.join(sorted(allowed))}")


def _int(w: Where, fld: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise w.error(fld, f"{value!r} is not allowed; expected an integer {lo}..{hi}")
    return value
