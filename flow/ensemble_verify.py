"""`flow verify` of an ensemble: the graph's features, every member and the vote, bit for bit.

On the test spectra and random raw spectra (corners, uniform counts, low counts) the ensemble graph is run once.
Then, bit for bit:

* features: on the test spectra, each member's input in the graph equals the input the member was trained on and
  C-simulated with (its project's ``data.npz``, built by the data path's own feature code);
* members: every layer of each member in the graph equals that member's hls4ml C simulation fed the graph's
  member input (the member's own project, converted again with the settings its IR records);
* vote: the graph's class equals the vote kernel applied to the members' C-simulated logits.

``vectors.npz`` (when it passed) holds what an ensemble design shows: ``outputs`` every member's logits side by side
(:func:`flow.ensemble_graph.observed_outputs`), ``classes`` the vote.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from flow import reference, warm
from flow.build import load_test_data
from flow.ensemble_graph import member_node, observed_outputs
from flow.errors import FlowError
from flow.ir import IR, CastLayer
from flow.log import info
from flow.project import Project, read_json, read_npz, write_json, write_npz
from flow.verify import _csim_trace, _hls_model_for, compare

N_RANDOM = 500
BATCH = 256

# A member's C simulation: (member name, member IR, raw member inputs) -> raw outputs per layer name.
CsimFn = Callable[[str, IR, np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True)
class GraphMember:
    """A member as the ensemble graph holds it: its name, its IR and the graph's name of its input cast."""

    name: str
    ir: IR
    input_node: str


def graph_members(ir: IR) -> list[GraphMember]:
    """The members of an ensemble graph, from the vote's inputs back to each member's input cast."""
    out = []
    for logits in ir.output.inputs:
        name = logits.split("/", 1)[0]
        prefix = f"{name}/"
        nodes = [n for n in ir.nodes if n.name.startswith(prefix)]
        cast = next(n for n in nodes if isinstance(n, CastLayer) and n.inputs[0].startswith(prefix))
        out.append(GraphMember(name, _member_ir(ir, name, cast, nodes), cast.name))
    return out


def _member_ir(ir: IR, name: str, cast: CastLayer, nodes: list) -> IR:
    """The member's own IR, as it stands in the graph (names without the member prefix)."""
    from dataclasses import replace

    from flow.ir import InputSpec

    inp = cast.name.split("/", 1)[1]
    after = nodes[nodes.index(cast) + 1 :]
    strip = {n.name: n.name.split("/", 1)[1] for n in after} | {cast.name: inp}
    own = [replace(n, name=strip[n.name], inputs=tuple(strip[i] for i in n.inputs)) for n in after]
    return IR(name, ir.task, [InputSpec(cast.shape, cast.result_t, inp)], own, ir.class_names)


