"""Verilog from the IR. ``generate(ir, arch, out_dir, **knobs)`` writes a design folder (see README.md here).

Architectures are an explicit registry (:data:`ARCHS`): each is a sibling module with ``KNOBS`` (defaults),
``KINDS`` (the IR layer kinds it emits; any other kind is refused in one line before emitting) and
``emit(ir, top, **knobs) -> Emitted``. Fixed building blocks are real files in ``source/``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from flow.errors import FlowError
from flow.ir import IR
from flow.project import atomic_dir, read_json, write_json
from flow.rtl import ensemble, folded, linebuffer, parallel, shiftadd
from flow.rtl.common import SOURCE_DIR, ports_doc, top_name

ARCHS: dict[str, ModuleType] = {"parallel": parallel, "folded": folded, "shiftadd": shiftadd, "linebuffer": linebuffer}
# An ensemble graph's arrangements (flow/rtl/ensemble.py): the same sibling interface, for ensemble IRs only.
ENSEMBLE_ARCHS: dict[str, ensemble.Arrangement] = {
    "parallel_members": ensemble.PARALLEL_MEMBERS,
    "serial_members": ensemble.SERIAL_MEMBERS,
}
CARD_DEFAULT_ARCH = "parallel"  # a card's hardware.arch when it names none
NO_CARD_ARCH = "folded"  # a user's saved model (no card): folding fits a network of any size


@dataclass(frozen=True)
class Design:
    """A generated design folder: Verilog files in compile order, the top module and its figures."""

    out_dir: Path
    top: str
    arch: str
    files: list[str]
    ir_sha256: str
    latency_cycles_expected: int | None
    ii_cycles: int
    knobs: dict
    ports: dict
    details: dict = field(default_factory=dict)
    layer_modules: list[str] = field(default_factory=list)  # one module per layer (the ASIC flow maps each alone)

    @property
    def sources(self) -> list[Path]:
        """The Verilog files, absolute, in compile order."""
        return [self.out_dir / f for f in self.files]

    def to_dict(self) -> dict:
        return {
            "top": self.top,
            "arch": self.arch,
            "ir_sha256": self.ir_sha256,
            "latency_cycles_expected": self.latency_cycles_expected,
            "ii_cycles": self.ii_cycles,
            "knobs": self.knobs,
            "ports": self.ports,
            **({"details": self.details} if self.details else {}),
            **({"layer_modules": self.layer_modules} if self.layer_modules else {}),
        }

    @classmethod
    def load(cls, out_dir: Path) -> Design:
        """Read a design folder written by :func:`generate`."""
        out_dir = Path(out_dir)
        d = read_json(out_dir / "design.json")
        files = (out_dir / "files.txt").read_text().split()
        return cls(
            out_dir=out_dir,
            top=d["top"],
            arch=d["arch"],
            files=files,
            ir_sha256=d["ir_sha256"],
            latency_cycles_expected=d.get("latency_cycles_expected"),
            ii_cycles=d["ii_cycles"],
            knobs=d["knobs"],
            ports=d["ports"],
            details=d.get("details", {}),
            layer_modules=d.get("layer_modules", []),
        )


def ir_sha256(ir: IR) -> str:
    """A digest of the IR's canonical JSON."""
    return ir.digest()


def get_arch(arch: str) -> ModuleType | ensemble.Arrangement:
    """The generator of ``arch`` (an architecture or an ensemble arrangement); a FlowError lists the valid names."""
    every = {**ARCHS, **ENSEMBLE_ARCHS}
    try:
        return every[arch]
    except KeyError:
        raise FlowError(f"unknown architecture {arch!r} (choose from: {', '.join(every)})") from None


def check_kinds(ir: IR, arch: str) -> None:
    """A one-line FlowError when ``ir`` has a layer kind the architecture does not emit."""
    kinds = get_arch(arch).KINDS
    node = next((node for node in ir.nodes if node.kind not in kinds), None)
    if node is not None:
        known = ", ".join(sorted(k.value for k in kinds))
        raise FlowError(f"{arch}: layer {node.name} is a {node.kind.value} layer, which {arch} does not emit ({known})")


