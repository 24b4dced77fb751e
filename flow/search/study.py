"""The optuna driver: a persistent multi-objective study (metric against proxy cost) over a card's search space.

The study lives in ``hls_projects/<m>/search/study.db`` (SQLite). Running again resumes it: finished trials
(complete or pruned) are kept and only the rest of the budget runs; a trial cut short by an interrupt is marked
failed and does not count. Trial 0 is always the card's own configuration.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flow.build import Source, load_data
from flow.card import Card, load_card
from flow.data.dataset import Dataset
from flow.errors import FlowError
from flow.log import info, progress
from flow.project import Project
from flow.search.proxy import proxy_cost, shapes_from_model
from flow.search.space import SearchSpace, parse_space, variant

STUDY_FILE = "study.db"


@dataclasses.dataclass
class Evaluator:
    """Trains and scores one configuration; shares the dataset and the float warm-start weights across trials."""

    card: Card
    space: SearchSpace
    ds: Dataset
    warm_dir: Path
    dataset_fp: str
    default_badness: float | None = None
    _warm: dict = dataclasses.field(default_factory=dict)

    @property
    def arch(self) -> str:
        return self.card.hardware.arch

    def warm_weights(self, cv: Card) -> list[np.ndarray] | None:
        """Float weights for ``cv``'s architecture (trained once, kept in ``search/warm/``); None if disabled."""
        if self.space.float_epochs == 0:
            return None
        units = tuple(layer.units for layer in cv.layers if layer.type == "dense")
        key = f"{self.dataset_fp[:12]}_{self.space.float_epochs}_{self.card.training.seed}_" + "x".join(map(str, units))
        if key in self._warm:
            return self._warm[key]
        path = self.warm_dir / f"float_{key}.npz"
        if path.exists():
            with np.load(path) as z:
                weights = [z[f"w{i}"] for i in range(len(z.files))]
        else:
            from flow.model import build_model

            fcard = dataclasses.replace(cv, training=dataclasses.replace(cv.training, epochs=self.space.float_epochs))
            _clear_keras(self.card.training.seed)
            model = build_model(fcard, self.ds.n_features, self.ds.n_outputs, quantized=False)
            t0 = time.perf_counter()
            _fit(model, self.ds, fcard, [])
            weights = model.get_weights()
            self.warm_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.tmp.npz")
            np.savez(tmp, **{f"w{i}": w for i, w in enumerate(weights)})
            tmp.replace(path)
            info(
                f"{self.card.name}: float warm-start model for units {units} trained ({time.perf_counter() - t0:.0f} s)"
            )
        self._warm[key] = weights
        return weights

    def evaluate(self, values: dict[str, Any], *, prune: bool) -> dict:
        """Train the variant ``values`` for ``epochs_per_trial`` epochs; metrics and proxy cost."""
        import optuna

        from flow.model import build_model

        cv = variant(self.card, self.space, values, epochs=self.space.epochs_per_trial)
        init = self.warm_weights(cv)
        _clear_keras(self.card.training.seed)
        model = build_model(cv, self.ds.n_features, self.ds.n_outputs, quantized=True)
        if init is not None:
            model.set_weights(init)
        t0 = time.perf_counter()
        guard = _PruneGuard(self, model, prune)
        epochs = _fit(model, self.ds, cv, [guard.callback()])
        if guard.reason:
            raise optuna.TrialPruned(guard.reason)
        y = model.predict(self.ds.X_test, verbose=0, batch_size=4096)
        metric = self.space.metric(self.ds, y, self.space.metric_options)
        if not math.isfinite(metric):
            raise optuna.TrialPruned("the metric is not finite")
        from flow.metrics import score

        cost = proxy_cost(shapes_from_model(cv, model), self.arch)
        return {
            "metric": metric,
            "cost": cost["total"],
            "metrics": score(self.ds, y),
            "proxy": {k: v for k, v in cost.items() if k != "layers"},
            "bitwidths": cv.bitwidths(),
            "units": {layer.name: layer.units for layer in cv.layers if layer.type == "dense"},
            "epochs": epochs,
            "seconds": round(time.perf_counter() - t0, 2),
        }


