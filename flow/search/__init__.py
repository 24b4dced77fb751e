"""Bitwidth search: a multi-objective optuna study of a card's ``search:`` space, metric against hardware cost.

:mod:`.space` (the space from the card), :mod:`.metrics` (objective registry), :mod:`.proxy` (analytic cost),
:mod:`.study` (optuna driver), :mod:`.pareto` (front, files, cards), :mod:`.synth` (optional Yosys check).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from flow.card_schema import QMODELS_DIR

GENERATED_DIR = QMODELS_DIR / "generated"


def run_search(
    model: str,
    *,
    trials: int | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    synth_check: bool = False,
    fresh: bool = False,
    projects_dir: Path | None = None,
    generated_dir: Path | None = None,
    callbacks: Sequence[Callable] = (),
    workers: int = 1,
    storage: str | None = None,
    worker_index: int = 0,
) -> dict:
    """Run (or resume) the search of ``model``'s card; write the outputs and cards; return pareto.json's data.

    ``workers`` processes share the study in ``storage`` (default: the project's journal file); a process started
    with ``worker_index`` > 0 only runs trials (the one that started it writes the outputs).
    """
    from optuna.trial import TrialState

    from flow.search import manifest, pareto
    from flow.search.study import load_search, project_search_dir, run_study

    card, space = load_search(model, {"trials": trials, "epochs_per_trial": epochs, "seed": seed})
    gen_dir = Path(generated_dir) if generated_dir is not None else GENERATED_DIR
    manifest.check_writable(gen_dir, card.name)  # before any training: only cards qflow wrote are replaced
    search_dir = project_search_dir(card, projects_dir)
    t0 = time.perf_counter()
    worker_argv = [str(card.path), "--trials", str(space.trials), "--epochs", str(space.epochs_per_trial)]
    worker_argv += ["--seed", str(space.seed)]
    study, ev, run = run_study(
        card,
        space,
        search_dir,
        fresh=fresh,
        callbacks=callbacks,
        n_workers=workers,
        storage=storage,
        worker_index=worker_index,
        worker_argv=worker_argv,
    )
    if worker_index:
        return {"model": card.name, "worker": worker_index, "seconds": run["seconds"]}

    trials_all = study.get_trials(deepcopy=False)
    complete = [t for t in trials_all if t.state == TrialState.COMPLETE]
    points = [pareto.point_of(t, space) for t in complete]
    default = next((p for p in points if p["default"]), None)
    unique = [p for p in points if p["duplicate_of"] is None]
    directions = [space.metric.direction, "minimize"]
    idx = pareto.pareto_front([(p["metric"], p["proxy_cost"]) for p in unique], directions)
    front = [dict(unique[i]) for i in idx]
    for k, p in enumerate(front, start=1):
        p["k"] = k
        p["card"] = f"{card.name}_p{k}"
    card_paths = pareto.write_cards(card, space, front, gen_dir)

    check: dict = {"status": "not requested"}
    if synth_check:
        from flow.search.synth import synth_check as run_check

        pts, paths = list(front), list(card_paths)
        if default is not None and card.path is not None and not any(p["default"] for p in front):
            pts.append(default)
            paths.append(card.path)
        check = run_check(pts, paths, projects_dir)
    if default is not None:
        for p in front:
            if p["default"]:
                default.update({k: p[k] for k in ("LUT", "um2") if k in p})

    from flow.search.baseline import built_baseline

    baseline = built_baseline(card, space.metric.name, projects_dir)
    if baseline is None and default is not None:
        baseline = {
            "source": f"trial 0: the card retrained for {space.epochs_per_trial} epochs (build it with `make hls` "
            "to compare with the fully trained model)",
            **{k: default[k] for k in ("metric", "proxy_cost", "LUT", "um2") if k in default},
        }
    summary = {
        "model": card.name,
        "metric": space.metric.name,
        "direction": space.metric.direction,
        "cost": "proxy (bit operations; see flow/search/proxy.py)",
        "budget": space.trials,
        "epochs_per_trial": space.epochs_per_trial,
        "seed": space.seed,
        "sampler": space.sampler,
        "trials": {
            "complete": len(complete),
            "pruned": sum(t.state == TrialState.PRUNED for t in trials_all),
            "failed": sum(t.state == TrialState.FAIL and not t.user_attrs.get("surplus") for t in trials_all),
            "duplicates": sum(p["duplicate_of"] is not None for p in points),
        },
        "default": default,
        "baseline": baseline,
        "front": front,
        "best_vs_default": pareto.best_vs_default(front, baseline, space.metric.direction),
        "synth_check": check,
        "cards": [p.name for p in card_paths],
        "seconds": {"this_run": round(time.perf_counter() - t0, 1), "trials": run["seconds"]},
        "resumed_after": run["resumed_after"],
        "workers": workers,
    }
    pareto.write_outputs(search_dir, summary, points, [p.name for p in space.params])
    return summary


def summary_lines(s: dict) -> list[str]:
    """The short summary printed at the end of a search."""
    m = s["metric"]
    t = s["trials"]
    lines = [
        f"model      {s['model']}  ({t['complete']} complete, {t['pruned']} pruned, {t['failed']} failed; "
        f"{s['seconds']['this_run']:.0f} s this run)",
    ]
    d = s.get("default")
    if d:
        lines.append(f"trial 0    {m} {d['metric']:.4g}, proxy cost {d['proxy_cost']:.0f}  (the card, short training)")
    base = s.get("baseline")
    if base:
        hw = "".join(f", {k} {base[k]:.0f}" for k in ("LUT", "um2") if base.get(k) is not None)
        lines.append(
            f"baseline   {m} {base['metric']:.4g}, proxy cost {base['proxy_cost']:.0f}{hw}  ({base['source']})"
        )
    for p in s["front"]:
        hw = "".join(f", {k} {p[k]:.0f}" for k in ("LUT", "um2") if p.get(k) is not None)
        mark = "  (default)" if p["default"] else ""
        lines.append(
            f"front p{p['k']:<3} {m} {p['metric']:.4g}, proxy cost {p['proxy_cost']:.0f}{hw}  trial {p['trial']}{mark}"
        )
    b = s.get("best_vs_default")
    if b and b.get("point") is not None:
        lines.append(
            f"best       p{b['point']} ({b['card']}): {m} {b['metric']:.4g} vs baseline {b['default_metric']:.4g} "
            f"({b['tolerance']}), at {b['cost_fraction']:.0%} of the baseline's proxy cost"
            + "".join(f", {b[k]:.0%} of its {k[:-9]}" for k in ("LUT_fraction", "um2_fraction") if k in b)
        )
    elif b:
        lines.append(f"best       {b['note']}")
    c = s["synth_check"]
    if c.get("status") == "ok":
        rho = ", ".join(
            f"{k.removeprefix('spearman_')} {v:.2f}" for k, v in c.items() if k.startswith("spearman") and v is not None
        )
        lines.append(f"synth      Spearman: {rho or 'too few points'}")
    else:
        lines.append(f"synth      {c.get('status')} (LUT and um2 of the front: add --synth-check)")
    lines.append(f"cards      {', '.join(s['cards'])}")
    from flow.search.baseline import next_command

    nxt = next_command(s)
    if nxt:
        lines.append(f"next       {nxt}")
    return lines
