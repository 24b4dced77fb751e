"""`flow search`: multi-objective bitwidth search (metric against hardware cost) over a card's `search:` space."""

from __future__ import annotations

import argparse

from flow.cli import int_at_least


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the arguments."""
    p.add_argument(
        "model",
        help="card name (qmodels/<name>.yaml), path to a card with a `search:` section, or a project built from one",
    )
    p.add_argument(
        "--trials",
        type=int_at_least(1),
        help="total trial budget, trial 0 (the card itself) included (default: search.trials)",
    )
    p.add_argument("--epochs", type=int_at_least(1), help="QAT epochs per trial (default: search.epochs_per_trial)")
    p.add_argument("--seed", type=int_at_least(0), help="sampler seed (default: search.seed)")
    p.add_argument(
        "--synth-check",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="build, generate RTL and synthesise each Pareto point with Yosys; report rank correlation with the proxy",
    )
    p.add_argument("--fresh", action="store_true", help="discard the stored study and start over (default: resume)")
    p.add_argument(
        "--workers",
        type=int_at_least(1),
        default=1,
        help="trial processes on this machine, sharing the cores (default 1)",
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        help="optuna storage shared by workers on several machines: journal:///shared/dir/study.journal or a "
        "database URL (postgresql://user@host/db); default: the project's search/study.journal",
    )
    p.add_argument("--worker-index", type=int_at_least(1), default=0, help=argparse.SUPPRESS)  # started by worker 0


def run(args: argparse.Namespace) -> int:
    """Run the search and print its summary."""
    from flow.cli import card_for
    from flow.search import run_search, summary_lines

    summary = run_search(
        card_for(args.model),
        trials=args.trials,
        epochs=args.epochs,
        seed=args.seed,
        synth_check=args.synth_check,
        fresh=args.fresh,
        workers=args.workers,
        storage=args.storage,
        worker_index=args.worker_index,
    )
    if args.worker_index:
        return 0
    print("\n".join(summary_lines(summary)))
    return 0
