"""The optuna driver: a persistent multi-objective study (metric against proxy cost) over a card's search space.

The study lives in ``hls_projects/<m>/search/study.journal`` (optuna's journal file), or in the storage that
``--storage URL`` names (:mod:`.workers`); ``--workers N`` runs N processes on it. Running again resumes it:
finished trials (complete or pruned) are kept and only the rest of the budget runs; a trial cut short by an
interrupt or a kill is marked failed and does not count. Trial 0 is always the card's own configuration.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flow.build import Source, load_data
from flow.card import Card, load_card, parse_card
from flow.data.dataset import Dataset
from flow.errors import FlowError
from flow.log import info, progress
from flow.project import Project
from flow.search import workers
from flow.search.proxy import proxy_cost, shapes_from_model
from flow.search.space import SearchSpace, parse_space, variant_data
from flow.train import read_float_weights, train_float


def variant(card: Card, space: SearchSpace, values: dict[str, Any], *, epochs: int | None = None) -> Card:
    """The card with ``values`` applied, validated by :func:`flow.card.parse_card` like any user card."""
    return parse_card(variant_data(card, space, values, epochs=epochs), card.path)


@dataclasses.dataclass
class Evaluator:
    """Trains and scores one configuration; shares the dataset and the float warm-start weights across trials."""

    card: Card
    space: SearchSpace
    ds: Dataset
    warm_dir: Path
    dataset_fp: str
    default_badness: float | None = None
    pruner_study: Any = None  # prune method hyperband: the companion study (open_pruner_study)
    project: Project | None = None  # the card's built project, whose float baseline is a warm start
    _warm: dict = dataclasses.field(default_factory=dict)

    def warm_weights(self, cv: Card) -> list[np.ndarray] | None:
        """Float weights for ``cv``'s architecture (trained once, kept in ``search/warm/``); None if disabled.

        For the card's own shape trained for the card's own epochs this is the card's float baseline: the
        project's (`make hls`) when its training fingerprint matches, so the search does not train it again.
        """
        if self.space.float_epochs == 0:
            return None
        units = weight_shape(cv)
        key = f"{self.dataset_fp[:12]}_{self.space.float_epochs}_{self.card.training.seed}_" + "x".join(map(str, units))
        if key in self._warm:
            return self._warm[key]
        path = self.warm_dir / f"float_{key}.npz"
        baseline = units == weight_shape(self.card) and self.space.float_epochs == self.card.training.epochs
        built = None
        if baseline and self.project is not None:
            built = read_float_weights(self.project, self.card.training_fingerprint(self.dataset_fp))
        if built is not None:
            weights = built
            info(f"{self.card.name}: float warm start for units {units}: the built model's float baseline")
        elif path.exists():
            with np.load(path) as z:
                weights = [z[f"w{i}"] for i in range(len(z.files))]
        else:
            import tensorflow as tf

            fcard = dataclasses.replace(cv, training=dataclasses.replace(cv.training, epochs=self.space.float_epochs))
            tf.keras.backend.clear_session()
            t0 = time.perf_counter()
            model, _ = train_float(fcard, self.ds)  # the train stage's recipe: the same weights as its baseline
            weights = model.get_weights()
            self.warm_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")  # workers may train the same shape at once
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
        model = build_model(
            cv, self.ds.n_features, self.ds.n_outputs, quantized=True, image_shape=self.ds.meta.get("image_shape")
        )
        if init is not None:
            model.set_weights(init)
        t0 = time.perf_counter()
        guard = _PruneGuard(self, model, prune)
        try:
            epochs = _fit(model, self.ds, cv, [guard.callback()], quantized=True)
        finally:
            guard.finish()
        if guard.reason:
            raise optuna.TrialPruned(guard.reason)
        y = model.predict(self.ds.X_test, verbose=0, batch_size=4096)
        metric = self.space.metric(self.ds, y, self.space.metric_options)
        if not math.isfinite(metric):
            raise optuna.TrialPruned("the metric is not finite")
        from flow.metrics import score

        cost = proxy_cost(shapes_from_model(cv, model), cv.hardware.arch)  # the candidate's own architecture
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


def weight_shape(card: Card) -> tuple:
    """What decides the float model's weight shapes: each dense layer's units (the historical key, kept so older
    warm starts stay valid), then, when the card has them, each conv2d's filters and where batchnorms sit."""
    units: tuple = tuple(layer.units for layer in card.layers if layer.type == "dense")
    extra = tuple(
        f"c{layer.filters}" if layer.type == "conv2d" else f"n{i}"
        for i, layer in enumerate(card.layers)
        if layer.type in ("conv2d", "batchnorm")
    )
    return units + extra


