"""Bitwidth search: proxy cost, search-space validation, Pareto front, a small search, resume after a kill."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil

import numpy as np
import pytest

import flow.project
from flow.build import Source, load_data
from flow.card import load_card, parse_card
from flow.cli import main
from flow.errors import FlowError
from flow.search import run_search
from flow.search.pareto import best_vs_default, pareto_front
from flow.search.proxy import DenseShape, proxy_cost
from flow.search.space import parse_space
from flow.search.study import Evaluator, variant
from flow.train import read_float_weights, train, write_float_weights

TINY = """\
name: tiny_search
dataset: {kind: table, table: charge, shape: [32, 32], omit_saturated: true}
input: (6,0)
layers:
  - {type: dense, units: 8, weight: '(8,2)', bias: '(8,2)'}
  - {type: relu, activation: '(8,2)'}
  - {type: dense, units: 1, weight: '(8,2)', bias: '(8,2)'}
output: (12,1)
training: {epochs: 3, batch_size: 64, seed: 3}
search:
  metric: rmse
  trials: 4
  epochs_per_trial: 1
  float_epochs: 2
  bits:
    input: ['(4,0)', '(6,0)']
    weight: ['(3,1)', '(4,1)', '(6,2)']
    activation: ['(4,2)', '(6,2)']
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A tiny card, a temporary hls_projects/ and a temporary generated-cards folder."""
    monkeypatch.setattr(flow.project, "PROJECTS_DIR", tmp_path / "hls_projects")
    card = tmp_path / "tiny_search.yaml"
    card.write_text(TINY)
    return card, tmp_path / "generated"


# ---------------------------------------------------------------------------------------------- proxy


def test_proxy_cost_hand_computed():
    # 2 inputs of 4 bits -> 2 outputs, 3-bit weights, one zero weight, one zero bias, 6-bit outputs.
    w = np.array([[1.0, 0.0], [0.5, -1.0]])
    b = np.array([0.25, 0.0])
    layer = DenseShape("fc1", w, b, x_bits=4, w_bits=3, out_bits=6)
    c = proxy_cost([layer], "parallel")
    acc = 4 + 3 + 1 + 1  # bx + bw + ceil(log2 2) + bias
    assert c["layers"]["fc1"]["acc_bits"] == acc
    assert c["mult"] == 3 * 4 * 3  # three non-zero weights
    assert c["add"] == acc * ((2 + 1 - 1) + (1 + 0 - 1))  # output 0: 2 products + bias; output 1: 1 product
    assert c["reg"] == 2 * 6 + 2 * 4  # output register + input register
    assert c["total"] == 36 + 18 + 20
    assert c["total"] != 36 + 27 + 20  # a known-wrong value (zero bias counted as an add) does not pass
    folded = proxy_cost([DenseShape("fc1", w, b, 4, 3, 6, reuse_factor=2)], "folded")
    assert folded["mult"] == 2 * 4 * 3 and folded["add"] == 2 * acc and folded["rom"] == 4 * 3 / 64


# ---------------------------------------------------------------------------------------------- space


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ("{metric: f1, bits: {input: ['(4,0)']}}", "search.metric: 'f1' is not a known metric; known: accuracy, rmse"),
        ("{metric: accuracy, bits: {input: ['(4,0)']}}", "search.metric: 'accuracy' is for classification"),
        ("{bits: {input: ['(4,7)']}}", "search.bits.input: "),
        ("{bits: {fc9.weight: ['(4,1)']}}", "search.bits.fc9.weight: no layer named 'fc9'"),
        ("{bits: {relu1.weight: ['(4,1)']}}", "search.bits.relu1.weight: a relu layer has no bitwidth 'weight'"),
        ("{bits: {weight: []}}", "search.bits.weight: must be a non-empty list"),
        ("{bits: {input: ['(4,0)']}, trials: 0}", "search.trials: 0 is not allowed"),
        ("{bits: {input: ['(4,0)']}, colour: red}", "search.colour: unknown field"),
        ("{units: {fc2: [4]}}", "search.units.fc2: the last dense layer's units"),
        ("{}", "search: missing"),
    ],
)
def test_search_space_errors(tmp_path, search, message):
    path = tmp_path / "tiny_search.yaml"
    path.write_text(TINY.split("search:")[0] + f"search: {search}\n")
    with pytest.raises(FlowError) as exc:
        parse_space(load_card(path))
    text = str(exc.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_search_space_includes_the_default(env):
    card_path, _ = env
    space = parse_space(load_card(card_path))
    names = [p.name for p in space.params]
    assert names == ["input", "fc1.weight", "relu1.activation", "fc2.weight"]  # layer order
    assert space.defaults == {
        "input": "(6,0)",
        "fc1.weight": "(8,2)",
        "fc2.weight": "(8,2)",
        "relu1.activation": "(8,2)",
    }
    assert "(8,2)" in space.params[1].choices and space.params[1].choices[0] == "(3,1)"


# ---------------------------------------------------------------------------------------------- front


def test_pareto_front_on_hand_made_points():
    # (accuracy, cost): maximise accuracy, minimise cost.
    pts = [(0.90, 100), (0.85, 50), (0.80, 60), (0.90, 120), (0.95, 300), (0.85, 50), (0.70, 10)]
    assert pareto_front(pts, ["maximize", "minimize"]) == [6, 1, 0, 4]
    rmse = [(1.0, 100), (2.0, 50), (1.5, 80), (3.0, 90)]
    assert pareto_front(rmse, ["minimize", "minimize"]) == [1, 2, 0]
    front = [
        {"k": i + 1, "card": f"m_p{i + 1}", "trial": i, "metric": m, "proxy_cost": c}
        for i, (m, c) in enumerate([(0.70, 10), (0.885, 50), (0.90, 100)])
    ]
    best = best_vs_default(front, {"metric": 0.89, "proxy_cost": 100}, "maximize")
    assert best["point"] == 2 and best["cost_fraction"] == 0.5


# ---------------------------------------------------------------------------------------------- search


def _trials(search_dir):
    import optuna

    from flow.search import workers

    storage = workers.open_storage(workers.default_url(search_dir))
    return optuna.load_study(study_name="tiny_search-search", storage=storage).get_trials(deepcopy=False)


def _trial_states(search_dir):
    return [t.state.name for t in sorted(_trials(search_dir), key=lambda t: t.number)]


def test_search_writes_front_files_and_cards(env):
    card_path, gen = env
    s = run_search(str(card_path), generated_dir=gen)
    search = flow.project.PROJECTS_DIR / "tiny_search" / "search"
    for name in ("pareto.csv", "pareto.json", "pareto.png", "study.journal"):
        assert (search / name).exists(), name
    assert s["trials"]["complete"] + s["trials"]["pruned"] == 4
    assert s["default"]["trial"] == 0 and s["default"]["bitwidths"]["input"] == "(6,0)"
    assert len(s["front"]) >= 1
    data = json.loads((search / "pareto.json").read_text())
    assert data["front"][0]["card"] == "tiny_search_p1" and "best_vs_default" in data
    assert len((search / "pareto.csv").read_text().splitlines()) == len(s["front"]) + 1
    for k in range(1, len(s["front"]) + 1):
        card = load_card(gen / f"tiny_search_p{k}.yaml")
        assert card.name == f"tiny_search_p{k}" and not card.search
        assert card.bitwidths() == s["front"][k - 1]["bitwidths"]
    text = (gen / "tiny_search_p1.yaml").read_text()
    assert not any(line.split(": ", 1)[-1].lstrip("'\"").startswith("/") for line in text.splitlines())  # relocatable


def test_killed_search_resumes_where_it_stopped(env):
    card_path, gen = env
    seen = []

    def kill_after_two(study, trial):
        seen.append(trial.number)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(str(card_path), trials=4, generated_dir=gen, callbacks=[kill_after_two])
    db = flow.project.PROJECTS_DIR / "tiny_search" / "search"
    assert len(_trial_states(db)) == 2
    first = {t: s for t, s in enumerate(_trial_states(db))}

    ran = []
    s = run_search(str(card_path), trials=4, generated_dir=gen, callbacks=[lambda st, t: ran.append(t.number)])
    assert ran == [2, 3]  # only the remaining budget
    states = _trial_states(db)
    assert len(states) == 4 and all(states[t] == first[t] for t in first)  # earlier trials kept as they were
    assert s["resumed_after"] == 2 and s["default"]["trial"] == 0
    # A third run with the same budget has nothing left to do.
    again = []
    run_search(str(card_path), trials=4, generated_dir=gen, callbacks=[lambda st, t: again.append(t.number)])
    assert again == [] and len(_trial_states(db)) == 4


def test_the_cards_own_warm_start_is_its_built_float_baseline(env, tmp_path, monkeypatch):
    card_path, _ = env
    card_path.write_text(TINY.replace("float_epochs: 2", "float_epochs: 3"))  # = training.epochs
    card = load_card(card_path)
    space = parse_space(card)
    ds, fp = load_data(Source(name=card.name, card=card))
    project = flow.project.Project.of(card.name)
    train(card, ds, project, fp)
    built = read_float_weights(project, card.training_fingerprint(fp))
    assert built is not None and read_float_weights(project, "0" * 16) is None  # another training's: not used
    stale = tmp_path / "stale" / card.name
    stale.mkdir(parents=True)
    shutil.copy2(project.train_json, stale / "train.json")  # train.json current, the weights of another training
    write_float_weights(flow.project.Project(card.name, stale), built, "0" * 16)
    assert read_float_weights(flow.project.Project(card.name, stale), card.training_fingerprint(fp)) is None
    trial = variant(card, space, space.defaults, epochs=1)
    own = Evaluator(card, space, ds, tmp_path / "warm_own", fp).warm_weights(trial)  # no project: trained here
    assert len(own) == len(built) and all(np.array_equal(a, b) for a, b in zip(own, built))  # the same recipe

    def no_training(*args, **kwargs):
        raise AssertionError("the built float baseline should have been loaded")

    monkeypatch.setattr("flow.train.fit", no_training)
    loaded = Evaluator(card, space, ds, tmp_path / "warm_built", fp, project=project).warm_weights(trial)
    assert all(np.array_equal(a, b) for a, b in zip(loaded, built))
    other = dataclasses.replace(card, training=dataclasses.replace(card.training, seed=4))
    with pytest.raises(AssertionError, match="should have been loaded"):  # its fingerprint differs: trains
        Evaluator(other, space, ds, tmp_path / "warm_other", fp, project=project).warm_weights(trial)


def test_changed_space_needs_fresh(env):
    card_path, gen = env
    run_search(str(card_path), trials=1, generated_dir=gen)
    with pytest.raises(FlowError, match="--fresh"):
        run_search(str(card_path), trials=1, epochs=2, generated_dir=gen)
    s = run_search(str(card_path), trials=1, epochs=2, generated_dir=gen, fresh=True)
    assert s["trials"]["complete"] == 1 and s["resumed_after"] == 0


def test_variant_is_validated_like_a_user_card(env):
    from flow.search.study import variant

    card_path, _ = env
    card = load_card(card_path)
    space = parse_space(card)
    v = variant(card, space, {"fc1.weight": "(3,1)"}, epochs=2)
    assert v.layers[0].weight.width == 3 and v.training.epochs == 2
    with pytest.raises(FlowError, match="layers\\[0\\].weight"):
        variant(card, space, {"fc1.weight": "(3,5)"})
    assert parse_card(card.raw, card.path) == card


def test_the_architecture_is_a_search_choice_and_prices_its_candidates(env):
    from flow.search.study import variant

    card_path, _ = env
    card = load_card(card_path)
    raw = card.raw | {"search": card.raw["search"] | {"arch": ["folded", "shiftadd"]}}
    space = parse_space(parse_card(raw, card.path))
    arch = next(p for p in space.params if p.name == "arch")
    assert arch.choices == ("parallel", "folded", "shiftadd") and arch.default == "parallel"  # the card's own added
    v = variant(parse_card(raw, card.path), space, {"arch": "shiftadd"})
    assert v.hardware.arch == "shiftadd" and v.layers == card.layers
    shapes = [DenseShape("fc1", np.array([[3.0, -1.0], [0.0, 5.0]]), np.zeros(2), 6, 4)]
    assert proxy_cost(shapes, "shiftadd")["total"] != proxy_cost(shapes, "parallel")["total"]
    with pytest.raises(FlowError, match="search.arch: 'systolic' is not allowed; expected one of parallel"):
        parse_card(card.raw | {"search": card.raw["search"] | {"arch": ["systolic"]}}, card.path)


def test_variant_with_fewer_units_keeps_the_next_layer_foldable():
    """fc2 folded by R = n_in = 40 must become R = 24 when fc1 shrinks to 24 units (R > n_in is invalid)."""
    from flow.card import load_card
    from flow.search.space import parse_space
    from flow.search.study import variant

    card = load_card("diag_05")
    v = variant(card, parse_space(card), {"fc1.units": 24})
    fc2 = next(s for s in v.layers if s.name == "fc2")
    assert (fc2.reuse_factor, next(s for s in v.layers if s.name == "fc1").units) == (24, 24)


def _front(k: int) -> list[dict]:
    return [
        {"card": f"tiny_search_p{i}", "k": i, "trial": i, "metric": 1.0, "proxy_cost": 10.0, "params": {}}
        for i in range(1, k + 1)
    ]


def test_search_replaces_only_the_cards_its_manifest_lists(env, monkeypatch):
    from flow.search import manifest, pareto
    from flow.search.study import load_search

    card_path, gen = env
    card, space = load_search(str(card_path))
    assert len(pareto.write_cards(card, space, _front(3), gen)) == 3
    assert manifest.listed(gen) == {f"tiny_search_p{i}.yaml" for i in (1, 2, 3)}
    (gen / "tiny_search_pX.yaml").write_text("a user's card of another name pattern")
    pareto.write_cards(card, space, _front(1), gen)  # a shorter front: p2 and p3 were ours, they go
    assert sorted(p.name for p in gen.glob("*.yaml")) == ["tiny_search_p1.yaml", "tiny_search_pX.yaml"]
    assert manifest.listed(gen) == {"tiny_search_p1.yaml"}
    # A hand-made card with a name the search writes: refused in one line before any training.
    mine = gen / "tiny_search_p9.yaml"
    mine.write_text("the user's own card")

    def no_work(*a, **k):
        raise AssertionError("the search started")

    monkeypatch.setattr("flow.search.study.run_study", no_work)
    with pytest.raises(FlowError, match=r"tiny_search_p9.yaml: not written by `flow search`"):
        run_search(str(card_path), generated_dir=gen)
    with pytest.raises(FlowError, match="not written by"):
        pareto.write_cards(card, space, _front(1), gen)
    assert mine.read_text() == "the user's own card"
    assert not (flow.project.PROJECTS_DIR / "tiny_search").exists()


def test_ctrl_c_in_a_trial_is_one_line(monkeypatch, tmp_path, capsys):
    """Optuna logs a trial stopped by Ctrl-C with a traceback; the CLI prints one line and exits 130."""
    import logging

    from flow.search.study import _QuietInterrupt

    card = tmp_path / "tiny_search.yaml"
    card.write_text(TINY)
    monkeypatch.setattr(flow.project, "PROJECTS_DIR", tmp_path / "hls_projects")

    def interrupted(card, space, search_dir, **kw):
        from flow.search.study import open_study
        from flow.search.workers import default_url

        study, _ = open_study(default_url(search_dir), "s", space, "d", fresh=True)

        def objective(trial):
            raise KeyboardInterrupt

        study.optimize(objective, n_trials=1)

    monkeypatch.setattr("flow.search.study.run_study", interrupted)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # where optuna's own handler would print
    logging.getLogger("optuna").addHandler(handler)
    try:
        assert main(["search", str(card)]) == 130
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    assert capsys.readouterr().err.strip().splitlines()[-1] == "interrupted"
    assert stream.getvalue() == "", stream.getvalue()
    assert any(isinstance(f, _QuietInterrupt) for f in logging.getLogger("optuna.study._optimize").filters)


@pytest.mark.slow  # two processes training 13 trials: minutes on 2 cores
def test_two_workers_share_one_journal_and_a_killed_search_resumes(env):
    """Two processes on one journal: the budget is spent exactly, no configuration trained twice by accident, and
    a search killed mid-trial (a RUNNING trial of a dead process) resumes to the same complete budget."""
    import optuna

    card_path, gen = env
    s = run_search(str(card_path), trials=6, generated_dir=gen, workers=2)
    search = flow.project.PROJECTS_DIR / "tiny_search" / "search"
    trials = _trials(search)
    counted = [t for t in trials if not t.user_attrs.get("surplus")]
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in counted) == 6 == len(counted)
    assert len({t.user_attrs["worker"] for t in counted}) == 2  # both processes ran trials
    assert (search / "logs" / "worker-1.log").is_file()
    assert s["trials"]["complete"] + s["trials"]["pruned"] == 6 and s["workers"] == 2
    front = [p["trial"] for p in s["front"]]

    # A kill: a trial left RUNNING by a process that no longer exists.
    from flow.search import workers

    storage = workers.open_storage(workers.default_url(search))
    study = optuna.load_study(study_name="tiny_search-search", storage=storage)
    t = study.ask()
    t.set_user_attr("worker", f"{workers.socket.gethostname()}:999999999")
    resumed = run_search(str(card_path), trials=7, generated_dir=gen, workers=2)
    states = {x.number: x.state.name for x in _trials(search)}
    assert states[t.number] == "FAIL"  # the dead process's trial does not count
    assert resumed["trials"]["complete"] + resumed["trials"]["pruned"] == 7 and resumed["resumed_after"] == 6
    again = run_search(str(card_path), trials=7, generated_dir=gen, workers=2)
    assert [p["trial"] for p in again["front"]] == [p["trial"] for p in resumed["front"]]  # resumed front identical
    assert set(front) <= set(range(7))
    assert all(not x.user_attrs.get("surplus") or not x.params for x in _trials(search))  # surplus: never trained
