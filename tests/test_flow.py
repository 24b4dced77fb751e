"""End to end through the CLI on small cards: hls, reuse, verify, a user's .h5, and failures that keep old output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import flow.project
from flow.cli import main
from flow.errors import FlowError
from flow.ir import IR, ReluLayer
from flow.project import Project

CARDS = Path(__file__).parent / "cards"


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """Every test of this module writes its projects into one temporary hls_projects/."""
    root = tmp_path_factory.mktemp("hls_projects")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flow.project, "PROJECTS_DIR", root)
        yield root


@pytest.fixture(scope="module")
def tiny_lut(projects):
    """tiny_lut built once: trained, converted, C-simulated."""
    assert main(["-q", "hls", str(CARDS / "tiny_lut.yaml")]) == 0
    return Project.of("tiny_lut")


def test_hls_writes_the_project(tiny_lut):
    for path in (tiny_lut.keras, tiny_lut.train_json, tiny_lut.csim_json, tiny_lut.ir_json, tiny_lut.data):
        assert path.exists(), path
    assert (tiny_lut.hls / "build_prj.tcl").exists()
    assert (tiny_lut.hls / "firmware" / "myproject.cpp").exists()
    assert (tiny_lut.hls / "tb_data" / "tb_input_features.dat").exists()
    train = json.loads(tiny_lut.train_json.read_text())
    csim = json.loads(tiny_lut.csim_json.read_text())
    assert {"float", "qkeras", "fingerprint"} <= set(train)
    assert {"rmse", "mse", "mae", "r2"} <= set(csim["metrics"])
    # QKeras' float emulation is information, not an oracle: it is reported, not asserted equal.
    assert "max_abs_diff" in csim["qkeras_vs_csim"]
    assert not list(tiny_lut.root.glob(".*tmp*"))


def test_second_run_with_nothing_changed_only_checks(tiny_lut, capsys):
    before = {p: p.stat().st_mtime_ns for p in (tiny_lut.keras, tiny_lut.ir_json, tiny_lut.csim_json)}
    assert main(["hls", str(CARDS / "tiny_lut.yaml")]) == 0
    out = capsys.readouterr()
    assert "up to date" in out.err and "C-sim" in out.out  # the summary, from csim.json
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_forced_run_reuses_the_trained_model(tiny_lut, capsys):
    before = tiny_lut.keras.stat().st_mtime_ns
    assert main(["hls", str(CARDS / "tiny_lut.yaml"), "--force"]) == 0
    assert "reusing the trained model" in capsys.readouterr().err
    assert tiny_lut.keras.stat().st_mtime_ns == before


def test_verify_is_bit_exact(tiny_lut):
    assert main(["-q", "verify", "tiny_lut", "-n", "3000"]) == 0
    summary = json.loads(tiny_lut.verify_json.read_text())
    assert summary["mismatches"] == 0 and summary["passed"]
    assert summary["random_vectors"] == 3000 and summary["vectors_checked"] == 3000 + summary["test_vectors"]
    with np.load(tiny_lut.vectors) as v:
        assert v["inputs"].shape[0] == v["outputs"].shape[0] == summary["vectors_checked"]
        assert {"test", "random", "corner"} <= set(v["kind"].tolist())


def test_verify_with_nothing_changed_only_checks(tiny_lut, capsys):
    assert main(["-q", "verify", "tiny_lut", "-n", "3000"]) == 0  # as the test before
    before = {p: p.stat().st_mtime_ns for p in (tiny_lut.verify_json, tiny_lut.vectors)}
    capsys.readouterr()
    assert main(["verify", "tiny_lut", "-n", "3000"]) == 0
    out = capsys.readouterr()
    assert "verify up to date" in out.err and "PASS  tiny_lut" in out.out
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert main(["-q", "verify", "tiny_lut", "-n", "3000", "--force"]) == 0
    assert tiny_lut.verify_json.stat().st_mtime_ns != before[tiny_lut.verify_json]


def test_verify_catches_a_wrong_rounding_mode(tiny_lut):
    """The checker must fail when the reference is wrong: ReLU rounding RND_CONV replaced by TRN."""
    from dataclasses import replace

    from flow.fixed import Rounding
    from flow.verify import _csim_trace, _hls_model_for, compare, random_vectors

    ir = IR.load(tiny_lut.ir_json)
    _, hls_model, _ = _hls_model_for(tiny_lut, ir)
    x_raw, _ = random_vectors(ir, 2000, seed=1)
    csim = _csim_trace(hls_model, ir, ir.input.type.to_float(x_raw))
    assert compare(ir, x_raw, csim).passed
    relu = next(i for i, layer in enumerate(ir.layers) if isinstance(layer, ReluLayer))
    assert ir.layers[relu].result_t.rounding is Rounding.RND_CONV
    wrong_layers = list(ir.layers)
    wrong_layers[relu] = replace(ir.layers[relu], result_t=replace(ir.layers[relu].result_t, rounding=Rounding.TRN))
    result = compare(replace(ir, nodes=wrong_layers), x_raw, csim)
    assert not result.passed
    assert result.first is not None and result.first.layer == ir.layers[relu].name


def test_failed_run_keeps_the_previous_output(tiny_lut, monkeypatch, capsys):
    import flow.build

    firmware = tiny_lut.hls / "firmware" / "myproject.cpp"
    before = firmware.stat().st_mtime_ns

    def broken(_):
        raise FlowError("C simulation did not build (injected)")

    monkeypatch.setattr(flow.build, "write_and_compile", broken)
    assert main(["hls", str(CARDS / "tiny_lut.yaml"), "--force"]) == 2
    assert "injected" in capsys.readouterr().err
    assert firmware.stat().st_mtime_ns == before
    assert not list(tiny_lut.root.glob(".*tmp*"))


def test_failed_rebuild_of_a_changed_card_leaves_the_project_whole(tiny_lut, tmp_path, monkeypatch, capsys):
    """A new model that fails in conversion must not replace model.h5/train.json/card.yaml next to the old hls/."""
    import flow.build

    changed = tmp_path / "tiny_lut.yaml"
    changed.write_text((CARDS / "tiny_lut.yaml").read_text().replace("seed: 3", "seed: 4"))
    before = {f: (tiny_lut.root / f).read_bytes() for f in ("model.h5", "train.json", "card.yaml", "ir.json")}

    def broken(_):
        raise FlowError("C simulation did not build (injected)")

    monkeypatch.setattr(flow.build, "write_and_compile", broken)
    assert main(["-q", "hls", str(changed)]) == 2
    assert "injected" in capsys.readouterr().err
    assert {f: (tiny_lut.root / f).read_bytes() for f in before} == before
    assert not list(tiny_lut.root.parent.glob(".tiny_lut.*"))  # no staging folder left behind


def test_project_name_cannot_be_a_path(tiny_lut, tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("the user's")
    for name in (str(tmp_path), "../escape", ".hidden"):
        code = main(["hls", "--keras", str(tiny_lut.keras), "--data", str(tmp_path / "mine.txt"), "--name", name])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "is not allowed" in err and len(err.splitlines()) == 1
    assert (tmp_path / "mine.txt").read_text() == "the user's" and sorted(tmp_path.iterdir()) == [tmp_path / "mine.txt"]
    assert main(["sim", "../escape"]) == 2


def test_user_keras_model_and_npz(tiny_lut, tmp_path, projects):
    """A saved QKeras model (quantized_bits + quantized_relu) and a user's .npz convert and verify."""
    from flow.data import load_dataset

    ds = load_dataset({"kind": "table", "table": "charge", "shape": [32, 32]}, seed=0)
    npz = tmp_path / "user_data.npz"
    np.savez(npz, X_train=ds.X_train, y_train=ds.y_train, X_test=ds.X_test, y_test=ds.y_test)
    h5 = tmp_path / "user_model.h5"
    h5.write_bytes(tiny_lut.keras.read_bytes())
    assert main(["-q", "hls", "--keras", str(h5), "--data", str(npz)]) == 0
    assert main(["-q", "verify", "user_model", "-n", "1000"]) == 0
    assert json.loads((projects / "user_model" / "verify.json").read_text())["mismatches"] == 0


