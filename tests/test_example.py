"""The shipped table example, end to end through the CLI by its card path: hls, verify, sim, report (verdict, units)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import flow.project
from flow.cli import main
from flow.project import Project
from flow.report import build_summary

EXAMPLE = Path(__file__).resolve().parent.parent / "qmodels" / "examples" / "calib16.yaml"


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    root = tmp_path_factory.mktemp("hls_projects")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flow.project, "PROJECTS_DIR", root)
        yield root


@pytest.fixture(scope="module")
def built(projects):
    """The example built by its card path: hls, then sim (which runs verify first), each stage naming the next."""
    card = str(EXAMPLE)
    return card, Project.of("calib16")


def test_example_by_card_path_in_every_stage(built, capsys):
    """hls, sim (runs verify once for this IR), report: the report speaks table LSBs and gives the bit mapping."""
    card, proj = built
    assert main(["hls", card]) == 0
    assert "next: make verify MODEL=calib16" in capsys.readouterr().err
    saved = proj.card.read_text()
    assert "part:" in saved and "clock_period_ns:" in saved  # defaults written out

    assert main(["sim", card, "--sim", "icarus", "-n", "300"]) == 0
    err = capsys.readouterr().err
    assert "running verify first" in err and "next: make report MODEL=calib16" in err
    assert json.loads(proj.verify_json.read_text())["passed"]
    assert main(["sim", card, "--sim", "icarus", "-n", "200"]) == 0
    assert "running verify first" not in capsys.readouterr().err  # it passed for this IR: not again
    assert main(["sim", card, "--sim", "icarus", "-n", "200"]) == 0
    assert "sim folded/icarus up to date" in capsys.readouterr().err  # the same inputs: nothing redone

    design = json.loads((proj.rtl / "folded" / "design.json").read_text())
    assert design["knobs"]["reuse_factors"] == {"fc1": 2, "fc2": 8}
    top = (proj.rtl / "folded" / f"{design['top']}.v").read_text()
    assert "address a0[3:0] -> in_data[3:0]" in top and "address a1[3:0] -> in_data[8:5]" in top
    assert "out_data[9:0] is the table word" in top

    assert main(["report", card, "--no-synth"]) == 0
    assert "next: open" in capsys.readouterr().err
    text = (proj.report / "report.md").read_text()
    assert text.splitlines()[2].startswith("**Verdict: no verdict yet")
    assert "## Accuracy of the hardware, in table LSBs" in text and "rmse (table LSB)" in text
    assert "argmax" not in text  # a regression has no argmax agreement
    assert "- folded: reuse_factors fc1=2, fc2=8" in text and "7-series" in text
    assert "left out of training (`omit_saturated`)" in text
    assert "## The baselines at equal error" in text and "every address: 0 mismatches" in text
    assert "a CSV table has no function to resample" in text and (proj.report / "table_error.png").is_file()
    rep = json.loads((proj.report / "report.json").read_text())
    acc = rep["table_accuracy"]
    csim = json.loads(proj.csim_json.read_text())["metrics"]
    assert acc["metrics_lsb"]["rmse"] == pytest.approx(csim["rmse"], abs=1e-9)  # the report's figure is the RTL's
    assert acc["max_abs_error_lsb"] == csim["max_abs_error"]
    w = acc["worst_entry"]
    assert abs(w["hardware"] - w["table"]) == acc["max_abs_error_lsb"]

    assert main(["report", card, "--no-synth", "--reuse", "fc1=1"]) == 2  # not the design that was costed
    assert "run `make sim MODEL=calib16 ARCH=folded REUSE=" in capsys.readouterr().err


@pytest.mark.slow
def test_example_report_verdict_from_synthesis(built, capsys):
    """With Yosys: the verdict line leads the report and names every measure, the best architecture and the error."""
    card, proj = built
    if not proj.rtl.is_dir():
        test_example_by_card_path_in_every_stage(built, capsys)
    assert main(["report", card, "--reuse", "fc1=2", "--reuse", "fc2=8"]) == 0
    err = capsys.readouterr().err
    assert "cached results reused" not in err
    line = (proj.report / "report.md").read_text().splitlines()[2]
    assert line.startswith("**Verdict: the network is ")
    for measure in ("LUT-only", "with DSPs", "BRAM", "µm² as logic", "µm² as macro"):
        assert measure in line
    assert "Best architecture: folded" in line and "LSB at address (" in line
    equal = (proj.report / "report.md").read_text().splitlines()[4]
    assert equal.startswith("**At equal error**") and "interpolated table" in equal and "µm² as logic: " in equal
    summary = build_summary().read_text()
    assert "- calib16: **Verdict" in summary and "LUT6, 1 RAMB36" in summary and "smallest arch" in summary


def test_ten_bit_values_over_the_width_are_one_line(tmp_path, projects, capsys):
    """A 10-bit card whose CSV holds 1500: one line naming the file, the value and dataset.bits, before training."""
    d = tmp_path / "cards"
    d.mkdir()
    shutil.copy(EXAMPLE, d / "calib16.yaml")
    rows = (EXAMPLE.parent / "calib16.csv").read_text().splitlines()
    rows[3] = rows[3].replace(rows[3].split(",")[2], "1500", 1)
    (d / "calib16.csv").write_text("\n".join(rows) + "\n")
    assert main(["hls", str(d / "calib16.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "calib16.csv: value 1500" in err[0] and "0..1023 (dataset.bits: 10" in err[0]


def test_a_card_without_bits_says_which_width_it_assumed(tmp_path, capsys):
    """No `bits`: 12 is assumed, and the line says the largest value fits 10."""
    from flow.build import Source, load_data
    from flow.card import load_card

    text = EXAMPLE.read_text().replace("  bits: 10", "  # bits: 10")
    (tmp_path / "calib16.yaml").write_text(text)
    shutil.copy(EXAMPLE.parent / "calib16.csv", tmp_path / "calib16.csv")
    ds, _ = load_data(Source("calib16", load_card(tmp_path / "calib16.yaml")))
    assert ds.table.bits == 12
    err = capsys.readouterr().err
    assert "dataset.bits not given: assumed 12-bit table words (0..4095)" in err and "set dataset.bits: 10" in err
