"""Timing section of the report: Fmax, critical paths, latency and II in ns, the card's clock and sample rate.

Figures come from the ``ecp5`` flow (nextpnr place and route on a Lattice ECP5 LFE5U-85F) and the ``asic_timing``
flow (ABC's delay estimate in OSU018 cells) of :mod:`flow.cost.yosys`; cycles from the simulation (measured) or
``design.json`` (expected). The clock a design runs at is the card's ``hardware.clock_period_ns`` when the design
meets it, else the achieved one; a card's ``hardware.sample_rate_mhz`` is met when II × that clock period ≤ 1000 /
rate ns (a 40 MHz trigger: ≤ 25 ns). A flow that failed or did not run gives no figure, never a zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from flow.card import Hardware
from flow.cost.yosys import TIMING_FLOWS
from flow.errors import ToolError
from flow.ir import AppliedHardware
from flow.log import info
from flow.tools import find_tool

TABLE_LATENCY_CYCLES = 1  # flow.cost.tables.write_rom: one registered read per sample
TABLE_II_CYCLES = 1


@dataclass(frozen=True)
class CardClock:
    """What the card asks for: a clock period and, optionally, a sample rate."""

    period_ns: float
    rate_mhz: float | None = None
    source: str = "hardware.clock_period_ns"

    @property
    def max_ii_ns(self) -> float | None:
        """The longest sample spacing the rate allows (25 ns at 40 MHz)."""
        return 1000.0 / self.rate_mhz if self.rate_mhz else None


def available_flows() -> tuple[str, ...]:
    """The timing flows that can run here: ``ecp5`` needs nextpnr-ecp5 (a missing tool must not cost the area)."""
    try:
        find_tool("nextpnr-ecp5")
    except ToolError as exc:
        info(f"no ECP5 timing: {exc}")
        return tuple(f for f in TIMING_FLOWS if f != "ecp5")
    return TIMING_FLOWS


def card_clock(card: dict, applied: AppliedHardware | None = None) -> CardClock:
    """The clock hls4ml applied (the IR's ``hardware``), else the card's, else the card default; the card's rate."""
    hw = card.get("hardware") or {}
    if applied is not None:
        period, source = applied.clock_period_ns, "hardware.clock_period_ns, as hls4ml applied it (ir.json)"
    elif "clock_period_ns" in hw:
        period, source = float(hw["clock_period_ns"]), "hardware.clock_period_ns"
    else:
        period, source = Hardware.clock_period_ns, "hardware.clock_period_ns (card default)"
    rate = hw.get("sample_rate_mhz")
    return CardClock(period, float(rate) if rate else None, source)


def cycles(entry: dict) -> tuple[int | None, int | None, str]:
    """(latency, II, where from) of one architecture: measured in a simulation, else expected (design.json)."""
    for name, s in sorted((entry.get("sim") or {}).items()):
        if isinstance(s, dict) and s.get("latency_cycles") is not None and s.get("ii_cycles") is not None:
            return int(s["latency_cycles"]), int(s["ii_cycles"]), f"measured ({name})"
    design = entry.get("design") or {}
    lat, ii = design.get("latency_cycles_expected"), design.get("ii_cycles")
    if lat is not None and ii is not None:
        return int(lat), int(ii), "expected (design.json)"
    return None, None, "unknown"


def at_clock(achieved_ns: float, latency: int | None, ii: int | None, card: CardClock) -> dict:
    """Figures of a design whose shortest clock period is ``achieved_ns``."""
    met = achieved_ns <= card.period_ns
    run_ns = card.period_ns if met else achieved_ns  # the clock it runs at: the card's, or the fastest it allows
    out: dict[str, Any] = {
        "period_ns": round(achieved_ns, 3),
        "fmax_mhz": round(1000.0 / achieved_ns, 2),
        "card_clock_met": met,
        "run_period_ns": round(run_ns, 3),
    }
    if latency is not None and ii is not None:
        out |= {
            "latency_ns": round(latency * achieved_ns, 2),  # at the achieved clock
            "ii_ns": round(ii * achieved_ns, 2),
            "max_sample_rate_mhz": round(1000.0 / (ii * achieved_ns), 3),
            "run_ii_ns": round(ii * run_ns, 2),  # at the clock it runs at
        }
        if card.max_ii_ns is not None:
            out["rate_met"] = ii * run_ns <= card.max_ii_ns
    return out


def card_cycles(d: dict, card: dict, applied: AppliedHardware | None = None) -> dict:
    """Each architecture's latency and II in cycles and in ns at the card's clock, and whether the card's sample
    rate is sustained there (no tool runs: whether the design meets that clock is the timing section's)."""
    clock = card_clock(card, applied)
    out: dict = {"card": asdict(clock), "card_arch": (card.get("hardware") or {}).get("arch"), "archs": {}}
    archs = d.get("archs") if isinstance(d.get("archs"), dict) else {}
    for arch, entry in archs.items():
        lat, ii, source = cycles(entry)
        row: dict[str, Any] = {"latency_cycles": lat, "ii_cycles": ii, "cycles_from": source}
        if lat is not None and ii is not None:
            row |= {
                "latency_ns": round(lat * clock.period_ns, 2),
                "ii_ns": round(ii * clock.period_ns, 2),
                "max_sample_rate_mhz": round(1000.0 / (ii * clock.period_ns), 4),
            }
            if clock.max_ii_ns is not None:
                row["rate_met"] = ii * clock.period_ns <= clock.max_ii_ns + 1e-9
        out["archs"][arch] = row
    return out


def render_cycles_md(cc: Any) -> list[str]:
    """The report's ``## Latency and II`` section (:func:`card_cycles`)."""
    L = ["## Latency and II at the card's clock", ""]
    if not isinstance(cc, dict) or not cc.get("archs"):
        return L + ["No design (run `make sim`).", ""]
    card = CardClock(**cc["card"])
    rate = f"{card.rate_mhz:g} MHz sustained" if card.rate_mhz else "rate"
    L += [
        f"At the card's {card.period_ns:g} ns clock (`{card.source}`), whether or not a design meets it (the timing "
        "section says); cycles measured in simulation where a run recorded them, else the generator's figures."
        + (f" The card's `hardware.arch` is `{cc['card_arch']}`." if cc.get("card_arch") else ""),
        "",
    ]
    header = ["arch", "latency cycles", "latency ns", "II cycles", "II ns", "max rate MHz", rate, "cycles from"]
    rows = [
        [
            arch,
            _num(t.get("latency_cycles")),
            _ns(t.get("latency_ns")),
            _num(t.get("ii_cycles")),
            _ns(t.get("ii_ns")),
            _num(t.get("max_sample_rate_mhz"), 4),
            _num(t.get("rate_met")) if card.rate_mhz else "–",
            t.get("cycles_from", "unknown"),
        ]
        for arch, t in cc["archs"].items()
    ]
    return L + _table(header, rows) + [""]


def _flow_status(r: Any) -> str:
    if not isinstance(r, dict):
        return "not run"
    return str(r.get("status", "not run"))


def design_timing(cost: Any, latency: int | None, ii: int | None, card: CardClock) -> dict:
    """ECP5 and ASIC timing of one design from its cost results (``{flow: result}``)."""
    cost = cost if isinstance(cost, dict) else {}
    out: dict = {"latency_cycles": latency, "ii_cycles": ii}
    e = cost.get("ecp5")
    if _flow_status(e) == "ok" and e["ecp5"].get("fmax_mhz"):
        r = e["ecp5"]
        out["ecp5"] = at_clock(1000.0 / r["fmax_mhz"], latency, ii, card) | {
            "fmax_mhz": r["fmax_mhz"],
            "cells": r.get("cells", {}),
            "critical_path": r.get("critical_path"),
        }
        if e.get("dsp_fallback"):
            out["ecp5"]["dsp_fallback"] = e["dsp_fallback"]
    elif _flow_status(e) == "ok":
        out["ecp5"] = {"status": "no Fmax", "note": e["ecp5"].get("note", "")}
    elif isinstance(e, dict) and (placed := e.get("ecp5_placed")):  # routing stopped at the time limit
        out["ecp5"] = at_clock(1000.0 / placed["fmax_mhz"], latency, ii, card) | {
            "fmax_mhz": placed["fmax_mhz"],
            "cells": placed.get("cells", {}),
            "estimate": f"post-placement estimate: routing stopped at the {e.get('timed_out_s', 0):g} s limit",
        }
    else:
        out["ecp5"] = {"status": _flow_status(e)}
    a = cost.get("asic_timing")
    t = (a or {}).get("asic_timing") if _flow_status(a) == "ok" else None
    if t and "delay_ps" in t:
        out["asic"] = at_clock(t["delay_ps"] / 1000.0, latency, ii, card) | {
            "delay_ps": t["delay_ps"],
            "library": t.get("library"),
            "start": t.get("start"),
            "end": t.get("end"),
        }
    else:
        out["asic"] = {"status": (t or {}).get("status") or _flow_status(a)}
    return out


FAMILIES = ("ecp5", "asic")  # the timing figures of a design: ECP5 place and route, OSU018 delay


def _bounded_asic(row: dict, result: Any, module: str, card: CardClock, ends: dict) -> dict:
    """A layer timed with its kernel kept as a module (mapped once): ABC times each module on its own, so a path
    through the kernel is at most the kernel's longest segment plus the layer's own on each side that is not a
    register (``ends``: ``input``, ``output`` registered), and at least the longest of them. The row's figure is
    that upper bound, with the lower one."""
    delays = (((result or {}).get("asic_timing") or {}).get("module_delay_ps")) or {}
    if module not in delays or len(delays) < 2 or "period_ns" not in row:
        return row
    own, inner = delays[module], max(v for k, v in delays.items() if k != module)
    lo = max(own, inner) / 1000.0
    hi = max(lo, (inner + own * sum(not ends.get(side) for side in ("input", "output"))) / 1000.0)
    met = True if hi <= card.period_ns else False if lo > card.period_ns else None
    return at_clock(hi, None, None, card) | {"lower_ns": round(lo, 3), "card_clock_met": met, "upper_bound": hi > lo}


def modules_timing(per_module: dict, latency: int | None, ii: int | None, card: CardClock) -> dict:
    """A design timed module by module (:func:`flow.cost.parts.cost_and_time_parts`): each module's figures, and
    per family the design's from its worst module (each layer registers its output and reads registers, so the
    critical path is within one layer). A layer not timed makes the design's figure a lower bound, a layer timed in
    parts (its kernel kept) an upper bound: a clock counts as met only when every bound is below it, as missed
    when a lower bound exceeds it, and as unknown otherwise."""
    modules = {}
    for m, r in per_module.items():
        row = design_timing(r, None, None, card) | {"inside": r.get("inside")}
        row["asic"] = _bounded_asic(row["asic"], r.get("asic_timing"), m, card, r.get("kernel_ends_registered") or {})
        modules[m] = row
    out: dict = {"latency_cycles": latency, "ii_cycles": ii, "modules": modules}
    for fam in FAMILIES:
        done = {m: t[fam] for m, t in modules.items() if "period_ns" in t[fam]}
        untimed = [m for m, t in modules.items() if t["inside"] is None and "period_ns" not in t[fam]]
        if not done:
            out[fam] = {"status": "not run" if not modules else "no module timed"}
            continue
        worst = max(done, key=lambda m: done[m]["period_ns"])
        lower = max(t.get("lower_ns", t["period_ns"]) for t in done.values())
        mets = [t["card_clock_met"] for t in done.values()]
        met = False if False in mets else None if untimed or None in mets else True
        f = at_clock(lower if untimed else done[worst]["period_ns"], latency, ii, card) | {"worst_module": worst}
        f["card_clock_met"] = met
        if f.get("rate_met") is not None:
            bounded = untimed or any(t.get("upper_bound") for t in done.values())
            missed = ii * max(card.period_ns, lower) > (card.max_ii_ns or 0) + 1e-9  # at the fastest it may run
            held = f["rate_met"] and not untimed  # at the card's clock, or at an upper bound of the period
            f["rate_met"] = False if missed else True if held else None if met is None or bounded else False
        if untimed:  # an untimed layer may be slower
            f |= {"lower_bound": True, "untimed_modules": untimed}
        elif any(t.get("upper_bound") for t in done.values()):
            f |= {"upper_bound": True, "lower_ns": round(lower, 3)}
        out[fam] = f
    return out


def report_timing(d: dict, card: dict, applied: AppliedHardware | None = None) -> dict:
    """The report's ``timing`` block: the clock (``card_clock``), then each architecture's and the table ROM's."""
    clock = card_clock(card, applied)
    out: dict = {"card": asdict(clock), "archs": {}}
    archs = d.get("archs") if isinstance(d.get("archs"), dict) else {}
    for arch, entry in archs.items():
        lat, ii, source = cycles(entry)
        if isinstance(entry.get("layer_timing"), dict):  # --per-layer: each module timed as its own top
            out["archs"][arch] = modules_timing(entry["layer_timing"], lat, ii, clock) | {"cycles_from": source}
            continue
        out["archs"][arch] = design_timing(entry.get("cost"), lat, ii, clock) | {"cycles_from": source}
    synth = (d.get("table") or {}).get("synth")
    if isinstance(synth, dict) and ("ecp5" in synth or "asic_timing" in synth):
        out["table"] = design_timing(synth, TABLE_LATENCY_CYCLES, TABLE_II_CYCLES, clock) | {
            "cycles_from": "one registered read"
        }
    return out


# ---------------------------------------------------------------------------------------------- markdown


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, float):
        return f"{v:,.{digits}g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _ns(v: float | None) -> str:
    """Nanoseconds as people read them: 25, 70, 3,400, 13,340 (never 3.4e+03)."""
    if v is None:
        return "–"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:g}"


