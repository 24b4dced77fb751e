"""The parts of a table model's report that answer "is the network smaller than my table?" in hardware terms.

:func:`table_accuracy` recomputes the metrics from the IR (network + output stage, which the RTL is verified
equal to) in table LSBs, with the worst entry and the bit mapping; :func:`verdict` turns the table-vs-network rows
into one line per measure and a headline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flow.data.tables import TableInfo, addresses, input_mapping
from flow.project import Project, read_npz

# (verdict measure, compare_table row measure): the questions the verdict answers, in this order.
MEASURES = [
    ("LUT-only", "FPGA LUT (as LUT-ROM)"),
    ("with DSPs", "FPGA LUT with DSPs (as LUT-ROM)"),
    ("BRAM", "FPGA RAMB36"),
    ("µm² as logic", "osu018 um2 (ROM logic)"),
    ("µm² as macro", "sky130 um2 (SRAM macro)"),
]


def hardware_words(proj: Project) -> tuple[Any, TableInfo, np.ndarray, np.ndarray, np.ndarray] | None:
    """(IR, table info, inputs, table words, hardware words) over every table entry; None for a non-table IR."""
    from flow import reference

    if not (proj.ir_json.is_file() and proj.data.is_file()):
        return None
    ir = proj.load_ir()
    if not ir.table:
        return None
    info = TableInfo.from_dict(ir.table)
    d = read_npz(proj.data, ("X_test", "y_test"))
    X, y = np.asarray(d["X_test"], dtype=np.float64), np.asarray(d["y_test"], dtype=np.float64)
    words = reference.run(ir, reference.quantize_input(ir, X)).raw[-1].astype(np.int64).ravel()
    truth = np.rint(y.ravel() * info.value_scale).astype(np.int64)
    return ir, info, X, truth, words


def table_accuracy(proj: Project) -> dict[str, Any] | None:
    """Metrics of the hardware (the IR's output, = RTL) against the table, in LSBs; None for a non-table IR."""
    from flow.ir import LayerKind

    hw = hardware_words(proj)
    if hw is None:
        return None
    ir, info, X, truth, words = hw
    m = info.table_metrics(truth / info.value_scale, words / info.value_scale)
    err = words - truth
    worst = int(np.argmax(np.abs(err)))
    saturated = (truth == info.saturation_low) | (truth == info.saturation_high)
    staged = ir.layers[-1].kind is LayerKind.CLAMP
    return {
        "units": f"table LSB (1 LSB = one step of the {info.bits}-bit word)",
        "metrics_lsb": m,
        "entries": int(len(truth)),
        "max_abs_error_lsb": int(abs(err[worst])),
        "worst_entry": {
            "address": [int(a) for a in addresses(X[worst : worst + 1], info.shape)[0]],
            "table": int(truth[worst]),
            "hardware": int(words[worst]),
        },
        "entries_exact": int((err == 0).sum()),
        "saturated_entries": info.n_saturated,
        "saturated_exact": int((saturated & (err == 0)).sum()),
        "output_stage": f"round (RND_CONV) to the {info.bits}-bit word, clamp to [{info.saturation_low}, "
        f"{info.saturation_high}]"
        if staged
        else "none",
        "input_mapping": [m["text"] for m in input_mapping(info.shape, ir.input.type)],
        "output_mapping": f"out_data[{ir.output_t.width - 1}:0] = table word"
        if staged
        else f"out_data holds {ir.output_t}; table word = out_data * 2^{info.bits} (not in the RTL)",
        "table": info.to_dict(),
    }


def verdict(d: dict, accuracy: dict | None) -> dict[str, Any]:
    """Per measure: the smallest architecture against the table, smaller or larger and by what factor."""
    from flow.cost.figures import arch_figures

    rows = d.get("table_vs_network") or []
    archs = d.get("archs") if isinstance(d.get("archs"), dict) else {}
    figs = {a: arch_figures(e) for a, e in archs.items()}
    measures = []
    for label, key in MEASURES:
        cand = [r for r in rows if r["measure"] == key]
        if not cand and label == "BRAM":
            cand = _no_bram_rows(d, figs)
        if not cand:
            continue
        best = min(cand, key=lambda r: r["network"])
        m = {"measure": label, **{k: best[k] for k in ("arch", "network", "table", "smaller", "factor")}}
        if label == "with DSPs":
            m["dsp48e1"] = figs.get(best["arch"], {}).get("DSP48E1")
        measures.append(m)
    wins = sum(m["smaller"] == "network" for m in measures)
    logic = next((m for m in measures if m["measure"] in ("µm² as logic", "LUT-only")), None)
    best_arch = logic["arch"] if logic else (measures[0]["arch"] if measures else None)
    if not measures:
        head = "no verdict yet: no network cost (run `make sim` then `make report`)"
    elif wins == len(measures):
        head = "the network is smaller than the table on every measure"
    elif wins == 0:
        head = "the network is larger than the table on every measure"
    else:
        head = f"the network is smaller than the table on {wins} of {len(measures)} measures"
    line = f"**Verdict: {head}**"
    if measures:
        line += ": " + "; ".join(_measure_text(m) for m in measures)
    if best_arch:
        line += f". Best architecture: {best_arch}"
    if accuracy:
        w = accuracy["worst_entry"]
        line += (
            f". Worst-case error {accuracy['max_abs_error_lsb']} LSB at address {tuple(w['address'])}, "
            f"RMSE {accuracy['metrics_lsb']['rmse']:.3g} LSB"
        )
    return {"headline": head, "measures": measures, "best_arch": best_arch, "line": line + "."}


def _no_bram_rows(d: dict, figs: dict[str, dict]) -> list[dict]:
    """The BRAM comparison when the network uses none (compare_table leaves zero-against-n out)."""
    need = (d.get("table") or {}).get("bram36_aspect")
    return [
        {"arch": a, "network": 0, "table": need, "smaller": "network", "factor": None}
        for a, f in figs.items()
        if need and "LUT" in f and not (f.get("RAMB36", 0) or f.get("RAMB18", 0))
    ]


def _measure_text(m: dict) -> str:
    """One measure of the verdict line, e.g. ``LUT-only 21.2× larger (parallel)``."""
    where = m["arch"] + (f", + {m['dsp48e1']} DSP48E1" if m.get("dsp48e1") else "")
    if m["factor"] is None:
        return f"{m['measure']}: the network uses none, the table {m['table']} RAMB36 ({where})"
    if m["smaller"] == "equal":
        return f"{m['measure']} equal ({where})"
    return f"{m['measure']} {m['factor']}× {'smaller' if m['smaller'] == 'network' else 'larger'} ({where})"


def render_accuracy(acc: dict) -> list[str]:
    """The report section: hardware accuracy in table LSBs and the bit mapping."""
    m = acc["metrics_lsb"]
    w = acc["worst_entry"]
    t = acc["table"]
    L = ["## Accuracy of the hardware, in table LSBs", ""]
    L += [
        f"Over all {acc['entries']:,} table entries, from the IR that the RTL is verified equal to "
        f"(output stage: {acc['output_stage']}); units: {acc['units']}.",
        "",
        "| RMSE (LSB) | MAE (LSB) | MSE (LSB²) | max abs error (LSB) | R² | entries exact |",
        "|---|---|---|---|---|---|",
        f"| {m['rmse']:.4g} | {m['mae']:.4g} | {m['mse']:.4g} | {acc['max_abs_error_lsb']} | {m['r2']:.5f} "
        f"| {acc['entries_exact']:,} |",
        "",
        f"Worst entry: address {tuple(w['address'])}, table {w['table']}, hardware {w['hardware']}. "
        f"{acc['saturated_entries']:,} entries sit at the table's minimum or maximum "
        f"({t['saturation_low']} / {t['saturation_high']})"
        + ("; they were left out of training (`omit_saturated`)" if acc.get("saturated_left_out_of_training") else "")
        + f"; the hardware gives exactly that value for {acc['saturated_exact']:,} of them (the output stage clamps).",
        "",
        "Bit mapping (also in the Verilog header):",
        "",
    ]
    L += [f"- {line}" for line in acc["input_mapping"]] + [f"- {acc['output_mapping']}", ""]
    return L