class _PruneGuard:
    """Stops training when the loss diverges, or when at ``prune_after`` epochs the metric is hopeless."""

    def __init__(self, ev: Evaluator, model, enabled: bool):
        self.ev, self.model, self.enabled = ev, model, enabled
        self.reason: str | None = None

    def check(self, epoch: int, logs: dict) -> bool:
        loss = logs.get("loss", 0.0)
        if not math.isfinite(loss):
            self.reason = f"training diverged at epoch {epoch + 1} (loss {loss})"
            return True
        ev = self.ev
        if not self.enabled or ev.default_badness is None or epoch + 1 != ev.space.prune_after:
            return False
        y = self.model.predict(ev.ds.X_test, verbose=0, batch_size=4096)
        value = ev.space.metric(ev.ds, y, ev.space.metric_options)
        limit = prune_limit(ev.default_badness, ev.space.prune_factor, ev.space.metric.direction)
        if not math.isfinite(value) or ev.space.metric.badness(value) > limit:
            self.reason = f"{ev.space.metric.name} {value:.4g} at epoch {epoch + 1} is far from the default's"
            return True
        return False

    def callback(self):
        import tensorflow as tf

        guard = self

        class _Cb(tf.keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if guard.check(epoch, logs or {}):
                    self.model.stop_training = True

        return _Cb()


def prune_limit(default_badness: float, factor: float, direction: str) -> float:
    """The badness above which a trial is pruned: ``factor`` × the default's (+0.02 for bounded metrics)."""
    return factor * default_badness + (0.02 if direction == "maximize" else 0.0)


def _clear_keras(seed: int) -> None:
    import tensorflow as tf

    from flow.train import seed_everything

    tf.keras.backend.clear_session()
    seed_everything(seed)


def _fit(model, ds: Dataset, card: Card, callbacks: list) -> int:
    """flow.train's recipe with extra callbacks (the seed is set once per trial by the caller)."""
    from flow.train import fit

    return fit(model, ds, card, callbacks=callbacks)


# ---------------------------------------------------------------------------------------------- the study


def _sampler(space: SearchSpace, n_done: int):
    import optuna

    seed = space.seed + n_done  # a resumed run does not replay the first run's random draws
    if space.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if space.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, space.trials // 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # multivariate TPE is "experimental"
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=max(4, min(10, space.trials // 3)), multivariate=True
        )


class _QuietInterrupt(logging.Filter):
    """Drops optuna's report of a trial that Ctrl-C stopped (a traceback, then "Trial N failed with value ..."):
    the CLI says "interrupted" in one line."""

    def __init__(self) -> None:
        super().__init__()
        self.dropping = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            self.dropping = True
            return False
        if self.dropping and record.getMessage().startswith("Trial "):
            self.dropping = False
            return False
        return True


def open_study(db: Path, name: str, space: SearchSpace, digest: str, *, fresh: bool):
    """Create or resume the study in ``db``; a study of a different search space is an error (use fresh)."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial_log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _QuietInterrupt) for f in trial_log.filters):
        trial_log.addFilter(_QuietInterrupt())
    db.parent.mkdir(parents=True, exist_ok=True)
    if fresh and db.exists():
        db.unlink()
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    directions = [space.metric.direction, "minimize"]
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        if study.user_attrs.get("digest") != digest:
            raise FlowError(
                f"{db}: holds a search with other settings (space, metric, epochs or seed); "
                "run with --fresh to start over"
            )
    except KeyError:
        study = optuna.create_study(study_name=name, storage=storage, directions=directions)
        study.set_user_attr("digest", digest)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # A trial left RUNNING by a killed process: it did not finish, so it does not count.
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    n_done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    study.sampler = _sampler(space, n_done)
    return study, n_done


def _has_default(study) -> bool:
    from optuna.trial import TrialState

    return any(
        t.user_attrs.get("default")
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.WAITING))
    )


def default_badness(study, space: SearchSpace) -> float | None:
    """The prune rule's reference: the default configuration's metric (None until trial 0 finished)."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("default"):
            return space.metric.badness(t.values[0])
    return None


def run_study(
    card: Card,
    space: SearchSpace,
    search_dir: Path,
    *,
    fresh: bool = False,
    callbacks: Sequence[Callable] = (),
) -> tuple[Any, Evaluator, dict]:
    """Run what is left of the budget; returns (study, evaluator, run figures)."""
    import optuna
    from optuna.trial import TrialState

    source = Source(name=card.name, card=card)
    ds, fp = load_data(source)
    digest = space.digest(card, fp)
    study, n_done = open_study(search_dir / STUDY_FILE, f"{card.name}-search", space, digest, fresh=fresh)
    ev = Evaluator(card, space, ds, search_dir / "warm", fp)
    if not _has_default(study):
        study.enqueue_trial(space.defaults, user_attrs={"default": True})
    remaining = max(0, space.trials - n_done)
    if n_done:
        info(f"{card.name}: resuming the search: {n_done} trials done, {remaining} to run")
    ev.default_badness = default_badness(study, space)

    def objective(trial: optuna.trial.Trial):
        values = {p.name: trial.suggest_categorical(p.name, p.choices) for p in space.params}
        is_default = bool(trial.user_attrs.get("default"))
        same = _same_config(study, values, trial.number)
        if same is not None:  # the sampler proposed a configuration already trained: reuse its result
            for k, v in same.user_attrs.items():
                if k != "default":
                    trial.set_user_attr(k, v)
            trial.set_user_attr("duplicate_of", same.number)
            return tuple(same.values)
        r = ev.evaluate(values, prune=not is_default)
        for k in ("metrics", "proxy", "bitwidths", "units", "epochs", "seconds"):
            trial.set_user_attr(k, r[k])
        if is_default:
            ev.default_badness = space.metric.badness(r["metric"])
        return r["metric"], r["cost"]

    t0 = time.perf_counter()
    bar = progress(total=remaining, desc=f"search {card.name}", unit="trial")

    ran = [0]

    def tick(study, trial) -> None:
        bar.update(1)
        ran[0] += 1
        done = trial.state == TrialState.COMPLETE
        shown = (
            f"{space.metric.name} {trial.values[0]:.4g}, cost {trial.values[1]:.0f}"
            if done
            else trial.state.name.lower()
        )
        if bar.disable:
            info(f"search {card.name}: trial {trial.number} ({ran[0]}/{remaining}): {shown}")
        elif done:
            bar.set_postfix({space.metric.name: f"{trial.values[0]:.4g}", "cost": f"{trial.values[1]:.0f}"})

    try:
        if remaining:
            study.optimize(objective, n_trials=remaining, callbacks=[tick, *callbacks], catch=(FlowError, ValueError))
    finally:
        bar.close()
    return study, ev, {"seconds": round(time.perf_counter() - t0, 1), "ran": remaining, "resumed_after": n_done}


def _same_config(study, values: dict, number: int):
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.number != number and t.params == values:
            return t
    return None


def load_search(model: str, overrides: dict | None = None) -> tuple[Card, SearchSpace]:
    """The card and its validated search space, with CLI overrides (trials, epochs_per_trial, seed)."""
    card = load_card(model)
    space = parse_space(card)
    over = {k: v for k, v in (overrides or {}).items() if v is not None}
    for k, v in over.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if k == "seed" else 1):
            raise FlowError(
                f"--{k.replace('_per_trial', '').replace('_', '-')}: {v!r} is not allowed; expected a positive integer"
            )
    if "epochs_per_trial" in over and "after_epochs" not in (space.raw.get("prune") or {}):
        over["prune_after"] = max(1, over["epochs_per_trial"] // 2)
    return card, dataclasses.replace(space, **over)


def project_search_dir(card: Card, projects_dir: Path | None = None) -> Path:
    """``hls_projects/<m>/search``, in a project folder qflow wrote (created, marked, when absent)."""
    project = Project.of(card.name, projects_dir)
    project.create()
    return project.search
