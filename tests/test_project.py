"""Project folders: qflow writes only folders it marked, switches generations atomically (a failure or a kill injected
at every step leaves the old project or the new one), and every stage refuses outputs of another IR."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import flow.build
import flow.linux
import flow.project
import flow.sim
from flow import scratch
from flow.build import Source, build_hls
from flow.cli import main
from flow.errors import FlowError
from flow.project import MARKER, Project, read_npz, write_marker
from tb.irgen import mlp_ir

OLD_IR, NEW_IR = mlp_ir("m", [3, 4, 2], seed=1), mlp_ir("m", [3, 4, 2], seed=2)


def tree(root: Path) -> dict[str, object]:
    """Every entry under ``root`` with its content (files), its target (links) or None (folders)."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            out[rel] = ("link", os.readlink(p)) if p.is_symlink() else (None if p.is_dir() else p.read_bytes())
    return out


def make_old_project(projects: Path, ir=OLD_IR) -> Project:
    """A marked project with every stage's outputs, a search study and a file of the user's."""
    proj = Project("m", projects / "m")
    proj.root.mkdir(parents=True)
    write_marker(proj.root, "m", ir_sha256=ir.digest())
    ir.save(proj.ir_json)
    for name in ("model.h5", "train.json", "csim.json", "data.npz", "card.yaml", "verify.json", "vectors.npz"):
        (proj.root / name).write_text(f"old {name}")
    for sub in ("hls/firmware", "rtl/folded", "sim/folded", "report", "search"):
        (proj.root / sub).mkdir(parents=True)
        (proj.root / sub / "f.txt").write_text(f"old {sub}")
    (proj.root / "sim.json").write_text("{}")
    (proj.root / "notes.txt").write_text("the user's notes")
    return proj


def fake_build(ir):
    """A stand-in for the stage's work (no training): the new generation's hls outputs, written into the stage."""

    def build(source, project, final, *, synth, retrain):
        (project.root / "model.h5").write_text("new model.h5")
        (project.root / "train.json").write_text("new train.json")
        for name in ("csim.json", "data.npz", "test_outputs.npz"):
            (project.root / name).write_text(f"new {name}")
        (project.hls / "firmware").mkdir(parents=True)
        (project.hls / "firmware" / "f.txt").write_text("new hls")
        ir.save(project.ir_json)
        return {
            "task": "regression",
            "metrics": {"rmse": 1.0},
            "qkeras_metrics": {"rmse": 1.0},
            "qkeras_vs_csim": {},
            "hls_project": str(final.hls),
            "compile_seconds": 0,
            "synthesis": {"status": "not requested"},
        }

    return build


SOURCE = Source(name="m", keras_path=Path("/nonexistent/m.h5"), data_path=Path("/nonexistent/m.npz"))

# Every call that changes the file system during `flow hls`; a fault is injected before each one in turn.
FS_CALLS = [
    (os, "mkdir"),
    (os, "link"),
    (os, "symlink"),
    (os, "rename"),
    (os, "replace"),
    (os, "unlink"),
    (os, "rmdir"),
    (shutil, "copy2"),
    (shutil, "copyfile"),
    (flow.linux, "renameat2"),
]


class Fault(OSError):
    """An injected failure of one file-system call (disk full, permission, ...)."""


def run_with_fault(monkeypatch, projects: Path, at: int, fault) -> int:
    """Run build_hls with ``fault()`` called before file-system call number ``at``; returns the calls made."""
    count = [0]

    def wrap(fn):
        def step(*args, **kwargs):
            count[0] += 1
            if count[0] - 1 == at:
                fault()
            return fn(*args, **kwargs)

        return step

    for mod, name in FS_CALLS:
        monkeypatch.setattr(mod, name, wrap(getattr(mod, name)))
    build_hls(SOURCE, projects_dir=projects)
    return count[0]


@pytest.fixture(autouse=True)
def _no_inputs_digest(monkeypatch):
    """SOURCE names no real files: its inputs digest is a constant (tests of the warm check set their own)."""
    monkeypatch.setattr(flow.build, "_inputs_digest", lambda source, synth: "0" * 64)