def rate_knobs(arch: str, ir: IR, period_ns: float, rate_mhz: float | None) -> dict:
    """The knobs a card's clock and sample rate give ``arch`` (its ``rate_knobs``; none for the others)."""
    derive = getattr(get_arch(arch), "rate_knobs", None)
    return derive(ir, period_ns, rate_mhz) if derive else {}


def settable_knobs(arch: str) -> dict:
    """The knobs of ``arch`` a user sets by name (a card's ``hardware.knobs`` or ``--knob``), with their defaults.

    A knob whose default is None has its own option (``--reuse``, ``--in-beat``) and is not among them.
    """
    return {k: v for k, v in get_arch(arch).KNOBS.items() if v is not None}


def user_knobs(arch: str, given: dict) -> dict:
    """``given`` (name -> value, values as YAML or command-line text) as ``arch``'s knobs, typed like their
    defaults and checked by the architecture's ``check_knobs`` when it has one; a FlowError names what is allowed."""
    allowed = settable_knobs(arch)
    out: dict = {}
    for name, value in given.items():
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise FlowError(f"{arch} has no knob {name!r} set by name (known: {known})")
        out[name] = _typed(arch, name, value, allowed[name])
    check = getattr(get_arch(arch), "check_knobs", None)
    if check:
        check(out)
    return out


def _typed(arch: str, name: str, value: object, default: object) -> object:
    """``value`` converted to the type of ``default`` (an int where a float is expected is fine)."""
    kind = type(default)
    if isinstance(value, str) and kind is not str:
        try:
            value = {"true": True, "false": False}[value.lower()] if kind is bool else kind(value)
        except (KeyError, ValueError):
            raise FlowError(f"{arch} knob {name}: {value!r} is not a {kind.__name__}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise FlowError(f"{arch} knob {name}: {value!r} is not a {kind.__name__}")
    return value


def parse_knob_args(items: list[str] | None) -> dict[str, str]:
    """``--knob NAME=VALUE`` arguments as a mapping (values still text: :func:`user_knobs` types them)."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise FlowError(f"--knob {item!r}: expected NAME=VALUE, e.g. --knob solver=csd")
        out[name.strip()] = value.strip()
    return out


def reuse_arch() -> str:
    """The architecture whose knobs are per-layer reuse factors (what ``--reuse`` sets)."""
    return next(name for name, gen in ARCHS.items() if "reuse_factors" in gen.KNOBS)


def generate(ir: IR, arch: str, out_dir: Path, **knobs) -> Design:
    """Write the design of ``ir`` in architecture ``arch`` into ``out_dir`` (replaced atomically on success)."""
    gen = get_arch(arch)
    unknown = set(knobs) - set(gen.KNOBS)
    if unknown:
        raise FlowError(f"{arch}: unknown knob(s) {', '.join(sorted(unknown))} (known: {', '.join(gen.KNOBS)})")
    ir.validate()
    check_kinds(ir, arch)
    top = top_name(ir)
    emitted = gen.emit(ir, top, **knobs)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        names = []
        for block in emitted.fixed_blocks:
            shutil.copyfile(SOURCE_DIR / block, tmp / block)
            names.append(block)
        for fname, text in emitted.files.items():
            (tmp / fname).write_text(text)
            if fname.endswith(".v"):
                names.append(fname)
        design = Design(
            out_dir=out_dir,
            top=top,
            arch=arch,
            files=names,
            ir_sha256=ir_sha256(ir),
            latency_cycles_expected=emitted.latency_cycles,
            ii_cycles=emitted.ii_cycles,
            knobs=emitted.knobs,
            ports=emitted.ports or ports_doc(ir, top, emitted.in_beat),
            details=emitted.details,
            layer_modules=list(emitted.layer_modules),
        )
        (tmp / "files.txt").write_text("".join(f"{n}\n" for n in names))
        write_json(tmp / "design.json", design.to_dict())
    return design
