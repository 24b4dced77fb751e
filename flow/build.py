"""The `flow hls` stage: dataset, training (or reuse), hls4ml project, C simulation, IR."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flow import scratch, warm
from flow.card import QMODELS_DIR, Card, Hardware, card_to_yaml, load_card
from flow.convert import HlsSettings, convert, predict, synthesize, write_and_compile
from flow.data import Dataset, dataset_fingerprint, load_dataset
from flow.data.tables import assumed_bits_note
from flow.errors import FlowError
from flow.ir_extract import extract_ir
from flow.log import info
from flow.metrics import agreement, primary_metric, score
from flow.project import (
    MARKER,
    Project,
    atomic_dir,
    check_name,
    publish_dir,
    read_json,
    read_npz,
    write_json,
    write_marker,
    write_npz,
)

TB_VECTORS = 1000  # test-bench vectors written into the hls4ml project (C/RTL co-simulation time grows with it)


@dataclass(frozen=True)
class Source:
    """Where a model comes from: a card (trained here) or a user's saved QKeras model and data."""

    name: str
    card: Card | None = None
    keras_path: Path | None = None
    data_path: Path | None = None
    input_bits: tuple[int, int] | None = None  # --input-bits for a --keras model without an input quantizer
    built_by: str | None = None  # the command that builds it, when not its own card's (an ensemble's member)

    @classmethod
    def from_card(cls, name_or_path: str) -> Source:
        card = load_card(name_or_path)
        return cls(name=card.name, card=card)

    @classmethod
    def from_keras(
        cls, keras_path: str, data_path: str | None, name: str | None = None, input_bits: tuple[int, int] | None = None
    ) -> Source:
        kp = Path(keras_path)
        if not kp.exists():
            raise FlowError(f"{kp}: model file not found (expected a saved QKeras .h5 model)")
        if not data_path:
            raise FlowError(
                f"{kp}: a user model needs its data: --data path/to/data.npz (make: DATA=...) with X_train, y_train, "
                "X_test, y_test"
            )
        dp = Path(data_path)
        if not dp.exists():
            raise FlowError(f"{dp}: data file not found (expected an .npz with X_train, y_train, X_test, y_test)")
        return cls(
            name=check_name(kp.stem if name is None else name),
            keras_path=kp.resolve(),
            data_path=dp.resolve(),
            input_bits=input_bits,
        )

    @property
    def dataset_spec(self) -> dict:
        return dict(self.card.dataset) if self.card else {"kind": "npz", "path": str(self.data_path)}

    @property
    def hls_command(self) -> str:
        """The command that builds this source again (recorded in the project's marker for hints)."""
        if self.built_by is not None:
            return self.built_by
        if self.card is None:
            return f"flow hls --keras {self.keras_path} --data {self.data_path} --name {self.name}"
        if self.card.path is not None and self.card.path.parent.resolve() != QMODELS_DIR.resolve():
            return f"flow hls {self.card.path}"
        return f"make hls MODEL={self.name}"

    def input_fields(self) -> dict:
        """What of the source itself the stage reads (for :func:`flow.warm.hls_digest`)."""
        if self.card is not None:
            return {"card": card_to_yaml(_card_copy(self.card) | {"name": self.name})}
        return {
            "keras_sha256": warm.file_digest(self.keras_path),
            "name": self.name,
            "input_bits": self.input_bits,
        }

    @property
    def seed(self) -> int:
        return self.card.training.seed if self.card else 1

    @property
    def settings(self) -> HlsSettings:
        return HlsSettings.from_card(self.card) if self.card else HlsSettings(Hardware(), {})


def _inputs_digest(source: Source, synth: bool) -> str:
    """The digest of everything this build of ``source`` reads."""
    return warm.hls_digest(source.input_fields(), _fingerprint(source), synth=synth)


def _fingerprint(source: Source) -> str:
    """The source's dataset fingerprint, without building the data."""
    return dataset_fingerprint(source.dataset_spec, source.seed, card_path=source.card.path if source.card else None)


def load_data(source: Source) -> tuple[Dataset, str]:
    """The source's dataset and its fingerprint."""
    spec = source.dataset_spec
    card_path = source.card.path if source.card else None
    t0 = time.perf_counter()
    ds = load_dataset(spec, seed=source.seed, card_path=card_path)
    note = assumed_bits_note(spec, ds.table) if ds.table is not None else None
    if note:
        info(f"{source.name}: {note}")
    info(
        f"{source.name}: dataset {spec['kind']} ready "
        f"({len(ds.X_train)} train, {len(ds.X_test)} test, {time.perf_counter() - t0:.1f} s)"
    )
    return ds, _fingerprint(source)


