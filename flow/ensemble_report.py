"""``flow report`` of an ensemble: accuracy against the number of members, the cost of each part, latency and II.

Everything comes from what the earlier stages stored: the members' test outputs (``test_outputs.npz``: float and
C-simulated logits; the hardware vote is taken on the C-simulated logits, which ``make hls`` checked equal to the
reference on every logit, and the RTL is checked equal to the reference by ``make sim``), the ensemble's test
labels (``data.npz``), every ``rtl/<arrangement>/`` that ``make sim`` generated and ``sim.json``. Each part of a
design (feature stage, each member's datapath, voter) is synthesised as its own top through the Yosys flows, the
whole design through the single-network report's flows; a run that does not finish within the flows' time limit
(``QFLOW_YOSYS_TIMEOUT``) is reported as such. The folder ``report/`` (``report.md``, ``report.json``,
``accuracy_vs_members.png``, ``confusion_vote.png``) is written atomically.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from flow import ensemble_plots
from flow.build import TEST_OUTPUTS
from flow.cost import yosys
from flow.cost.figures import arch_figures
from flow.cost.parts import FIGURES, Part, cost_parts
from flow.ensemble_build import FLOAT_VOTES, require_agreement
from flow.errors import FlowError
from flow.fixed import from_float
from flow.ir import IR
from flow.layers.vote import SoftmaxTypes, VoteLayer, VoteMethod, class_index_type
from flow.log import info
from flow.project import Project, atomic_dir, check_same_ir, read_json, read_npz, write_json
from flow.report import COST_FLOWS, NOT_RUN
from flow.timing import card_clock, cycles

# ------------------------------------------------------------------------------------------- accuracy


def vote_node(method: VoteMethod, n_classes: int) -> VoteLayer:
    """A vote of ``method`` as the ensemble graph builds it (default softmax tables for soft voting)."""
    soft = SoftmaxTypes.default() if method is VoteMethod.SOFT else None
    return VoteLayer("vote", method, n_classes, class_index_type(n_classes), soft)


def member_outputs(csim: dict, projects_dir: Path | None) -> tuple[list[np.ndarray | None], list[np.ndarray], list]:
    """Each member's float logits (None when not kept), its C-simulated raw logits and their types."""
    floats, raws, types = [], [], []
    for name in csim["members"]:
        p = Project.of(name, projects_dir)
        out = read_npz(p.root / TEST_OUTPUTS, ("csim",), hint=f"run `make hls MODEL={name}`")
        t = p.load_ir().output_t
        floats.append(out.get("float"))
        raws.append(from_float(out["csim"].astype(np.float64), t))
        types.append(t)
    return floats, raws, types


def accuracy_curve(csim: dict, y: np.ndarray, projects_dir: Path | None) -> dict:
    """Accuracy of the first k members voting (k = 1..N, card order) per voting kind, float and hardware."""
    require_agreement(csim)  # hardware = the members' C-sim logits only when they equal the reference's
    floats, raws, types = member_outputs(csim, projects_dir)
    n_classes = raws[0].shape[1]
    curve: dict = {"members": list(csim["members"]), "float": {}, "hardware": {}}
    for method in VoteMethod:
        node = vote_node(method, n_classes)
        hw = [_acc(node.kernel(raws[:k], types[:k])[:, 0], y) for k in range(1, len(raws) + 1)]
        curve["hardware"][method.value] = hw
        if any(f is None for f in floats):
            curve["float"][method.value] = None  # a member trained before its float outputs were kept
        else:
            stack = np.stack(floats)
            curve["float"][method.value] = [
                _acc(FLOAT_VOTES[method](stack[:k], n_classes), y) for k in range(1, len(floats) + 1)
            ]
    return curve


def hardware_vote(csim: dict, projects_dir: Path | None) -> np.ndarray:
    """The card's vote of all members on the test set, as the hardware computes it."""
    _, raws, types = member_outputs(csim, projects_dir)
    return vote_node(VoteMethod(csim["voting"]), raws[0].shape[1]).kernel(raws, types)[:, 0]


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]``."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return m


def _acc(pred: np.ndarray, y: np.ndarray) -> float:
    return round(float(np.mean(np.asarray(pred) == y)), 4)


# ------------------------------------------------------------------------------------------- cost


