"""The `flow` command: one module per subcommand, each with `add_arguments(parser)` and `run(args)`."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path

from flow import __version__

# An explicit registry: subcommand name -> (module, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "hls": ("flow.cli.hls", "train (or reuse) a model, write its hls4ml project, run C simulation"),
    "verify": ("flow.cli.verify", "check the NumPy reference against the hls4ml C simulation, bit for bit"),
    "sim": ("flow.cli.sim", "generate Verilog and run the cocotb testbench in Icarus or Verilator"),
    "report": ("flow.cli.report", "hardware cost (Yosys) and the accuracy/area report"),
    "search": ("flow.cli.search", "bitwidth search: accuracy/area Pareto front"),
    "cards": ("flow.cli.cards", "list or validate model cards"),
}


def int_at_least(lo: int):
    """An argparse type: an integer >= ``lo``, else a one-line usage error naming what is allowed."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < lo:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed; expected an integer >= {lo}")
        return value

    return parse


CARD_SUFFIXES = (".yaml", ".yml")
MODEL_SUFFIXES = (*CARD_SUFFIXES, ".h5", ".keras")


def project_name(model: str) -> str:
    """The project a model argument names: a card path or a saved model names the project of its file stem
    (a card's name is its file name), anything else is a project name. One way for every subcommand."""
    from flow.project import check_name

    text = str(model)
    return check_name(Path(text).stem if text.endswith(MODEL_SUFFIXES) else text)


def card_for(model: str) -> str:
    """A card argument for commands that read the card (search): a card name or path, else the project's copy
    of the card it was built from (a card that lives outside qmodels/, named by its project)."""
    from flow.card import QMODELS_DIR
    from flow.project import Project

    text = str(model)
    if text.endswith(CARD_SUFFIXES) or "/" in text:
        return text
    if any((d / f"{text}.yaml").exists() for d in (QMODELS_DIR, QMODELS_DIR / "generated")):
        return text
    from flow.errors import FlowError

    try:
        copy = Project.of(project_name(text)).card
    except FlowError:  # not a project name either: the card loader's own error names what is allowed
        return text
    return str(copy) if copy.is_file() else text


def next_step(command: str) -> None:
    """The command to run after this stage (stderr, with the progress lines)."""
    from flow.log import info

    info(f"next: {command}")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other user error (``--help`` shows the usage)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = _Parser(prog="flow", description="Small quantized neural networks to verified hardware.")
    parser.add_argument("--version", action="version", version=f"flow {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue  # a subcommand not built yet
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one line and exit 2; --debug shows the traceback."""
    from flow.errors import FlowError
    from flow.log import quiet_tensorflow, set_quiet

    quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    set_quiet(args.quiet)
    try:
        result = args._run(args)
    except FlowError as exc:
        if args.debug:  # the traceback too, but the same exit status
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unforeseen input: still one line unless --debug
        if args.debug:
            traceback.print_exc()
        text = " ".join(str(exc).split())[:300]
        print(f"error: {type(exc).__name__}: {text} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