@pytest.fixture
def env(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(flow.build, "_build", fake_build(NEW_IR))
    return tmp_path / "hls_projects"


def states(projects: Path, ir) -> tuple[dict, dict]:
    """The old project and the new one build_hls makes of it (built once without faults)."""
    ref = projects.parent / "reference"
    old = tree(make_old_project(ref, ir).root)
    mp = pytest.MonkeyPatch()
    mp.setattr(flow.build, "_build", fake_build(NEW_IR))
    try:
        build_hls(SOURCE, projects_dir=ref)
    finally:
        mp.undo()
    new = tree(ref / "m")
    shutil.rmtree(ref)
    return old, new


@pytest.mark.parametrize("same_ir", [False, True])
def test_a_new_generation_keeps_what_it_should(env, same_ir):
    old, new = states(env, NEW_IR if same_ir else OLD_IR)
    assert new["model.h5"] == b"new model.h5" and "card.yaml" not in new  # a --keras build has no card copy
    assert new["notes.txt"] == b"the user's notes" and new["search/f.txt"] == b"old search"
    downstream = {"verify.json", "vectors.npz", "rtl", "sim", "sim.json", "report"}
    assert (downstream <= set(new)) is same_ir  # outputs of the old IR never appear with the new one
    assert json.loads(new[MARKER])["ir_sha256"] == NEW_IR.digest()


@pytest.mark.parametrize("same_ir", [False, True])
def test_a_failure_at_every_step_leaves_the_old_project(env, monkeypatch, same_ir):
    """A failing call before the switch: the old project, nothing beside it. One after it (removing the old
    generation): the new project; what could not be removed is left for the next build."""
    old, new = states(env, NEW_IR if same_ir else OLD_IR)
    n_calls, at, outcomes = None, 0, set()
    while n_calls is None or at < n_calls:
        root = make_old_project(env, NEW_IR if same_ir else OLD_IR).root
        with monkeypatch.context() as mp:

            def fault(at=at):
                raise Fault(f"injected at step {at}")

            try:
                n_calls = run_with_fault(mp, env, at, fault)
                failed = False
            except OSError:  # the injected Fault, or shutil.Error collecting it
                failed = True
        got = tree(root)
        assert got == (old if failed else new), f"step {at}"
        outcomes.add(failed)
        if failed:
            assert [p.name for p in env.iterdir()] == ["m"], f"step {at}"
        shutil.rmtree(env)
        at += 1
    assert outcomes == {True, False} and n_calls > 10


@pytest.mark.parametrize("same_ir", [False, True])
def test_a_kill_at_every_step_leaves_the_old_or_the_new_project(env, monkeypatch, same_ir):
    """The build runs in a forked child that dies (os._exit: no cleanup code runs) before call number ``at``."""
    old, new = states(env, NEW_IR if same_ir else OLD_IR)
    seen = set()
    at = 0
    while True:
        root = make_old_project(env, NEW_IR if same_ir else OLD_IR).root
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            try:
                with monkeypatch.context() as mp:
                    run_with_fault(mp, env, at, lambda: os._exit(9))
                os._exit(0)
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        assert code in (0, 9), f"step {at}: child exit {code}"
        got = tree(root)
        assert got in (old, new), f"killed before step {at}: a mixed project"
        seen.add("new" if got == new else "old")
        # The next build of the project removes what the killed one left beside it.
        scratch.remove_dead(env, ".m.")
        assert [p.name for p in env.iterdir()] == ["m"], f"step {at}"
        shutil.rmtree(env)
        if code == 0:  # the run finished before reaching call ``at``: every step has been cut
            break
        at += 1
    assert seen == {"old", "new"} and at > 10


# ---------------------------------------------------------------------------------------------- markers


def _user_things(projects: Path) -> dict[str, Path]:
    projects.mkdir(parents=True, exist_ok=True)
    outside = projects.parent / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    (projects / "afile").write_text("a file of the user's")
    (projects / "afolder").mkdir()
    (projects / "afolder" / "data.npz").write_text("the user's")
    (projects / "alink").symlink_to(outside, target_is_directory=True)
    old = projects / "oldqflow"
    old.mkdir()
    (old / "ir.json").write_text("{}")
    (old / "train.json").write_text("{}")
    return {"afile": projects / "afile", "afolder": projects / "afolder", "alink": outside, "oldqflow": old}


@pytest.mark.parametrize(
    "name,message",
    [
        ("afile", "is a file, not a project folder"),
        ("afolder", "a folder qflow did not write (no .qflow-project)"),
        ("alink", "is a symbolic link"),
        ("oldqflow", "has no .qflow-project (written by a qflow without project markers"),
    ],
)
def test_hls_refuses_a_name_qflow_did_not_write_before_any_work(tmp_path, monkeypatch, capsys, name, message):
    projects = tmp_path / "hls_projects"
    things = _user_things(projects)
    before = {k: tree(v) if v.is_dir() else v.read_bytes() for k, v in things.items()}
    monkeypatch.setattr(flow.project, "PROJECTS_DIR", projects)

    def no_work(*a, **k):
        raise AssertionError("work started")

    monkeypatch.setattr(flow.build, "load_data", no_work)
    h5, npz = tmp_path / "m.h5", tmp_path / "m.npz"
    h5.write_text("x")
    npz.write_text("x")
    assert main(["hls", "--keras", str(h5), "--data", str(npz), "--name", name]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and f"hls_projects/{name}" in err, err
    if name == "oldqflow":
        assert f"rm -r {projects / name}" in err
    assert {k: tree(v) if v.is_dir() else v.read_bytes() for k, v in things.items()} == before
    for stage in ("verify", "sim", "report"):
        assert main([stage, name]) == 2
        assert message in capsys.readouterr().err
    assert {k: tree(v) if v.is_dir() else v.read_bytes() for k, v in things.items()} == before


def test_report_all_skips_folders_qflow_did_not_write(tmp_path, monkeypatch):
    projects = tmp_path / "hls_projects"
    _user_things(projects)
    monkeypatch.setattr(flow.project, "PROJECTS_DIR", projects)
    assert main(["-q", "report", "--all", "--no-synth"]) == 0
    assert not (projects / "oldqflow" / "report").exists()


def test_create_marks_a_new_project_and_refuses_a_user_folder(tmp_path):
    Project("p", tmp_path / "p").create()
    assert json.loads((tmp_path / "p" / MARKER).read_text())["written_by"] == "qflow"
    Project("p", tmp_path / "p").create()  # already ours: nothing to do
    (tmp_path / "u").mkdir()
    with pytest.raises(FlowError, match="did not write"):
        Project("u", tmp_path / "u").create()
    assert list((tmp_path / "u").iterdir()) == []


def test_hint_names_the_command_that_built_the_project(tmp_path):
    proj = Project("m", tmp_path / "m")
    assert "flow hls --keras MODEL.h5 --data DATA.npz --name m" in proj.hls_command()
    proj.root.mkdir()
    write_marker(proj.root, "m", hls_command="flow hls --keras /a/m.h5 --data /a/d.npz --name m")
    with pytest.raises(FlowError, match=r"run `flow hls --keras /a/m.h5 --data /a/d.npz --name m` first"):
        proj.require(proj.ir_json, "hls")
    assert SOURCE.hls_command == "flow hls --keras /nonexistent/m.h5 --data /nonexistent/m.npz --name m"


def test_atomic_dir_swaps_in_one_step(tmp_path, monkeypatch):
    final = tmp_path / "report"
    final.mkdir()
    (final / "a").write_text("old")
    with flow.project.atomic_dir(final) as tmp:
        (tmp / "a").write_text("new")
        assert (final / "a").read_text() == "old"
    assert (final / "a").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["report"]


def test_scratch_folders_of_dead_processes_are_removed(tmp_path):
    dead, alive = tmp_path / f".m.{2**22 + 12345}-abc.staging", scratch.make(tmp_path, ".m.", ".staging")
    dead.mkdir()
    (tmp_path / ".m.notapid.staging").mkdir()
    link = tmp_path / f".m.{2**22 + 12346}-x.staging"
    link.symlink_to(tmp_path / "elsewhere")
    assert scratch.remove_dead(tmp_path, ".m.") == [dead]
    assert alive.exists() and link.is_symlink() and (tmp_path / ".m.notapid.staging").exists()


# ---------------------------------------------------------------------------------------------- npz headers


def test_npz_whose_header_declares_a_huge_shape_is_one_line(tmp_path):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    buf.write(b"\0" * 64)
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("X_train.npy", buf.getvalue())
    with pytest.raises(FlowError) as exc:
        read_npz(path)
    assert "huge.npz: X_train declares shape (1000000, 1000000) of float64" in str(exc.value)
    np.savez_compressed(tmp_path / "ok.npz", a=np.arange(5))
    assert read_npz(tmp_path / "ok.npz")["a"].tolist() == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------- IR lineage


@pytest.fixture
def marked(tmp_path, monkeypatch):
    """A marked project with ir.json and a passing verify.json and vectors.npz of that IR."""
    projects = tmp_path / "hls_projects"
    monkeypatch.setattr(flow.project, "PROJECTS_DIR", projects)
    proj = Project("m", projects / "m")
    proj.root.mkdir(parents=True)
    write_marker(proj.root, "m", ir_sha256=OLD_IR.digest())
    OLD_IR.save(proj.ir_json)
    flow.project.write_json(proj.verify_json, {"ir_sha256": OLD_IR.digest(), "passed": True, "mismatches": 0})
    flow.project.write_npz(proj.vectors, inputs=np.zeros((1, 3)), outputs=np.zeros((1, 2)))
    return proj


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    "verify,message",
    [
        ({"ir_sha256": NEW_IR.digest(), "passed": True}, "verify.json: came from another IR"),
        ({"passed": True}, "verify.json: records no IR digest (written by an earlier qflow)"),
        ({"ir_sha256": OLD_IR.digest(), "passed": False, "mismatches": 3}, "verify failed for this IR (3 mismatches)"),
    ],
)
def test_sim_refuses_a_verify_of_another_ir_or_a_failed_one(marked, capsys, verify, message):
    """The stage refuses; `flow sim` re-runs verify first for another IR's, and refuses a failed one in one line."""
    flow.project.write_json(marked.verify_json, verify)
    with pytest.raises(FlowError) as exc:
        flow.sim.run_stage("m", "icarus", "parallel")
    assert message in str(exc.value) and "make verify MODEL=m" in str(exc.value)
    if verify.get("ir_sha256") == OLD_IR.digest():
        assert main(["sim", "m"]) == 2
        err = _one_line(capsys)
        assert message in err and "make verify MODEL=m" in err
    assert not marked.rtl.exists()  # refused before generating anything


def test_sim_refuses_vectors_of_another_ir(marked, capsys):
    flow.project.write_npz(
        marked.vectors, inputs=np.zeros((1, 3)), outputs=np.zeros((1, 2)), ir_sha256=np.array(NEW_IR.digest())
    )
    assert main(["sim", "m"]) == 2
    err = _one_line(capsys)
    assert "vectors.npz: came from another IR" in err and "make verify MODEL=m" in err
    assert not marked.rtl.exists()


def test_report_refuses_outputs_of_another_ir(marked, capsys):
    from flow.report import check_lineage

    sim = {"folded/verilator": {"ir_sha256": OLD_IR.digest()}}
    assert check_lineage(marked, flow.project.read_json(marked.verify_json), sim) == OLD_IR.digest()
    flow.project.write_json(marked.root / "sim.json", {"folded/verilator": {"ir_sha256": NEW_IR.digest()}})
    assert main(["report", "m", "--no-synth"]) == 2
    err = _one_line(capsys)
    assert "sim.json (folded/verilator): came from another IR" in err
    assert "make sim MODEL=m ARCH=folded SIM=verilator" in err
    (marked.root / "sim.json").unlink()
    (marked.rtl / "parallel").mkdir(parents=True)
    flow.project.write_json(marked.rtl / "parallel" / "design.json", {"ir_sha256": NEW_IR.digest()})
    assert main(["report", "m", "--no-synth"]) == 2
    assert "rtl/parallel/design.json: came from another IR" in _one_line(capsys)
    flow.project.write_json(marked.verify_json, {"ir_sha256": NEW_IR.digest()})
    assert main(["report", "m", "--no-synth"]) == 2
    assert "verify.json: came from another IR" in _one_line(capsys)
    assert not marked.report.exists()


def test_every_stage_refuses_an_ir_json_the_build_did_not_write(marked, capsys):
    NEW_IR.save(marked.ir_json)  # e.g. copied in from another project
    for stage in (["verify", "m"], ["sim", "m"], ["report", "m", "--no-synth"]):
        assert main(stage) == 2
        err = _one_line(capsys)
        assert "ir.json: not the IR this project's build wrote" in err, stage


# ---------------------------------------------------------------------------------------------- warm builds


@pytest.fixture
def counted(tmp_path, monkeypatch):
    """build_hls with a fake stage that counts its runs, and an inputs digest the test sets."""
    calls, digest = [0], {"value": "1" * 64}
    real = fake_build(NEW_IR)

    def build(source, project, final, **kwargs):
        calls[0] += 1
        csim = real(source, project, final, **kwargs)
        flow.project.write_json(project.csim_json, csim)  # the warm check prints its summary from it
        return csim

    monkeypatch.setattr(flow.build, "_build", build)
    monkeypatch.setattr(flow.build, "_inputs_digest", lambda source, synth: digest["value"])
    projects = tmp_path / "hls_projects"
    build_hls(SOURCE, projects_dir=projects)
    assert calls == [1]
    return projects, calls, digest


def test_a_warm_build_with_the_same_inputs_only_checks(counted, capsys):
    projects, calls, _ = counted
    before = tree(projects / "m")
    build_hls(SOURCE, projects_dir=projects)
    assert calls == [1] and tree(projects / "m") == before
    assert "up to date" in capsys.readouterr().err


@pytest.mark.parametrize("change", ["inputs", "missing output", "foreign ir", "force"])
def test_a_warm_build_rebuilds_when_anything_differs(counted, change):
    projects, calls, digest = counted
    if change == "inputs":
        digest["value"] = "2" * 64
    elif change == "missing output":
        (projects / "m" / "csim.json").unlink()
    elif change == "foreign ir":
        OLD_IR.save(projects / "m" / "ir.json")
    build_hls(SOURCE, projects_dir=projects, force=change == "force")
    assert calls == [2]


def test_the_inputs_digest_moves_with_every_input(monkeypatch):
    from flow import warm

    base = warm.hls_digest({"card": "a"}, "data", synth=False)
    assert base == warm.hls_digest({"card": "a"}, "data", synth=False)
    others = {
        warm.hls_digest({"card": "b"}, "data", synth=False),
        warm.hls_digest({"card": "a"}, "other data", synth=False),
        warm.hls_digest({"card": "a"}, "data", synth=True),
    }
    monkeypatch.setattr(warm, "tool_versions", lambda: {"hls4ml": "9.9"})
    others.add(warm.hls_digest({"card": "a"}, "data", synth=False))
    monkeypatch.setattr(warm, "code_digest", lambda: "edited")
    others.add(warm.hls_digest({"card": "a"}, "data", synth=False))
    assert base not in others and len(others) == 5


@pytest.fixture
def fake_sim(marked, monkeypatch) -> list[dict]:
    """``flow.sim.simulate`` replaced by a pass that records each design's knobs (the list returned)."""
    calls: list[dict] = []

    def fake_simulate(design, vectors, sim, work, seed=1, **_):
        calls.append(design.knobs)
        junit = work / "results.xml"
        junit.write_text("<testsuites/>")
        return flow.sim.SimResult(sim, "v", design.arch, 1, 0, 3, 1, 0.1, 0.1, 10.0, True, str(junit), "")

    monkeypatch.setattr(flow.sim, "simulate", fake_simulate)
    x = np.zeros((1, 3), dtype=np.int64)
    flow.project.write_npz(marked.vectors, inputs=x, outputs=np.zeros((1, 2)), ir_sha256=np.array(OLD_IR.digest()))
    return calls


def test_a_warm_sim_with_the_same_inputs_only_checks(marked, fake_sim, capsys):
    calls = fake_sim
    first = flow.sim.run_stage("m", "icarus", "folded", n=1)
    again = flow.sim.run_stage("m", "icarus", "folded", n=1)
    assert len(calls) == 1 and again == first and "sim folded/icarus up to date" in capsys.readouterr().err
    flow.sim.run_stage("m", "icarus", "folded", n=1, force=True)
    flow.sim.run_stage("m", "icarus", "folded", n=1, seed=2)  # another input
    assert len(calls) == 3
    flow.sim.run_stage("m", "icarus", "folded", n=1, reuse={"fc1": 1})  # rtl/folded generated again, other knobs
    flow.sim.run_stage("m", "icarus", "folded", n=1, seed=2)  # its entry names the design that is gone
    assert len(calls) == 5


def test_sim_knobs_come_from_the_card_copy_and_the_command_line(marked, fake_sim):
    """hardware.knobs.<arch> of the project's card reaches the design; --knob wins; both enter the warm digest."""
    calls = fake_sim
    marked.card.write_text("hardware:\n  knobs:\n    shiftadd: {adder_depth_cut: 1, solver: csd}\n")
    flow.sim.run_stage("m", "icarus", "shiftadd", n=1)
    assert calls[-1]["adder_depth_cut"] == 1 and calls[-1]["solver"] == "csd"
    flow.sim.run_stage("m", "icarus", "shiftadd", n=1, knob_args={"adder_depth_cut": "2"})
    assert len(calls) == 2 and calls[-1]["adder_depth_cut"] == 2
    marked.card.write_text("hardware:\n  knobs:\n    shiftadd: {solver: quick}\n")
    with pytest.raises(FlowError, match=r"card.yaml: hardware.knobs.shiftadd: solver must be one of"):
        flow.sim.run_stage("m", "icarus", "shiftadd", n=1)
    assert main(["sim", "m", "--arch", "shiftadd", "--knob", "conv_ii=0"]) == 2
    assert main(["sim", "m", "--arch", "shiftadd", "--knob", "conv_ii"]) == 2