def parts(ir: IR, rtl: Path, design: dict) -> list[Part]:
    """The design's parts, from its module files: feature stage, each member's (or the shared) datapath, voter."""
    top = design["top"]
    have = {Path(f).stem for f in yosys.read_files_txt(rtl)}
    members = [name.split("/", 1)[0] for name in ir.output.inputs]
    layers = {m: [n.name.split("/", 1)[1] for n in ir.nodes if n.name.startswith(f"{m}/")] for m in members}
    out = [Part("feature stage", (f"{top}_features",))]
    own = [Part(m, tuple(f"{top}_{m}_{n}" for n in layers[m] if f"{top}_{m}_{n}" in have)) for m in members]
    if all(p.modules for p in own):
        out += own
    else:  # serial_members: one datapath, every member's weights in its banks
        shared = tuple(f"{top}_{n}" for n in layers[members[0]] if f"{top}_{n}" in have)
        out.append(Part(f"shared datapath ({len(members)} weight banks)", shared))
    out.append(Part("voter", (f"{top}_vote",)))
    missing = sorted({m for p in out for m in p.modules} - have) + [p.name for p in out if not p.modules]
    if missing:
        raise FlowError(f"{rtl}/files.txt: no module for {', '.join(missing)}; run `make sim` again")
    return out


def arrangement_entry(proj: Project, ir: IR, rtl: Path, sim: dict, clock, synth: bool, jobs: int | None) -> dict:
    """One arrangement: design record, latency and II (cycles, ns), parts and total cost."""
    design = read_json(rtl / "design.json")
    check_same_ir(rtl / "design.json", design.get("ir_sha256"), ir.digest(), f"make sim MODEL={proj.name}")
    runs = {k.split("/", 1)[1]: v for k, v in sim.items() if k.startswith(f"{rtl.name}/") and isinstance(v, dict)}
    entry: dict = {"design": {k: v for k, v in design.items() if k in ("top", "latency_cycles_expected", "ii_cycles")}}
    entry |= {"details": design.get("details") or {}, "sim": runs}
    latency, ii, source = cycles(entry)
    entry["cycles"] = {"latency": latency, "ii": ii, "source": source}
    if latency is not None:
        entry["cycles"] |= {"latency_ns": round(latency * clock.period_ns, 1), "ii_ns": round(ii * clock.period_ns, 1)}
    if not synth:
        entry["parts"] = entry["cost"] = NOT_RUN
        return entry
    part_list = parts(ir, rtl, design)
    info(f"{proj.name}: Yosys cost of rtl/{rtl.name}: {len(part_list)} parts and the whole design")
    entry["parts"] = cost_parts(rtl, part_list, jobs)
    try:
        entry["cost"] = yosys.cost_rtl(rtl, flows=COST_FLOWS, jobs=jobs)
    except FlowError as exc:
        entry["cost"] = {"status": "failed", "error": str(exc)}
    entry["total"] = arch_figures(entry)
    return entry


# ------------------------------------------------------------------------------------------- report


def collect(proj: Project, synth: bool = True, jobs: int | None = None, projects_dir: Path | None = None) -> dict:
    """Everything the ensemble report shows, as one JSON-ready dict."""
    proj.check_owned()
    csim = read_json(proj.csim_json)
    ir = proj.load_ir()
    data = read_npz(proj.data, ("y_test",), hint=f"run `make hls MODEL={proj.name}`")
    y = np.asarray(data["y_test"], dtype=np.int64)
    verify = read_json(proj.verify_json) if proj.verify_json.is_file() else None
    if verify is not None:
        check_same_ir(proj.verify_json, verify.get("ir_sha256"), ir.digest(), f"make verify MODEL={proj.name}")
    sim = read_json(proj.root / "sim.json") if (proj.root / "sim.json").is_file() else {}
    first = Project.of(csim["members"][0], projects_dir).load_ir()
    clock = card_clock({}, first.hardware)  # the members' clock, as hls4ml applied it
    d: dict = {"model": proj.name, "kind": "ensemble", "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    d |= {"ir_sha256": ir.digest(), "voting": csim["voting"], "members": csim["members"], "n_test": int(len(y))}
    d |= {"accuracy": csim["accuracy"], "member_accuracy": csim["member_accuracy"]}
    d["verify"] = {k: verify.get(k) for k in ("passed", "mismatches", "vote")} if verify else NOT_RUN
    d["accuracy_vs_members"] = accuracy_curve(csim, y, projects_dir)
    pred = hardware_vote(csim, projects_dir)
    d["confusion"] = confusion(y, pred, ir.output.n_classes).tolist()
    d["class_names"] = ir.class_names
    d["clock"] = {"period_ns": clock.period_ns, "source": clock.source}
    rtls = sorted(p.parent for p in proj.rtl.glob("*/design.json")) if proj.rtl.is_dir() else []
    d["arrangements"] = {r.name: arrangement_entry(proj, ir, r, sim, clock, synth, jobs) for r in rtls} or NOT_RUN
    return d


def build_report(name: str, projects_dir: Path | None = None, synth: bool = True, jobs: int | None = None) -> Path:
    """Write ``hls_projects/<name>/report/`` of an ensemble atomically and return it."""
    proj = Project.of(name, projects_dir)
    d = collect(proj, synth=synth, jobs=jobs, projects_dir=projects_dir)
    with atomic_dir(proj.report) as tmp:
        d["plots"] = [
            ensemble_plots.accuracy_vs_members(d["accuracy_vs_members"], tmp / "accuracy_vs_members.png", name),
            ensemble_plots.confusion_plot(np.array(d["confusion"]), d["class_names"], tmp / "confusion_vote.png"),
        ]
        write_json(tmp / "report.json", d)
        (tmp / "report.md").write_text(render_md(d))
    return proj.report


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.4f}" if v < 1 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]