def test_missing_data_file_is_one_line(tmp_path, capsys, tiny_lut):
    code = main(["hls", "--keras", str(tiny_lut.keras), "--data", str(tmp_path / "nope.npz")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "nope.npz: data file not found" in err and len(err.splitlines()) == 1


def test_verify_without_project_names_the_target(projects, capsys):
    assert main(["verify", "never_built"]) == 2
    assert "make hls MODEL=never_built" in capsys.readouterr().err


def test_diag_sized_model_resource_strategy(projects):
    """1023 inputs, Resource strategy (hls4ml stores transposed weights): the IR must still be exact."""
    assert main(["-q", "hls", str(CARDS / "tiny_diag.yaml")]) == 0
    assert main(["-q", "verify", "tiny_diag", "-n", "500"]) == 0
    ir = IR.load(Project.of("tiny_diag").ir_json)
    assert ir.input.n == 1023 and ir.layers[0].n_out == 40


def test_training_is_reproducible_from_the_seed(tmp_path):
    """Two trainings of one card with one seed give identical weights (initialisation included)."""
    from flow.build import Source, load_data
    from flow.model import load_keras
    from flow.train import train

    source = Source.from_card(str(CARDS / "tiny_lut.yaml"))
    ds, fingerprint = load_data(source)
    weights = []
    for run in ("a", "b"):
        project = Project.of("tiny_lut", tmp_path / run)
        train(source.card, ds, project, fingerprint, force=True)
        weights.append(load_keras(project.keras).get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


def test_cli_counts_must_be_positive(capsys):
    for argv in (["report", "x", "-j", "-1"], ["sim", "x", "-n", "0"], ["verify", "x", "--seed", "-1"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and "is not allowed; expected an integer >=" in capsys.readouterr().err


def test_unexpected_error_is_one_line_unless_debug(monkeypatch, capsys):
    import flow.cli.cards

    def boom(args):
        raise ValueError("something\nunforeseen")

    monkeypatch.setattr(flow.cli.cards, "run", boom)
    assert main(["cards"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: ValueError: something unforeseen (run with --debug for the traceback)"
    assert main(["--debug", "cards"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_project_card_copy_names_a_relative_table_file_absolutely(tmp_path):
    from flow.build import _card_copy
    from flow.card import load_card

    grid = "\n".join(",".join(str((i * 7 + j * 3) % 50) for j in range(8)) for i in range(8)) + "\n"
    (tmp_path / "grid.csv").write_text(grid)
    text = (CARDS / "tiny_lut.yaml").read_text().replace("table: charge\n  shape: [32, 32]", "path: grid.csv")
    (tmp_path / "tiny_csv.yaml").write_text(text.replace("name: tiny_lut", "name: tiny_csv"))
    copy = _card_copy(load_card(tmp_path / "tiny_csv.yaml"))
    assert copy["dataset"]["path"] == str((tmp_path / "grid.csv").resolve())


def test_broken_generated_files_are_one_line(tmp_path):
    from flow.project import read_npz

    (tmp_path / "v.npz").write_bytes(b"not a zip")
    with pytest.raises(FlowError, match="v.npz: not a readable .npz file"):
        read_npz(tmp_path / "v.npz")
    np.savez(tmp_path / "w.npz", inputs=np.zeros(3))
    with pytest.raises(FlowError, match="w.npz: missing outputs"):
        read_npz(tmp_path / "w.npz", ("inputs", "outputs"))
    (tmp_path / "ir.json").write_text('{"version": 1, "layers": [')
    with pytest.raises(FlowError, match="ir.json: not valid JSON"):
        IR.load(tmp_path / "ir.json")


def test_card_task_that_disagrees_with_its_data_is_one_line(projects, tmp_path, capsys):
    text = (CARDS / "tiny_lut.yaml").read_text().replace("task: regression", "task: classification")
    (tmp_path / "tiny_lut_task.yaml").write_text(text.replace("name: tiny_lut", "name: tiny_lut_task"))
    assert main(["-q", "hls", str(tmp_path / "tiny_lut_task.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "tiny_lut_task.yaml: task: 'classification' disagrees with the dataset, which is regression" in err
    assert len(err.splitlines()) == 1 and not (projects / "tiny_lut_task").exists()


def test_conflicting_or_empty_arguments_are_one_line(tiny_lut, tmp_path, capsys):
    cases = [
        ["hls", str(CARDS / "tiny_lut.yaml"), "--keras", str(tiny_lut.keras), "--data", "d.npz"],
        ["verify", "tiny_lut", "--name", "other"],
        ["hls", "--keras", str(tiny_lut.keras), "--data", str(tiny_lut.data), "--name", ""],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and len(err.splitlines()) == 1, err


def test_projects_folder_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(FlowError, match="QFLOW_PROJECTS"):
        Project.of("m", tmp_path / "file")


@pytest.mark.parametrize("text", ["{}", "[1, 2]", '{"version": 1}'])
def test_ir_json_of_the_wrong_shape(tmp_path, text):
    (tmp_path / "ir.json").write_text(text)
    with pytest.raises(FlowError, match="ir.json: "):
        IR.load(tmp_path / "ir.json")


def test_folded_reuse_factor_is_checked_before_training(projects, tmp_path, capsys):
    text = (CARDS / "tiny_lut.yaml").read_text().replace("units: 8\n", "units: 8\n    reuse_factor: 1000000\n", 1)
    text = text.replace("seed: 3", "seed: 3\nhardware:\n  arch: folded")
    (tmp_path / "tiny_rf.yaml").write_text(text.replace("name: tiny_lut", "name: tiny_rf"))
    assert main(["-q", "hls", str(tmp_path / "tiny_rf.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "tiny_rf.yaml: layers[0].reuse_factor: layer fc1: reuse factor 1000000 > n_in = 2" in err
    assert len(err.splitlines()) == 1 and not (projects / "tiny_rf").exists()


def test_failed_verify_leaves_no_vectors_and_sim_refuses(tiny_lut, monkeypatch, capsys):
    """A known-wrong comparison: verify fails, writes no vectors.npz, and sim will not test RTL against it."""
    import flow.verify

    real = flow.verify.compare

    def one_mismatch(*args, **kwargs):
        result = real(*args, **kwargs)
        result.mismatches += 1
        return result

    monkeypatch.setattr(flow.verify, "compare", one_mismatch)
    assert main(["-q", "verify", "tiny_lut", "-n", "100"]) == 1
    assert not tiny_lut.vectors.exists()
    summary = json.loads(tiny_lut.verify_json.read_text())
    assert summary["passed"] is False and summary["ir_sha256"] == IR.load(tiny_lut.ir_json).digest()
    capsys.readouterr()
    assert main(["sim", "tiny_lut"]) == 2
    err = capsys.readouterr().err.strip()
    assert "verify failed for this IR" in err and "make verify MODEL=tiny_lut" in err and len(err.splitlines()) == 1
    monkeypatch.undo()
    assert main(["-q", "verify", "tiny_lut", "-n", "100"]) == 0 and tiny_lut.vectors.exists()
    with np.load(tiny_lut.vectors) as v:
        assert str(v["ir_sha256"]) == summary["ir_sha256"]