class _PruneGuard:
    """Stops training when the loss diverges, or when the prune method says the trial is weak: at ``prune_after``
    epochs its metric is far from the default's (threshold), or optuna's HyperbandPruner, fed the validation loss
    of every epoch, prunes it in the companion study (hyperband)."""

    def __init__(self, ev: Evaluator, model, enabled: bool):
        self.ev, self.model, self.enabled = ev, model, enabled
        self.reason: str | None = None
        self.companion = ev.pruner_study.ask() if ev.pruner_study is not None else None
        self.step = 0  # epochs over both QAT phases (flow.train.fit_quantized)
        self.last_loss: float | None = None

    def check(self, epoch: int, logs: dict) -> bool:
        loss = logs.get("loss", 0.0)
        if not math.isfinite(loss):
            self.reason = f"training diverged at epoch {epoch + 1} (loss {loss})"
            return True
        if self.companion is not None:
            return self._hyperband(logs.get("val_loss"))
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

    def _hyperband(self, val_loss: float | None) -> bool:
        self.step += 1
        if val_loss is None or not math.isfinite(val_loss):
            return False
        self.last_loss = float(val_loss)
        self.companion.report(self.last_loss, self.step)
        if self.enabled and self.companion.should_prune():
            self.reason = (
                f"Hyperband: validation loss {val_loss:.4g} after {self.step} epochs is in its rung's weaker part"
            )
            return True
        return False

    def finish(self) -> None:
        """Close the companion trial: pruned, complete with its last validation loss, or failed."""
        from optuna.trial import TrialState

        if self.companion is None:
            return
        if self.reason is not None:
            self.ev.pruner_study.tell(self.companion, state=TrialState.PRUNED)
        elif self.last_loss is not None:
            self.ev.pruner_study.tell(self.companion, self.last_loss)
        else:
            self.ev.pruner_study.tell(self.companion, state=TrialState.FAIL)

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


def _fit(model, ds: Dataset, card: Card, callbacks: list, *, quantized: bool = False) -> int:
    """flow.train's recipe with extra callbacks (the seed is set once per trial by the caller); ``quantized``: the
    QKeras model's, batchnorm folding included."""
    from flow.train import fit, fit_quantized

    return (fit_quantized if quantized else fit)(model, ds, card, callbacks=callbacks)


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
        # A surplus trial is not a failure: the budget was spent by other workers.
        if record.exc_info and isinstance(record.exc_info[1], (KeyboardInterrupt, _Surplus)):
            self.dropping = True
            return False
        if self.dropping and record.getMessage().startswith("Trial "):
            self.dropping = False
            return False
        return True


def open_study(url: str, name: str, space: SearchSpace, digest: str, *, fresh: bool, seed_offset: int = 0):
    """Create or resume the study in storage ``url``; a study of a different search space is an error (use fresh)."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial_log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _QuietInterrupt) for f in trial_log.filters):
        trial_log.addFilter(_QuietInterrupt())
    path = workers.journal_path(url)
    if fresh and path is not None and path.exists():
        path.unlink()
    storage = workers.open_storage(url)
    if fresh and path is None and name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        optuna.delete_study(study_name=name, storage=storage)
    directions = [space.metric.direction, "minimize"]
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        if study.user_attrs.get("digest") != digest:
            raise FlowError(
                f"{url}: holds a search with other settings (space, metric, epochs or seed); "
                "run with --fresh to start over"
            )
    except KeyError:
        study = optuna.create_study(study_name=name, storage=storage, directions=directions, load_if_exists=True)
        study.set_user_attr("digest", digest)
    workers.fail_dead_trials(study)  # a trial of a killed process did not finish, so it does not count
    n_done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    study.sampler = _sampler(space, n_done + 1000 * seed_offset)
    return study, n_done


def open_pruner_study(url: str, name: str, space: SearchSpace, *, fresh: bool):
    """The single-objective companion of study ``name`` in which optuna's HyperbandPruner decides (optuna prunes only
    single-objective studies): one trial per trained trial, reporting its validation loss each epoch. Workers share
    it through the same storage, so the rungs see every worker's trials."""
    import optuna

    storage = workers.open_storage(url)
    companion = f"{name}-prune"
    if fresh and workers.journal_path(url) is None:  # a fresh journal is a new file already
        if companion in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
            optuna.delete_study(study_name=companion, storage=storage)
    pruner = optuna.pruners.HyperbandPruner(
        min_resource=space.prune_after, max_resource="auto", reduction_factor=int(space.prune_factor)
    )
    return optuna.create_study(
        study_name=companion, storage=storage, direction="minimize", pruner=pruner, load_if_exists=True
    )


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


class _Surplus(Exception):
    """The trial came after the budget was spent (by other workers): it stops its worker untrained."""