def _save_data(project: Project, ds: Dataset, fingerprint: str) -> None:
    """The test set for later stages (verify, sim, report), which never regenerate data."""
    write_npz(
        project.data,
        X_test=ds.X_test,
        y_test=ds.y_test,
        fingerprint=np.array(fingerprint),
        task=np.array(ds.task),
        # trigger data: which class is signal (the metrics of later stages need it); -1: none
        signal_class=np.array(ds.meta.get("signal_class", -1)),
    )


def obtain_model(source: Source, ds: Dataset, fingerprint: str, project: Project, *, retrain: bool = False) -> dict:
    """Train from the card (or reuse), or import the user's model; returns the train summary."""
    from flow.model import load_keras
    from flow.train import train

    if source.card is not None:
        return train(source.card, ds, project, fingerprint, force=retrain)
    model = load_keras(source.keras_path)
    _check_shapes(model, ds, source)
    model, input_note = _with_input_quantizer(model, ds, source)
    project.root.mkdir(parents=True, exist_ok=True)
    tmp = project.keras.with_name(".model.tmp.h5")
    model.save(tmp, save_format="h5")
    tmp.replace(project.keras)
    q_metrics = score(ds, model.predict(ds.X_test, verbose=0, batch_size=4096))
    summary = {
        "model": source.name,
        "source": str(source.keras_path),
        "task": ds.task,
        "primary_metric": primary_metric(ds.task, ds.meta),
        "qkeras": {"metrics": q_metrics},
        "n_params": int(model.count_params()),
        "input": input_note,
    }
    write_json(project.train_json, summary)
    return summary


def _with_input_quantizer(model, ds: Dataset, source: Source):
    """The user's model checked layer by layer (before any work) and, without an input quantizer, given one."""
    from flow.input_bits import choose_input
    from flow.model import add_input_quantizer
    from flow.quantizers import check_model, input_quantizer

    where = str(source.keras_path)
    existing = input_quantizer(check_model(model, where))
    if existing is not None:
        if source.input_bits is not None:
            raise FlowError(
                f"--input-bits: {where} already quantizes its input (layer {existing.name}, {existing.output_t}); "
                "drop --input-bits"
            )
        return model, f"the model's own {existing.name}: {existing.output_t}"
    choice = choose_input(ds.X_train, source.input_bits)
    info(f"{source.name}: {choice.describe()}")
    return add_input_quantizer(model, choice.width, choice.int_bits), choice.describe()


HLS_OUTPUTS = ("card.yaml", "data.npz", "model.h5", "train.json", "hls", "ir.json", "csim.json", "test_outputs.npz")
REUSED = ("model.h5", "train.json", "float_test.npz", "float_weights.npz")  # reused while the fingerprint matches
TEST_OUTPUTS = "test_outputs.npz"  # float (when kept), QKeras and C-sim outputs on the test set: ensembles vote them
DOWNSTREAM = ("verify.json", "vectors.npz", "rtl", "sim", "sim.json", "report")  # describe one IR


def _card_copy(card: Card) -> dict:
    """The card as the project keeps it: a data file named relative to the card is named absolutely, since later
    stages read the copy from the project folder."""
    raw = dict(card.raw)
    # Defaults written out, so the copy says which part, clock and training settings were used.
    raw["hardware"] = asdict(card.hardware) | dict(raw.get("hardware") or {})
    raw["training"] = asdict(card.training) | dict(raw.get("training") or {})
    dataset = dict(raw.get("dataset") or {})
    path = dataset.get("path")
    if path and not Path(path).is_absolute() and (card.path.parent / path).is_file():
        dataset["path"] = str((card.path.parent / path).resolve())
        raw["dataset"] = dataset
    return raw


def _check_reuse_factors(card: Card, n_features: int) -> None:
    """The card's reuse factors, checked by its architecture's own rule before anything is trained."""
    from flow.rtl import get_arch

    check_layer = get_arch(card.hardware.arch).check_layer

    n_in = n_features
    for i, spec in enumerate(card.layers):
        if spec.type != "dense":
            continue
        try:
            check_layer(spec.name, n_in, spec.units, spec.reuse_factor)
        except FlowError as exc:
            raise FlowError(f"{card.path}: layers[{i}].reuse_factor: {exc}") from None
        n_in = spec.units