def random_spectra(n_channels: int, count_width: int, n: int, seed: int) -> np.ndarray:
    """Raw spectra over the counters' whole range: corners, uniform counts and low (Poisson) counts."""
    rng = np.random.default_rng(seed)
    top = (1 << count_width) - 1
    ch = np.arange(n_channels)
    corners = [np.zeros(n_channels), np.full(n_channels, top), np.where(ch % 2 == 0, top, 0), np.where(ch % 2, top, 0)]
    corners = np.array(corners[: min(4, n)], dtype=np.int64)
    rest = n - len(corners)
    uniform = rng.integers(0, top, size=(rest // 2, n_channels), endpoint=True)
    low = np.minimum(
        rng.poisson(rng.uniform(0, 30, size=(rest - rest // 2, 1)), size=(rest - rest // 2, n_channels)), top
    )
    return np.concatenate([corners, uniform, low]).astype(np.int64)


def check_ensemble(
    ir: IR, counts: np.ndarray, n_test: int, member_features: dict[str, np.ndarray], csim: CsimFn
) -> dict[str, Any]:
    """Features, members and vote against their checks (module docstring); counts of mismatches per part."""
    members = graph_members(ir)
    types = ir.types()
    keep = {m.name: [m.input_node, *(member_node(m.name, n.name) for n in m.ir.nodes)] for m in members}
    stored: dict[str, list[list[np.ndarray]]] = {m.name: [[] for _ in keep[m.name]] for m in members}
    votes, logits = [], []
    for start in range(0, len(counts), BATCH):
        trace = reference.run(ir, counts[start : start + BATCH])
        logits.append(observed_outputs(ir, trace)[0])
        for m in members:
            for i, name in enumerate(keep[m.name]):
                stored[m.name][i].append(trace.of(name))
        votes.append(trace.output_raw[:, 0])
    vote = np.concatenate(votes)
    result: dict[str, Any] = {"features": {}, "members": {}, "first_mismatch": None}
    csim_logits = []
    for m in members:
        arrays = [np.concatenate(a) for a in stored.pop(m.name)]
        x_raw = arrays[0]
        want = member_features[m.name]
        bad_features = int(np.sum(x_raw[:n_test] != want)) if want.shape == x_raw[:n_test].shape else int(want.size)
        result["features"][m.name] = bad_features
        layers = csim(m.name, m.ir, x_raw)
        member_trace = reference.Trace(arrays[1:], [n.result_t for n in m.ir.nodes], [n.name for n in m.ir.nodes])
        comp = compare(m.ir, x_raw, layers, member_trace)
        result["members"][m.name] = {"mismatches": comp.mismatches, "layers_compared": comp.layers_compared}
        if comp.first is not None and result["first_mismatch"] is None:
            result["first_mismatch"] = {"member": m.name, "layer": comp.first.layer, "vector": comp.first.vector}
        out = m.ir.outputs[0]
        if out not in layers:
            raise FlowError(f"{m.name}: the C simulation traced no output layer {out}")
        csim_logits.append(layers[out].reshape(len(x_raw), -1))
    csim_vote = ir.output.kernel(csim_logits, [types[i] for i in ir.output.inputs])[:, 0]
    result["vote"] = int(np.sum(csim_vote != vote))
    result["mismatches"] = (
        sum(result["features"].values()) + sum(v["mismatches"] for v in result["members"].values()) + result["vote"]
    )
    result["classes"] = vote
    result["logits"] = np.concatenate(logits)  # what the RTL shows beside the vote (flow/rtl/ensemble.py)
    return result


def hls_csim(projects: dict[str, Project]) -> CsimFn:
    """Each member's own C simulation, traced on every layer (its project converted again, as `flow verify`)."""

    def run(name: str, ir: IR, x_raw: np.ndarray) -> dict[str, np.ndarray]:
        project = projects[name]
        _, hls_model, tmp = _hls_model_for(project, project.load_ir())
        try:
            info(f"{name}: C simulation of {len(x_raw)} member inputs, every layer traced")
            return _csim_trace(hls_model, ir, ir.input.type.to_float(x_raw))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    return run


def verify_ensemble(
    project: Project, *, n_random: int = N_RANDOM, seed: int = 0, force: bool = False, projects_dir=None
) -> dict[str, Any]:
    """Run the stage for an ensemble project; writes verify.json (and vectors.npz when it passed)."""
    project.check_owned()
    ir = project.load_ir()
    members = graph_members(ir)
    projects = {m.name: Project.of(m.name, projects_dir) for m in members}
    for m in members:
        projects[m.name].check_owned()
        own = projects[m.name].load_ir()
        if [n.to_dict() for n in own.nodes] != [n.to_dict() for n in m.ir.nodes]:
            raise FlowError(
                f"{project.ir_json}: stale; member {m.name} was rebuilt since (run `make hls MODEL={project.name}`)"
            )
    inputs = warm.inputs_digest(
        ir=ir.digest(),
        data=warm.file_digest(project.require(project.data, "hls")),
        members={n: warm.file_digest(p.require(p.keras, "hls")) for n, p in projects.items()},
        n_random=n_random,
        seed=seed,
    )
    if not force and project.verify_json.is_file():
        done = read_json(project.verify_json)
        if done.get(warm.FIELD) == inputs and done.get("passed") and project.vectors.is_file():
            warm.say_up_to_date(project.name, "verify", inputs)
            return done
    t0 = time.perf_counter()
    test = read_npz(project.data, ("X_test",))["X_test"].astype(np.int64)
    spectrum = ir.input
    rand = random_spectra(spectrum.n, spectrum.type.width, n_random, seed)
    counts = np.concatenate([test, rand])
    features = {}
    for m in members:
        X_test, _, _ = load_test_data(projects[m.name])
        features[m.name] = reference.quantize_input(projects[m.name].load_ir(), X_test.astype(np.float64))
    info(f"{project.name}: ensemble graph on {len(counts)} spectra ({len(test)} test, {n_random} random)")
    result = check_ensemble(ir, counts, len(test), features, hls_csim(projects))
    classes = result.pop("classes")
    logits = result.pop("logits")
    summary = {
        "model": project.name,
        "ir_sha256": ir.digest(),
        warm.FIELD: inputs,
        "vectors_checked": int(len(counts)),
        "test_vectors": int(len(test)),
        "random_vectors": int(n_random),
        **result,
        "passed": result["mismatches"] == 0,
        "bit_exact": result["mismatches"] == 0,
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    if summary["passed"]:
        kinds = np.array(["test"] * len(test) + ["random"] * n_random)
        write_npz(
            project.vectors,
            inputs=counts,
            outputs=logits,
            classes=classes,
            kind=kinds,
            input_t=np.array(str(spectrum.type)),
            output_t=np.array(str(ir.output_t)),
            ir_sha256=np.array(ir.digest()),
        )
    else:
        project.vectors.unlink(missing_ok=True)
    write_json(project.verify_json, summary)
    return summary


def print_summary(s: dict[str, Any]) -> None:
    """The lines `flow verify` prints for an ensemble."""
    status = "PASS" if s["passed"] else "FAIL"
    members = s["members"]
    print(
        f"{status}  {s['model']}: {s['vectors_checked']} spectra ({s['test_vectors']} test, {s['random_vectors']} "
        f"random), {s['mismatches']} mismatches"
    )
    print(f"  features  {sum(s['features'].values())} mismatches over {len(s['features'])} members (test spectra)")
    layers = sum(v["layers_compared"] for v in members.values())
    bad = sum(v["mismatches"] for v in members.values())
    print(f"  members   {bad} mismatches, {len(members)} members x C-sim, {layers} layers compared")
    print(f"  vote      {s['vote']} mismatches (graph vs vote of the members' C-sim logits)")
    if s["first_mismatch"]:
        print(f"first mismatch: {s['first_mismatch']}")