def run_study(
    card: Card,
    space: SearchSpace,
    search_dir: Path,
    *,
    fresh: bool = False,
    callbacks: Sequence[Callable] = (),
    n_workers: int = 1,
    storage: str | None = None,
    worker_index: int = 0,
    worker_argv: Sequence[str] = (),
) -> tuple[Any, Evaluator, dict]:
    """Run what is left of the budget, in ``n_workers`` processes on one storage; returns (study, evaluator, run
    figures). Worker 0 (this process) starts workers 1 … n-1 with ``worker_argv`` once the study is open."""
    import optuna
    from optuna.trial import TrialState

    os.environ.update(workers.thread_env(n_workers))  # before TensorFlow starts: the workers share the cores
    url = storage or workers.default_url(search_dir)
    source = Source(name=card.name, card=card)
    ds, fp = load_data(source)
    digest = space.digest(card, fp)
    study, n_done = open_study(
        url, f"{card.name}-search", space, digest, fresh=fresh and worker_index == 0, seed_offset=worker_index
    )
    ev = Evaluator(card, space, ds, search_dir / "warm", fp, project=Project(card.name, search_dir.parent))
    if space.prune_method == "hyperband":
        ev.pruner_study = open_pruner_study(url, f"{card.name}-search", space, fresh=fresh and worker_index == 0)
    if worker_index == 0 and not _has_default(study):
        study.enqueue_trial(space.defaults, user_attrs={"default": True})
    remaining = max(0, space.trials - n_done)
    if n_done and worker_index == 0:
        info(f"{card.name}: resuming the search: {n_done} trials done, {remaining} to run")
    ev.default_badness = default_badness(study, space)
    me = workers.worker_id()

    def objective(trial: optuna.trial.Trial):
        trial.set_user_attr(workers.WORKER_ATTR, me)
        if workers.is_surplus(study, trial.number, space.trials):
            trial.set_user_attr("surplus", True)
            study.stop()
            raise _Surplus
        values = {p.name: trial.suggest_categorical(p.name, p.choices) for p in space.params}
        is_default = bool(trial.user_attrs.get("default"))
        same = _same_config(study, values, trial.number)
        if same is not None:  # the sampler proposed a configuration already trained: reuse its result
            for k, v in same.user_attrs.items():
                if k not in ("default", workers.WORKER_ATTR):
                    trial.set_user_attr(k, v)
            trial.set_user_attr("duplicate_of", same.number)
            return tuple(same.values)
        if ev.default_badness is None:
            ev.default_badness = default_badness(study, space)  # another worker may have finished trial 0
        r = ev.evaluate(values, prune=not is_default)
        for k in ("metrics", "proxy", "bitwidths", "units", "epochs", "seconds"):
            trial.set_user_attr(k, r[k])
        if is_default:
            ev.default_badness = space.metric.badness(r["metric"])
        return r["metric"], r["cost"]

    t0 = time.perf_counter()
    bar = progress(total=remaining, desc=f"search {card.name}", unit="trial")
    shown_done = [n_done]

    def tick(study, trial) -> None:
        if trial.user_attrs.get("surplus"):
            return
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
        bar.update(max(0, done - shown_done[0]))  # every worker's trials, not only this process's
        shown_done[0] = done
        ok = trial.state == TrialState.COMPLETE
        shown = (
            f"{space.metric.name} {trial.values[0]:.4g}, cost {trial.values[1]:.0f}" if ok else trial.state.name.lower()
        )
        if bar.disable:
            info(f"search {card.name}: trial {trial.number} ({done - n_done}/{remaining} done): {shown}")
        elif ok:
            bar.set_postfix({space.metric.name: f"{trial.values[0]:.4g}", "cost": f"{trial.values[1]:.0f}"})

    children = []
    if worker_index == 0 and remaining > 1 and n_workers > 1:
        # The float warm start of the card's own shape, trained once here, is what every worker loads (starting
        # the workers first, to overlap their start with it, measured slower: 0.78x against 0.71x on lut_charge).
        ev.warm_weights(variant(card, space, space.defaults, epochs=space.epochs_per_trial))
        env = workers.thread_env(n_workers) | {"QFLOW_PROJECTS": str(search_dir.parent.parent)}  # this project
        argv = [*worker_argv, "--storage", url]
        children = [workers.spawn(argv, k, env, search_dir / "logs") for k in range(1, n_workers)]
        info(f"{card.name}: {n_workers} workers on {url} (logs in {search_dir / 'logs'})")
    try:
        if remaining:
            study.optimize(
                objective,
                n_trials=remaining,  # at most; with several workers the budget is shared (is_surplus)
                callbacks=[tick, *(_unless_surplus(cb) for cb in callbacks)],
                catch=(FlowError, ValueError, _Surplus),
            )
    finally:
        bar.close()
        failed = _wait(children)
    if failed:
        raise FlowError(f"{failed}: failed; see its log in {search_dir / 'logs'}")
    return study, ev, {"seconds": round(time.perf_counter() - t0, 1), "ran": remaining, "resumed_after": n_done}


def _unless_surplus(callback: Callable) -> Callable:
    """``callback`` for every trial but surplus ones (which did nothing)."""

    def call(study, trial) -> None:
        if not trial.user_attrs.get("surplus"):
            callback(study, trial)

    return call


def _wait(children: list) -> str | None:
    """Wait for the worker processes; the first that failed, named, or None."""
    failed = None
    for k, child in enumerate(children, start=1):
        if child.wait() != 0 and failed is None:
            failed = f"worker {k} (exit {child.returncode})"
    return failed


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
