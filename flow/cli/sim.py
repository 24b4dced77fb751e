"""``flow sim MODEL``: generate Verilog for an architecture and run the cocotb testbench in a simulator."""

from __future__ import annotations

import argparse

from flow import log
from flow.cli import int_at_least


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``flow sim``."""
    from flow.rtl import ARCHS, ENSEMBLE_ARCHS
    from flow.sim import DEFAULT_DRIVER, DRIVERS, SIMULATORS

    p.add_argument(
        "model", help="project name or the card path it was built from (runs verify first unless it passed on this IR)"
    )
    p.add_argument("--sim", choices=SIMULATORS, default="verilator", help="simulator (default: verilator)")
    p.add_argument(
        "--arch",
        choices=[*ARCHS, *ENSEMBLE_ARCHS],
        default=None,
        help="RTL architecture, or an ensemble's arrangement (default: the card's hardware.arch / arrangement)",
    )
    p.add_argument("-n", type=int_at_least(1), default=2000, help="number of vectors (default: 2000)")
    p.add_argument(
        "--reuse",
        action="append",
        metavar="LAYER=R",
        help="reuse factor of a dense layer (folded; default: the one hls4ml applied, in ir.json, else R = n_in)",
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
    p.add_argument(
        "--knob",
        action="append",
        metavar="NAME=VALUE",
        help="an architecture knob, e.g. --knob solver=csd for shiftadd (wins over the card's hardware.knobs; "
        "flow/rtl/README.md lists them)",
    )
    p.add_argument("--force", action="store_true", help="simulate again even when a passed run had the same inputs")
    p.add_argument(
        "--driver",
        choices=list(DRIVERS),
        default=DEFAULT_DRIVER,
        help="testbench: 'harness' (per-cycle work in HDL, Python fills and drains banks; default) or 'clock' "
        "(Python drives the ports every clock: the old, slower path, for comparison)",
    )


def ensure_verified(name: str) -> None:
    """Run ``flow verify`` unless verify.json is of the current ir.json (passed, with vectors.npz, or failed)."""
    from flow.ensemble_card import is_ensemble_card
    from flow.ensemble_verify import verify_ensemble
    from flow.errors import FlowError
    from flow.project import Project, read_json
    from flow.verify import verify

    project = Project.of(name)
    ir = project.load_ir()
    done = read_json(project.verify_json) if project.verify_json.is_file() else {}
    if done.get("ir_sha256") == ir.digest() and (done.get("passed") is False or project.vectors.is_file()):
        return  # passed, or failed for this very IR: the stage refuses that in one line (verify is deterministic)
    log.info(f"{name}: no passing verify for this IR yet: running verify first")
    s = verify_ensemble(project) if project.card.is_file() and is_ensemble_card(project.card) else verify(project)
    if not s["passed"]:
        raise FlowError(
            f"{project.verify_json}: verify failed ({s['mismatches']} mismatches); see `make verify MODEL={name}`"
        )


def card_arch(model: str) -> str:
    """The architecture the project's card asks for (the RTL registry's choice for a model without a card)."""
    from flow.card import load_card
    from flow.ensemble_card import card_arrangement, is_ensemble_card
    from flow.project import Project
    from flow.rtl import NO_CARD_ARCH

    project = Project.of(model)
    project.check_owned()  # before reading anything in it: a link or a user's folder is refused
    if not project.card.exists():
        return NO_CARD_ARCH
    if is_ensemble_card(project.card):
        return card_arrangement(project.card)
    return load_card(project.card).hardware.arch


def run(args: argparse.Namespace) -> int:
    """Run the stage; exit code 1 on any mismatch."""
    from flow.cli import next_step, project_name
    from flow.rtl import parse_knob_args, user_knobs
    from flow.sim import parse_reuse, run_stage

    name = project_name(args.model)
    reuse = parse_reuse(args.reuse)
    arch = args.arch or card_arch(name)
    knob_args = parse_knob_args(args.knob)
    user_knobs(arch, knob_args)  # a bad knob is refused before verify or generation
    ensure_verified(name)
    r = run_stage(
        name,
        args.sim,
        arch,
        args.n,
        reuse,
        seed=args.seed,
        in_beat=args.in_beat,
        force=args.force,
        driver=args.driver,
        knob_args=knob_args,
    )
    status = "PASS" if r.passed else "FAIL"
    log.info(
        f"{name} {r.architecture}/{r.simulator}: {status}, {r.vectors} vectors, {r.mismatches} mismatches, "
        f"latency {r.latency_cycles} cycles, II {r.ii_cycles}, build {r.build_seconds:.1f} s, "
        f"{r.samples_per_second or 0:.0f} samples/s"
    )
    if not r.passed:
        print(f"error: {r.error}")
    else:
        next_step(f"make report MODEL={name}  (Yosys cost of every rtl/<arch> and the report)")
    return 0 if r.passed else 1