def _check_shapes(model, ds: Dataset, source: Source) -> None:
    """A user's model and data must agree on the number of inputs and outputs."""
    n_in, n_out = int(model.input_shape[-1]), int(model.output_shape[-1])
    if ds.n_features != n_in:
        raise FlowError(
            f"{source.data_path}: X_train has {ds.n_features} features; {source.keras_path.name} expects {n_in}"
        )
    if ds.n_outputs != n_out:
        what = "classes" if ds.task == "classification" else "targets"
        raise FlowError(
            f"{source.data_path}: y has {ds.n_outputs} {what}; {source.keras_path.name} has {n_out} output(s)"
        )


def build_hls(
    source: Source,
    *,
    synth: bool = False,
    retrain: bool = False,
    force: bool = False,
    projects_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the whole `make hls` stage; returns csim.json.

    When the project was built from the same inputs (:mod:`flow.warm`) and still holds that build's outputs,
    nothing is redone: the summary is printed from its csim.json (``force`` or ``retrain`` rebuild anyway).

    The new project generation is built completely in a staging folder beside the project and then switched in
    with one atomic exchange, so at every instant the project is wholly the old one or wholly the new one. The
    later stages' outputs are carried into the new generation only when the IR is unchanged.
    """
    final = Project.of(source.name, projects_dir)
    final.check_owned(may_be_absent=True)  # before any work: never replace what qflow did not write
    inputs = _inputs_digest(source, synth)
    outputs = tuple(n for n in HLS_OUTPUTS if source.card is not None or n != "card.yaml")
    if not (force or retrain) and warm.hls_up_to_date(final, inputs, outputs):
        csim = read_json(final.csim_json)
        _summary(source.name, csim, csim.get("primary_metric") or primary_metric(csim["task"]))
        return csim
    scratch.remove_dead(final.root.parent, _stage_prefix(final))
    stage = scratch.make(final.root.parent, _stage_prefix(final), STAGE_SUFFIX)
    try:
        for name in REUSED:
            if (final.root / name).is_file():
                shutil.copy2(final.root / name, stage / name)
        csim = _build(source, Project(source.name, stage), final, synth=synth, retrain=retrain)
        switch_generation(final, stage, hls_command=source.hls_command, **{warm.HLS_FIELD: inputs})
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _summary(source.name, csim, csim.get("primary_metric") or primary_metric(csim["task"]))
    return csim


STAGE_SUFFIX = ".staging"


def _stage_prefix(project: Project) -> str:
    return f".{project.name}."


def switch_generation(final: Project, stage: Path, **marker: str) -> None:
    """Complete the generation in ``stage`` (carried-over outputs, marker) and swap it with the project.

    Every step before the exchange writes only inside ``stage``; after it, the old generation sits at ``stage``
    for the caller to remove (or, after a kill, the next build of this project).
    """
    from flow.ir import IR

    new_ir = IR.load(stage / "ir.json")
    old_ir = final.ir_json.read_bytes() if final.ir_json.is_file() else None
    # The new generation's own (a card.yaml a --keras build lacks goes too, and what it reused is in it already).
    dropped = set(HLS_OUTPUTS) | set(REUSED) | {MARKER}
    if old_ir != (stage / "ir.json").read_bytes():
        dropped |= set(DOWNSTREAM)  # they describe the old IR
    if final.root.is_dir():
        for entry in sorted(final.root.iterdir()):
            if entry.name not in dropped:
                _link_copy(entry, stage / entry.name)
    write_marker(stage, final.name, ir_sha256=new_ir.digest(), **marker)
    final.check_owned(may_be_absent=True)  # still ours at the last moment
    publish_dir(stage, final.root)


def _link_copy(src: Path, dst: Path) -> None:
    """Hard-link copy of a file or tree (links copied as links, never followed): cheap, and ``src`` stays whole."""
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, copy_function=os.link)
    elif src.is_symlink():
        os.symlink(os.readlink(src), dst)
    else:
        os.link(src, dst)


def _build(source: Source, project: Project, final: Project, *, synth: bool, retrain: bool) -> dict[str, Any]:
    """The stage's work inside ``project`` (the staging folder); paths written into files name ``final``."""
    from flow.model import load_keras
    from flow.train import keras_predict

    ds, fingerprint = load_data(source)
    card = source.card
    if card is not None and "task" in card.raw and card.task != ds.task:
        raise FlowError(
            f"{card.path}: task: {card.task!r} disagrees with the dataset, which is {ds.task}; "
            "drop the field (the dataset sets the task)"
        )
    if card is not None:
        _check_reuse_factors(card, ds.n_features)
    if card is not None:  # the card's quantizers, checked like a user's model before training
        from flow.model import build_model
        from flow.quantizers import check_model

        check_model(
            build_model(card, ds.n_features, ds.n_outputs, image_shape=ds.meta.get("image_shape")), str(card.path)
        )
    trained = obtain_model(source, ds, fingerprint, project, retrain=retrain)
    if source.card is not None and source.card.path is not None:
        project.card.write_text(card_to_yaml(_card_copy(source.card) | {"name": source.name}))
    _save_data(project, ds, fingerprint)

    keras_model = load_keras(project.keras)
    q_test = keras_predict(keras_model, ds.X_test)
    n_tb = min(TB_VECTORS, len(ds.X_test))
    with atomic_dir(project.hls) as tmp:
        hls_model = convert(keras_model, source.settings, tmp, ds.X_test[:n_tb], q_test[:n_tb])
        info(f"{source.name}: compiling the hls4ml C simulation")
        compile_s = write_and_compile(hls_model)
        t0 = time.perf_counter()
        c_test = predict(hls_model, ds.X_test)
        predict_s = time.perf_counter() - t0
        ir = extract_ir(hls_model, source.name, ds.task, ds.class_names)
        qkeras = _check_against_qkeras(keras_model, ir, ds.X_test)  # the network alone: what QKeras computes
        if ds.table is not None:  # the table's output stage, which the metrics apply, is part of the hardware
            ir = ir.with_output_stage([ds.table.clamp_layer(ir.n_outputs)], ds.table.to_dict())
        cfg = tmp / "hls4ml_config.yml"
        if cfg.exists():  # keep the project relocatable: no temporary path inside it
            cfg.write_text(cfg.read_text().replace(str(tmp), str(final.hls)))
    ir.save(project.ir_json)

    csim = {
        "model": source.name,
        "hls_project": str(final.hls),
        "task": ds.task,
        "primary_metric": primary_metric(ds.task, ds.meta),
        "float_metrics": trained.get("float", {}).get("metrics"),
        "backend": source.settings.hardware.backend,
        "strategy": source.settings.hardware.strategy,
        "n_vectors": int(len(ds.X_test)),
        "metrics": score(ds, c_test),
        "qkeras_metrics": trained["qkeras"]["metrics"],
        "qkeras_vs_csim": agreement(ds.task, q_test, c_test),
        "qkeras_vs_reference": qkeras,
        "compile_seconds": round(compile_s, 2),
        "predict_seconds": round(predict_s, 3),
        "synthesis": synthesize(project.hls, source.settings.hardware.backend)
        if synth
        else {"status": "not requested"},
    }
    write_json(project.csim_json, csim)
    float_test = project.root / "float_test.npz"
    floats = {"float": read_npz(float_test, ("logits",))["logits"]} if float_test.is_file() else {}
    write_npz(project.root / TEST_OUTPUTS, qkeras=q_test, csim=c_test, **floats)
    return csim


def _check_against_qkeras(keras_model, ir, X_test: np.ndarray) -> dict:
    """The reference against QKeras on the quantized test set; a difference beyond float32 rounding is an error."""
    from flow import qkeras_check, reference

    # Every layer's outputs are held at once: the first test vectors within the trace budget (the set is shuffled).
    result = qkeras_check.check(keras_model, ir, reference.quantize_input(ir, X_test[: reference.batch_limit(ir)]))
    qkeras_check.require(result)
    info(f"{ir.name}: {result.message()}")
    return result.to_dict()


def _summary(name: str, csim: dict, metric: str) -> None:
    qk = csim["qkeras_metrics"][metric]
    cs = csim["metrics"][metric]
    fl = (csim.get("float_metrics") or {}).get(metric)
    agree = csim["qkeras_vs_csim"]
    lines = [
        f"model      {name}",
        f"{metric:<10} float {fl:.4f}   QKeras {qk:.4f}   C-sim {cs:.4f}"
        if fl is not None
        else f"{metric:<10} QKeras {qk:.4f}   C-sim {cs:.4f}",
        "agreement  " + ", ".join(f"{k} {v:.4g}" for k, v in agree.items()) + "  (QKeras vs C-sim)",
        f"project    {csim['hls_project']}  (C-sim build {csim['compile_seconds']} s)",
        f"synthesis  {csim['synthesis']['status']}",
    ]
    print("\n".join(lines))


def signal_class_of(project: Project) -> int | None:
    """The signal class of a trigger project's test set (None for other data)."""
    signal = int(read_npz(project.require(project.data, "hls")).get("signal_class", -1))
    return None if signal < 0 else signal


def load_test_data(project: Project) -> tuple[np.ndarray, np.ndarray, str]:
    """The test set the hls stage saved: X_test, y_test, task."""
    d = read_npz(project.require(project.data, "hls"), ("X_test", "y_test", "task"))
    return d["X_test"], d["y_test"], str(d["task"])
