"""``flow sim MODEL``: generate Verilog for an architecture and run the cocotb testbench in a simulator."""

from __future__ import annotations

import argparse

from flow import log
from flow.cli import int_at_least


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``flow sim``."""
    from flow.rtl import ARCHS
    from flow.sim import SIMULATORS

    p.add_argument("model", help="model name (hls_projects/<model>/ must hold ir.json and vectors.npz)")
    p.add_argument("--sim", choices=SIMULATORS, default="verilator", help="simulator (default: verilator)")
    p.add_argument(
        "--arch", choices=list(ARCHS), default=None, help="RTL architecture (default: the card's hardware.arch)"
    )
    p.add_argument("-n", type=int_at_least(1), default=2000, help="number of vectors (default: 2000)")
    p.add_argument(
        "--reuse", action="append", metavar="LAYER=R", help="reuse factor of a dense layer (folded; default: the card)"
    )
    p.add_argument(
        "--in-beat",
        type=int_at_least(1),
        default=None,
        metavar="B",
        help="streaming input: B inputs per beat, with in_last (folded; default: the whole vector at once)",
    )
    p.add_argument(
        "--seed", type=int_at_least(0), default=1, help="seed of the idle gaps and back-pressure (default: 1)"
    )


def card_arch(model: str) -> str:
    """The architecture the project's card asks for (``folded`` for a model without a card)."""
    from flow.card import load_card
    from flow.project import Project

    project = Project.of(model)
    project.check_owned()  # before reading anything in it: a link or a user's folder is refused
    return load_card(project.card).hardware.arch if project.card.exists() else "folded"


def run(args: argparse.Namespace) -> int:
    """Run the stage; exit code 1 on any mismatch."""
    from flow.sim import parse_reuse, run_stage

    arch = args.arch or card_arch(args.model)
    r = run_stage(args.model, args.sim, arch, args.n, parse_reuse(args.reuse), seed=args.seed, in_beat=args.in_beat)
    status = "PASS" if r.passed else "FAIL"
    log.info(
        f"{args.model} {r.architecture}/{r.simulator}: {status}, {r.vectors} vectors, {r.mismatches} mismatches, "
        f"latency {r.latency_cycles} cycles, II {r.ii_cycles}, build {r.build_seconds:.1f} s, "
        f"{r.samples_per_second or 0:.0f} samples/s"
    )
    if not r.passed:
        print(f"error: {r.error}")
    return 0 if r.passed else 1