def _row(name: str, t: dict, fam: str, card: CardClock) -> list[str]:
    f = t.get(fam) or {}
    if "period_ns" not in f:
        return [name, f"**{f.get('status', 'not run')}**"] + ["–"] * 8
    rate = _met(f.get("rate_met")) if card.rate_mhz else "–"
    # a lower bound (an untimed module may be slower) or an upper one (a layer timed in parts)
    at_least, at_most = ("≥ ", "≤ ") if f.get("lower_bound") else ("≤ ", "≥ ") if f.get("upper_bound") else ("", "")
    worst = f" (worst module `{f['worst_module']}`)" if f.get("worst_module") else ""
    return [
        name + worst,
        at_most + _num(f["fmax_mhz"], 4) + (" (placed, not routed)" if f.get("estimate") else ""),
        at_least + _num(f["period_ns"]),
        _met(f["card_clock_met"]),
        _num(t.get("latency_cycles")),
        at_least + _num(f.get("latency_ns")),
        _num(t.get("ii_cycles")),
        at_least + _num(f.get("ii_ns")),
        at_most + _num(f.get("max_sample_rate_mhz"), 4),
        rate,
    ]


def _met(v: bool | None) -> str:
    """A check's answer; None: unknown (a figure that is only a bound)."""
    return "unknown" if v is None else _num(v)


