"""`flow report`: Yosys cost and the accuracy/area report of one model (or a summary of all)."""

from __future__ import annotations

import argparse

from flow.cli import int_at_least


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the arguments."""
    p.add_argument("model", nargs="?", help="model: project name or the card path it was built from")
    p.add_argument("--all", action="store_true", help="report every model built, then write hls_projects/summary.md")
    p.add_argument("--no-synth", action="store_true", help="no Yosys runs: costs are shown as not run")
    p.add_argument("--no-timing", action="store_true", help="no ECP5 place and route or ASIC timing (area only)")
    p.add_argument(
        "--per-layer",
        action="store_true",
        help="also cost each layer module of every design as its own top (a design too large for one Yosys run)",
    )
    p.add_argument("--no-table-synth", action="store_true", help="table cost from formulas only (no ROM synthesis)")
    p.add_argument(
        "--reuse",
        action="append",
        metavar="LAYER=R",
        help="the folded reuse factors the report must cost (checked against rtl/folded; make sim REUSE=... makes it)",
    )
    p.add_argument("-j", "--jobs", type=int_at_least(1), default=None, help="parallel Yosys processes (default: 2)")


def run(args: argparse.Namespace) -> int:
    """Write the report folder(s)."""
    from flow import report
    from flow.cli import next_step, project_name
    from flow.errors import FlowError
    from flow.log import info
    from flow.project import MARKER, PROJECTS_DIR

    kw = {"synth": not args.no_synth, "jobs": args.jobs, "table_synth": not args.no_table_synth}
    kw["timing"] = not args.no_timing
    kw["per_layer"] = args.per_layer
    if args.all:
        if args.model:
            raise FlowError("give a model or --all, not both")
        # Only folders qflow wrote (marked, not links): a folder of the user's is never written into.
        names = sorted(p.parent.name for p in PROJECTS_DIR.glob(f"*/{MARKER}") if (p.parent / "train.json").is_file())
        names = [n for n in names if not (PROJECTS_DIR / n).is_symlink()]
        for name in names:
            info(f"report {name}")
            report.build_report(name, **kw)
        out = report.build_summary()
        info(f"wrote {out}")
        return 0
    if not args.model:
        raise FlowError("name a model (e.g. `flow report diag_05`) or give --all")
    from flow.ensemble_card import is_ensemble_card
    from flow.project import Project

    name = project_name(args.model)
    card = Project.of(name).card
    if card.is_file() and is_ensemble_card(card):  # members, feature stage, voter: its own report
        from flow import ensemble_report

        out = ensemble_report.build_report(name, synth=not args.no_synth, jobs=args.jobs)
        info(f"wrote {out}/report.md")
        return 0
    if args.reuse:
        check_reuse(name, args.reuse)
    out = report.build_report(name, **kw)
    info(f"wrote {out}/report.md")
    next_step(f"open {out}/report.md; make search MODEL={name} (bitwidths) or make report-all (summary of all models)")
    return 0


def check_reuse(name: str, reuse: list[str]) -> None:
    """``--reuse``: the report costs the folding architecture's rtl/ as generated; a different request names the
    command that makes it."""
    from flow.errors import FlowError
    from flow.project import Project, read_json
    from flow.rtl import reuse_arch
    from flow.sim import parse_reuse

    want = parse_reuse(reuse)
    arch = reuse_arch()
    design = Project.of(name).rtl / arch / "design.json"
    have = (read_json(design).get("knobs") or {}).get("reuse_factors", {}) if design.is_file() else None
    if have is None or any(have.get(k) != v for k, v in want.items()):
        text = " ".join(f"{k}={v}" for k, v in want.items())
        raise FlowError(
            f"{design}: the {arch} design has reuse factors {have or 'none (not generated)'}, not {text}; "
            f'run `make sim MODEL={name} ARCH={arch} REUSE="{text}"` first'
        )
