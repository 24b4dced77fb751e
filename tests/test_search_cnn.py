"""The search over an image network: per-type conv/batchnorm bitwidths, filter counts, batch norm against dropout,
a proxy cost that counts convolutions, and optuna's HyperbandPruner through the companion study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flow.card import load_card, parse_card
from flow.errors import FlowError
from flow.search.proxy import proxy_cost, shapes_from_ir
from flow.search.space import parse_space, variant_data

CARDS = Path(__file__).parent / "cards"
SEARCH = {
    "metric": "eff_at_10khz",
    "trials": 3,
    "epochs_per_trial": 1,
    "float_epochs": 0,
    "prune": {"method": "hyperband"},
    "bits": {"conv_weight": ["(6,1)"], "bn_scale": ["(8,2)"], "conv2.bias": ["(6,1)"]},
    "filters": {"conv1": [1, 2]},
    "norm": ["batchnorm", "dropout"],
}


def bn_card(search: dict | None = None):
    card = load_card(CARDS / "tiny_cnn_bn.yaml")
    return parse_card(card.raw | {"search": search or SEARCH}, card.path, card.origins)


def test_cnn_space_has_every_kind_of_choice_and_variants_parse():
    card = bn_card()
    space = parse_space(card)
    params = {p.name: p for p in space.params}
    assert set(params) == {
        "conv1.weight",
        "conv2.weight",
        "bn1.scale",
        "bn2.scale",
        "conv2.bias",
        "conv1.filters",
        "norm",
    }
    assert space.prune_method == "hyperband" and params["conv2.weight"].targets == ((4, "weight"),)
    assert params["bn1.scale"].choices == ("(8,2)", "(10,3)") and params["norm"].default == "batchnorm"
    values = {"conv1.weight": "(6,1)", "conv2.weight": "(6,1)", "conv1.filters": 1, "norm": "dropout"}
    values |= {"bn1.scale": "(8,2)", "bn2.scale": "(8,2)"}
    v = parse_card(variant_data(card, space, values))
    assert [layer.type for layer in v.layers][:3] == ["conv2d", "dropout", "relu"]
    assert v.layers[0].filters == 1 and str(v.layers[0].weight) == "(6,1)" and str(v.layers[4].weight) == "(6,1)"
    kept = parse_card(variant_data(card, space, values | {"norm": "batchnorm"}))
    assert kept.layers[1].type == "batchnorm" and str(kept.layers[1].scale) == "(8,2)"
    assert str(card.layers[1].scale) == "(10,3)"  # the card's own, which the variant changed


@pytest.mark.parametrize(
    "change, needle",
    [
        (
            {"norm": ["batchnorm", "layernorm"]},
            "search.norm: 'layernorm' is not allowed; expected batchnorm or dropout",
        ),
        (
            {"prune": {"method": "asha"}},
            "search.prune.method: 'asha' is not allowed; expected one of threshold, hyperband",
        ),
        (
            {"prune": {"method": "hyperband", "factor": 2.5}},
            "search.prune.factor: 2.5 is not allowed with hyperband; expected an integer >= 2",
        ),
        ({"filters": {"conv1": [0, 2]}}, "search.filters.conv1: 0 is not allowed; expected integers 1..1024"),
        ({"filters": {"fc1": [2]}}, "search.filters.fc1: no conv2d layer named 'fc1'"),
        ({"bits": {"relu1.scale": ["(6,1)"]}}, "search.bits.relu1.scale: a relu layer has no bitwidth 'scale'"),
        ({"bits": {"bn_weight": ["(6,1)"]}}, "search.bits.bn_weight: unknown key; allowed: input, output, weight"),
    ],
)
def test_cnn_space_errors_are_one_line(change, needle):
    with pytest.raises(FlowError) as err:
        parse_space(bn_card(SEARCH | change))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_norm_needs_a_batchnorm_slot():
    card = load_card(CARDS / "tiny_cnn.yaml")
    with pytest.raises(FlowError, match="search.norm: the card has no batchnorm layer"):
        parse_card(card.raw | {"search": {"norm": ["dropout"], "metric": "eff_at_10khz"}}, card.path, card.origins)


def test_proxy_of_an_ir_counts_convolutions_and_batchnorms():
    from tests.test_cnn_layers import tiny_cnn

    with_bn, without = tiny_cnn(), tiny_cnn(batchnorm=False)
    names = [s.name for s in shapes_from_ir(with_bn)]
    assert names == ["c1", "bn", "c2", "fc"]
    c1 = shapes_from_ir(with_bn)[0]
    assert (c1.n_in, c1.n_out) == (36, 72)  # the full dense form: 6 x 6 x 1 in, 6 x 6 x 2 out
    assert (
        proxy_cost(shapes_from_ir(with_bn), "parallel")["total"]
        > proxy_cost(shapes_from_ir(without), "parallel")["total"]
    )


class _Ev:
    def __init__(self, pruner):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.pruner_study = optuna.create_study(direction="minimize", pruner=pruner)


@pytest.mark.parametrize("prunes", [True, False])
def test_hyperband_guard_prunes_through_the_companion_study(prunes):
    """The guard reports each epoch's validation loss and stops when the companion study's pruner says so; a
    pruner that never prunes lets the trial complete (the known-wrong side)."""
    import optuna
    from optuna.trial import TrialState

    from flow.search.study import _PruneGuard

    class Always(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    ev = _Ev(Always() if prunes else optuna.pruners.NopPruner())
    guard = _PruneGuard(ev, model=None, enabled=True)
    stopped = [guard.check(epoch, {"loss": 1.0, "val_loss": 1.0 / (epoch + 1)}) for epoch in range(3)]
    guard.finish()
    trial = ev.pruner_study.trials[0]
    if prunes:
        assert stopped[0] and guard.reason.startswith("Hyperband") and trial.state is TrialState.PRUNED
    else:
        assert not any(stopped) and guard.reason is None and trial.state is TrialState.COMPLETE
        assert trial.value == pytest.approx(1 / 3) and sorted(trial.intermediate_values) == [1, 2, 3]
    assert np.isfinite(guard.last_loss)


def test_hyperband_takes_its_first_rung_and_factor_from_the_card(tmp_path):
    """prune.after_epochs is Hyperband's min_resource and prune.factor its reduction factor (default: half the
    epochs per trial, 3)."""
    from flow.search.space import parse_space
    from flow.search.study import open_pruner_study

    url = f"journal://{tmp_path / 's.journal'}"
    for prune, rung, factor in (
        ({"method": "hyperband"}, 3, 3),
        ({"method": "hyperband", "after_epochs": 2, "factor": 2}, 2, 2),
    ):
        space = parse_space(bn_card(SEARCH | {"epochs_per_trial": 6, "prune": prune}))
        pruner = open_pruner_study(url, f"m{rung}", space, fresh=True).pruner
        assert (pruner._min_resource, pruner._reduction_factor) == (rung, factor)