def _modules_lines(designs: list[tuple[str, dict]], card: CardClock) -> list[str]:
    """``--per-layer``: each module's OSU018 delay and ECP5 figures, and what the worst module means for the card."""
    L: list[str] = []
    clock = f"{card.period_ns:g} ns"
    for name, t in designs:
        if not isinstance(t.get("modules"), dict):
            continue
        L += [
            f"{name}, module by module (`--per-layer`: each layer module synthesised and timed as its own top, its "
            "ports registered for ECP5; the layers are registered at their boundaries, so the design's critical path "
            "is its worst module's; the top's handshake, stall fan-out and argmax are not included; a kernel's path "
            "is part of its layer's, so alone it is a lower bound of that layer's):",
            "",
        ]
        rows = []
        for m, r in t["modules"].items():
            a, e = r.get("asic") or {}, r.get("ecp5") or {}
            path = e.get("critical_path") or {}
            rows.append(
                [
                    f"`{m}`",
                    f"kernel of {r['inside']}" if r.get("inside") else "layer",
                    _num(a["period_ns"]) if "period_ns" in a else f"**{a.get('status', 'not run')}**",
                    _met(a.get("card_clock_met")) if "period_ns" in a else "–",
                    _num(e["fmax_mhz"], 4) + (" (placed, not routed)" if e.get("estimate") else "")
                    if "period_ns" in e
                    else f"**{e.get('status', 'not run')}**",
                    _met(e.get("card_clock_met")) if "period_ns" in e else "–",
                    f"{path['logic_ns']} logic + {path['routing_ns']} routing" if path else "–",
                ]
            )
        header = ["module", "is", "OSU018 delay ns", f"meets {clock}", "ECP5 Fmax MHz", f"meets {clock}", "ECP5 path"]
        L += _table(header, rows) + [""]
        for fam, label in (("asic", "OSU018 delay"), ("ecp5", "ECP5")):
            f = t.get(fam) or {}
            if "period_ns" not in f:
                continue
            bound = "at least " if f.get("lower_bound") else ""
            untimed = f", {', '.join(f['untimed_modules'])} not timed" if f.get("untimed_modules") else ""
            text = f"{name} ({label}): critical path {bound}{f['period_ns']:g} ns in `{f['worst_module']}`{untimed}; "
            text += f"the card's {clock} clock met: {_met(f['card_clock_met'])}"
            if f.get("ii_ns") is not None and card.rate_mhz:
                text += (
                    f"; II {t.get('ii_cycles')} × {bound}{f['run_period_ns']:g} ns = {bound}{f['run_ii_ns']:g} ns, "
                    f"{card.rate_mhz:g} MHz sustained: {_met(f.get('rate_met'))}"
                )
            L += [text + ".", ""]
    return L


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def render_md(d: dict) -> list[str]:
    """The report's ``## Timing`` section."""
    tm = d.get("timing")
    L = ["## Timing (open tools, no vendor tool)", ""]
    if not isinstance(tm, dict):
        return L + [f"{tm or 'not run'}.", ""]
    card = CardClock(**tm["card"])
    ask = (
        f"; the card asks for {card.rate_mhz:g} MHz samples (`hardware.sample_rate_mhz`): II × clock period ≤ "
        f"{card.max_ii_ns:.4g} ns, checked at the card's clock when met, else at the achieved one"
        if card.rate_mhz
        else "; the card asks for no sample rate (`hardware.sample_rate_mhz`): the achievable rate is shown"
    )
    L += [f"Card clock: {card.period_ns:g} ns ({1000 / card.period_ns:.4g} MHz, `{card.source}`){ask}.", ""]
    designs = list((tm.get("archs") or {}).items())
    if "table" in tm:
        designs.append(("table ROM", tm["table"]))
    if not designs:
        return L + ["No design timed (run `make sim`).", ""]
    L += ["Cycles: " + "; ".join(f"{n} {t.get('cycles_from')}" for n, t in designs) + ".", ""]
    header = [
        "design",
        "Fmax MHz",
        "period ns",
        f"meets {card.period_ns:g} ns",
        "latency cycles",
        "latency ns",
        "II cycles",
        "II ns",
        "max rate MHz",
        f"{card.rate_mhz:g} MHz met" if card.rate_mhz else "rate",
    ]
    L += [
        "**FPGA: Lattice ECP5 LFE5U-85F**, Yosys `synth_ecp5` then nextpnr-ecp5 place and route (out of context, "
        "every port registered by a wrapper so that paths from and to the ports are timed, its flip-flops counted; "
        "seed 1, 200 MHz target). A different family from the xc7 synthesis counts above; latency and II in ns "
        "are at the achieved clock.",
        "",
    ]
    L += _table(header, [_row(n, t, "ecp5", card) for n, t in designs]) + [""]
    cells = [
        f"{n}: " + ", ".join(f"{k} {v:,}" for k, v in (t["ecp5"].get("cells") or {}).items())
        for n, t in designs
        if "cells" in (t.get("ecp5") or {})
    ]
    paths = [
        f"{n}: {p['delay_ns']} ns = {p['logic_ns']} logic + {p['routing_ns']} routing, `{p['start']}` → `{p['end']}`"
        for n, t in designs
        if (p := (t.get("ecp5") or {}).get("critical_path"))
    ]
    estimates = [f"{n}: {t['ecp5']['estimate']}" for n, t in designs if (t.get("ecp5") or {}).get("estimate")]
    if estimates:
        L += [
            "Placed, not routed: nextpnr's timing after placement, from the delays of the placed cells' distances "
            "(no routed wires: the routed figure may differ). " + "; ".join(estimates) + ". Raise "
            "`QFLOW_YOSYS_TIMEOUT` for the routed figure.",
            "",
        ]
    fallbacks = [n for n, t in designs if (t.get("ecp5") or {}).get("dsp_fallback")]
    if fallbacks:
        note = designs[[n for n, _ in designs].index(fallbacks[0])][1]["ecp5"]["dsp_fallback"]
        L += [f"{', '.join(fallbacks)}: {note}.", ""]
    L += ["ECP5 cells used: " + "; ".join(cells) + "." if cells else "", ""]
    L += ["ECP5 critical paths: " + "; ".join(paths) + "." if paths else "", ""]
    L += [
        "**ASIC: OSU018 cells**, critical-path delay estimated by ABC (`abc -liberty -constr -D 1`, then `stime`): "
        "the longest combinational path, no wires, without the flip-flops' clock-to-Q and setup, so the clock is "
        "an upper bound; not a sign-off timing analysis.",
        "",
    ]
    L += _table([h.replace("Fmax", "clock ≤") for h in header], [_row(n, t, "asic", card) for n, t in designs])
    return L + [""] + _modules_lines(designs, card)