def render_md(d: dict) -> str:
    """report.md of an ensemble."""
    lines = [f"# {d['model']}: {len(d['members'])} members, voting {d['voting']}", ""]
    lines += [f"Test spectra: {d['n_test']:,}. Verify: {_verify_line(d['verify'])}.", "", "## Accuracy", ""]
    kinds = ("float", "qkeras", "csim", "reference")
    lines += _table(["voting", *kinds], [[m, *(a.get(k) for k in kinds)] for m, a in d["accuracy"].items()])
    lines += ["", "Members (reference): " + ", ".join(f"{m} {a:.4f}" for m, a in d["member_accuracy"].items())]
    curve = d["accuracy_vs_members"]
    lines += ["", "## Accuracy against the number of members (card order; hardware = reference ≡ RTL)", ""]
    header = ["members", *(f"{m} hw" for m in curve["hardware"]), *(f"{m} float" for m in curve["float"])]
    rows = []
    for k, name in enumerate(curve["members"]):
        hw = [curve["hardware"][m][k] for m in curve["hardware"]]
        fl = [None if v is None else v[k] for v in curve["float"].values()]
        rows.append([f"{k + 1} (+{name})", *hw, *fl])
    lines += _table(header, rows) + ["", "![accuracy](accuracy_vs_members.png) ![confusion](confusion_vote.png)", ""]
    lines += [f"## Hardware (clock {d['clock']['period_ns']} ns: {d['clock']['source']})", ""]
    arrs = d["arrangements"]
    if not isinstance(arrs, dict):
        return "\n".join(lines + [f"RTL {NOT_RUN}: `make sim MODEL={d['model']}` generates it.", ""])
    rows = []
    for arr, e in arrs.items():
        c = e["cycles"]
        runs = ", ".join(
            f"{s} {r.get('vectors')} vectors {r.get('mismatches')} mismatches" for s, r in e["sim"].items()
        )
        rows.append([arr, c["latency"], c.get("latency_ns"), c["ii"], c.get("ii_ns"), c["source"], runs or NOT_RUN])
    lines += _table(["arrangement", "latency cycles", "latency ns", "II cycles", "II ns", "from", "sim"], rows)
    log1p = next(iter(arrs.values()))["details"].get("log1p") or {}
    if log1p:
        lines += [
            "",
            f"log1p ROM: {log1p['form']}, {log1p['depth']:,} × {log1p['word_width']} bits = "
            f"{log1p['rom_bits']:,} bits (full table {log1p['full_table_bits']:,} bits)",
        ]
    for arr, e in arrs.items():
        lines += ["", f"### Cost: {arr} (xc7 LUT/FF/DSP48E1/BRAM, OSU018 µm²; each part synthesised on its own)", ""]
        if not isinstance(e["parts"], dict):
            lines.append(f"Yosys {NOT_RUN} (--no-synth).")
            continue
        rows = [[name, *(p["figures"].get(k) for k in FIGURES), p["status"]] for name, p in e["parts"].items()]
        total = e.get("total") or {}
        status = _total_status(e["cost"])
        rows.append(["**total** (whole design)", *(total.get(k) for k in FIGURES), status])
        lines += _table(["part", *FIGURES, "status"], rows)
    return "\n".join(lines) + "\n"


def _verify_line(v: Any) -> str:
    if not isinstance(v, dict):
        return str(v)
    return f"{'passed' if v.get('passed') else 'FAILED'}, {v.get('mismatches')} mismatches (vote {v.get('vote')})"


def _total_status(cost: Any) -> str:
    if not isinstance(cost, dict) or cost.get("status") == "failed":
        return f"failed: {(cost or {}).get('error', '')}" if isinstance(cost, dict) else str(cost)
    bad = [f for f, r in cost.items() if isinstance(r, dict) and r.get("status") != "ok"]
    return "ok" if not bad else f"not finished: {', '.join(bad)}"
