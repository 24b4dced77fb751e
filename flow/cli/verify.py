"""`flow verify`: the NumPy reference against the hls4ml C simulation, bit for bit, on every layer."""

from __future__ import annotations

import argparse

from flow.cli import int_at_least


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the arguments."""
    p.add_argument("model", nargs="?", help="model name (its project under hls_projects/ must exist: make hls)")
    p.add_argument("--keras", metavar="PATH", help="a user's model converted by `flow hls --keras` (name = file stem)")
    p.add_argument("--data", metavar="NPZ", help="accepted for symmetry with `flow hls`; the saved test set is used")
    p.add_argument("--name", help="project name of a --keras model")
    p.add_argument(
        "-n",
        "--random",
        type=int_at_least(0),
        default=10_000,
        help="random input vectors besides the test set (default 10000)",
    )
    p.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the random vectors")
    p.add_argument("--force", action="store_true", help="verify again even when a passed run had the same inputs")


def run(args: argparse.Namespace) -> int:
    """Run the stage; exit 1 on any mismatch."""
    from pathlib import Path

    from flow.cli import next_step, project_name
    from flow.errors import FlowError
    from flow.project import Project
    from flow.verify import verify

    if not args.keras and (args.data or args.name):
        raise FlowError("--data and --name apply only with --keras PATH (a user's model)")
    if args.keras:
        name = args.name if args.name is not None else Path(args.keras).stem
    elif args.model:
        name = project_name(args.model)
    else:
        raise FlowError("give a model name (e.g. diag_05)")
    from flow.ensemble_card import is_ensemble_card

    project = Project.of(name)
    if project.card.is_file() and is_ensemble_card(project.card):  # features, members and vote
        from flow.ensemble_verify import N_RANDOM, print_summary, verify_ensemble

        n_random = min(args.random, N_RANDOM)  # every member's C simulation runs them all
        e = verify_ensemble(project, n_random=n_random, seed=args.seed, force=args.force)
        print_summary(e)
        return 0 if e["passed"] else 1
    s = verify(project, n_random=args.random, seed=args.seed, force=args.force)
    status = "PASS" if s["bit_exact"] else "FAIL"
    print(
        f"{status}  {name}: {s['vectors_checked']} vectors ({s['test_vectors']} test, {s['random_vectors']} random), "
        f"{s['layers_compared']} layers each, {s['mismatches']} mismatches"
    )
    print(f"{'PASS' if s['qkeras_vs_reference']['passed'] else 'FAIL'}  {s['qkeras_message']}")
    if s["first_mismatch"]:
        m = s["first_mismatch"]
        print(
            f"first mismatch: layer {m['layer']} vector {m['vector']} output {m['output_index']}: "
            f"reference {m['expected']} != C-sim {m['actual']}"
        )
    if s["passed"]:
        from flow.rtl import ARCHS

        archs = "|".join(ARCHS)
        next_step(f"make sim MODEL={name}  (Verilog + cocotb testbench; ARCH={archs}, SIM=icarus|verilator)")
    return 0 if s["passed"] else 1
