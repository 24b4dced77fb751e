"""Model cards: every shipped card loads; bad cards give one line naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow.card import list_cards, load_card
from flow.cli import main
from flow.errors import FlowError

GOOD = """\
name: {name}
dataset: {{kind: table, table: charge}}
input: (9,0)
layers:
  - type: dense
    units: 4
    weight: (8,1)
    bias: (8,1)
  - type: relu
    activation: (8,3)
  - type: dense
    units: 1
    weight: (8,1)
    bias: (8,1)
"""


def write(tmp_path: Path, text: str, name: str = "card") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_every_shipped_card_loads():
    names = list_cards()
    assert {f"diag_{k:02d}" for k in range(20)} <= set(names)
    assert {"lut_charge", "lut_discharge"} <= set(names)
    from flow.ensemble_card import is_ensemble_card, load_ensemble_card

    for name in names:
        card = load_ensemble_card(name) if is_ensemble_card(name) else load_card(name)
        assert card.name == name


def test_diag_cards_share_the_base_and_differ_in_diagonal():
    cards = [load_card(f"diag_{k:02d}") for k in range(20)]
    assert [c.dataset["diagonal"] for c in cards] == list(range(20))
    assert len({c.layers for c in cards}) == 1
    assert [s.units for s in cards[5].layers if s.type == "dense"] == [40, 18]


def test_lut_cards_have_337_parameters():
    card = load_card("lut_charge")
    dense = [s.units for s in card.layers if s.type == "dense"]
    sizes = [2] + dense
    assert sum(a * b + b for a, b in zip(sizes, sizes[1:])) == 337


def test_good_card(tmp_path):
    card = load_card(write(tmp_path, GOOD.format(name="card")))
    assert card.task == "regression"
    assert [s.name for s in card.layers] == ["fc1", "relu1", "fc2"]
    assert str(card.layers[0].weight) == "(8,1)"


@pytest.mark.parametrize(
    "edit, field, allowed",
    [
        (
            ("weight: (8,1)\n    bias: (8,1)\n  - type: relu", "weight: (12,13)\n    bias: (8,1)\n  - type: relu"),
            "layers[0].weight",
            "width",
        ),
        (("type: relu", "type: sigmoid"), "layers[1].type", "dense, relu, dropout"),
        (("- type: relu\n    activation: (8,3)", "- {type: relu, activation: (8,3)}"), "layers[1]", "quoted"),
        (("units: 4", "units: -4"), "layers[0].units", "integer"),
        (("input: (9,0)", "input: nine"), "input", "e.g. (12,2)"),
        (("dataset: {kind: table, table: charge}", "datasett: {}"), "datasett", "allowed"),
        # Layer names: the builder's own (flow/model.py), non-ASCII, not identifiers, duplicates.
        (("units: 4", "units: 4\n    name: x"), "layers[0].name", "other than x, input_q, output_q"),
        (("units: 4", "units: 4\n    name: input_q"), "layers[0].name", "'input_q' is reserved"),
        (("units: 1", "units: 1\n    name: output_q"), "layers[2].name", "'output_q' is reserved"),
        (("units: 4", "units: 4\n    name: fcé"), "layers[0].name", "ASCII letters, digits and _"),
        (("units: 4", "units: 4\n    name: 1fc"), "layers[0].name", "not starting with a digit"),
        (("units: 1", "units: 1\n    name: relu1"), "layers[2].name", "name of layers[1]; expected a unique"),
        # Widths: 64 bits at most.
        (("input: (9,0)", "input: (100000,2)"), "input", "width must be 1..64"),
        (("input: (9,0)", "input: (65,2)"), "input", "width must be 1..64"),
        (("activation: (8,3)", "activation: [65, 3]"), "layers[1].activation", "1..64"),
        # The RTL architectures are flow.rtl's registry.
        (("input: (9,0)", "input: (9,0)\nhardware: {arch: da}"), "hardware.arch", "one of parallel, folded"),
        (("input: (9,0)", "input: (9,0)\nhardware: {part: [a, b]}"), "hardware.part", "expected a device name"),
        # search: is checked at load by the search's own parser.
        (("input: (9,0)", "input: (9,0)\nsearch: {bits: ['(12,13)']}"), "search.bits", "must be a mapping"),
        (
            ("input: (9,0)", "input: (9,0)\nsearch: {metric: f1score, bits: {input: ['(8,0)']}}"),
            "search.metric",
            "known: accuracy, rmse",
        ),
        (("input: (9,0)", "input: (9,0)\nsearch: {bits: {input: ['(99,0)']}}"), "search.bits.input", "1..64"),
    ],
)
def test_bad_card_names_file_field_and_allowed(tmp_path, edit, field, allowed):
    path = write(tmp_path, GOOD.format(name="card").replace(*edit))
    with pytest.raises(FlowError) as exc:
        load_card(path)
    msg = str(exc.value)
    assert str(path) in msg and field in msg and allowed in msg
    assert "\n" not in msg


def test_widest_bitwidth_and_plain_names_load(tmp_path):
    text = (
        GOOD.format(name="card")
        .replace("input: (9,0)", "input: (64,2)")
        .replace("units: 4", "units: 4\n    name: Fc_1")
    )
    card = load_card(write(tmp_path, text))
    assert card.input.width == 64 and card.layers[0].name == "Fc_1"


@pytest.mark.parametrize(
    "dataset, field, allowed",
    [
        ("{kind: csv}", "dataset.kind", "valid kinds: spectra, table, npz"),
        ("{kind: table, table: voltage}", "dataset.table", "one of: charge, discharge"),
        ("{kind: table, table: charge, shape: [-32, 32]}", "dataset.shape", "integer in 2..4096"),
        ("{kind: table, table: charge, shape: [0, 32]}", "dataset.shape", "integer in 2..4096"),
        ("{kind: table, table: charge, shape: big}", "dataset.shape", "[rows, columns]"),
        ("{kind: table, table: charge, shape: [32, 32, 32]}", "dataset.shape", "[rows, columns]"),
        ("{kind: table, table: charge, colour: red}", "dataset.colour", "allowed: kind, table, path"),
        ("{kind: table, table: charge, omit_saturated: maybe}", "dataset.omit_saturated", "true or false"),
        ("{kind: table, table: charge, path: t.csv}", "dataset", "exactly one of table"),
        ("{kind: table, path: 5}", "dataset.path", "a file path (.csv)"),
        ("{kind: table, path: t.txt}", "dataset.path", "a .csv file"),
        ("{kind: spectra}", "dataset.diagonal", "required"),
        ("[table, charge]", "dataset", "mapping with a 'kind'"),
    ],
)
def test_bad_dataset_is_rejected_at_load(tmp_path, capsys, dataset, field, allowed):
    """The dataset kinds' own checks (flow/data) run when the card loads, so `flow cards` rejects the card."""
    path = write(tmp_path, GOOD.format(name="card").replace("{kind: table, table: charge}", dataset))
    with pytest.raises(FlowError) as exc:
        load_card(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: {field}") and allowed in msg and "\n" not in msg
    assert main(["cards", str(path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {msg}"


def test_data_files_are_checked_when_built_not_at_load(tmp_path):
    card = load_card(write(tmp_path, GOOD.format(name="card").replace("table: charge", "path: not_yet.csv")))
    assert card.dataset == {"kind": "table", "path": "not_yet.csv"}


def test_directory_is_one_line(tmp_path):
    (tmp_path / "cards.yaml").mkdir()
    with pytest.raises(FlowError) as exc:
        load_card(tmp_path / "cards.yaml")
    assert str(exc.value) == f"{tmp_path / 'cards.yaml'}: is a directory, expected a .yaml file"
    with pytest.raises(FlowError, match="is a directory, expected a .yaml file"):
        load_card(f"{tmp_path}/")


def test_base_that_is_a_directory_is_one_line(tmp_path):
    (tmp_path / "bases").mkdir()
    path = write(tmp_path, "name: child\nbase: bases\n", "child")
    with pytest.raises(FlowError) as exc:
        load_card(path)
    assert str(exc.value) == f"{path}: base: 'bases' is a directory, expected a .yaml file"


def test_card_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "card.yaml"
    path.write_bytes(GOOD.format(name="card").encode("latin-1") + b"description: caf\xe9\n")
    with pytest.raises(FlowError) as exc:
        load_card(path)
    assert str(exc.value) == f"{path}: not UTF-8 text"
    child = write(tmp_path, "name: child\nbase: card.yaml\n", "child")
    with pytest.raises(FlowError) as exc:
        load_card(child)
    assert str(exc.value) == f"{path.resolve()}: not UTF-8 text"


@pytest.mark.parametrize(
    "base_extra, child_extra, blamed, field",
    [
        ("colour: red\n", "", "_b", "colour"),
        ("training: {seed: 2, colour: 1}\n", "training: {epochs: 3}\n", "_b", "training.colour"),
        ("training: {seed: 2}\n", "training: {colour: 1}\n", "child", "training.colour"),
        ("", "colour: red\n", "child", "colour"),
        ("search: {metric: f1score}\n", "search: {bits: {input: ['(8,0)']}}\n", "_b", "search.metric"),
    ],
)
def test_error_names_the_file_the_field_came_from(tmp_path, base_extra, child_extra, blamed, field):
    write(tmp_path, GOOD.format(name="_b") + base_extra, "_b")
    path = write(tmp_path, f"name: child\nbase: _b.yaml\n{child_extra}", "child")
    with pytest.raises(FlowError) as exc:
        load_card(path)
    where = (tmp_path / "_b.yaml").resolve() if blamed == "_b" else path
    assert str(exc.value).startswith(f"{where}: {field}: ")


def test_bad_layer_in_base_names_the_base(tmp_path):
    write(tmp_path, GOOD.format(name="_b").replace("units: 4", "units: 4\n    name: x"), "_b")
    path = write(tmp_path, "name: child\nbase: _b.yaml\n", "child")
    with pytest.raises(FlowError) as exc:
        load_card(path)
    assert str(exc.value).startswith(f"{(tmp_path / '_b.yaml').resolve()}: layers[0].name: 'x' is reserved")


def test_broken_yaml_is_one_line(tmp_path):
    path = write(tmp_path, "name: card\nlayers: [\n")
    with pytest.raises(FlowError, match="not valid YAML"):
        load_card(path)


def test_missing_card_lists_known_cards():
    with pytest.raises(FlowError, match="no such model card.*diag_00"):
        load_card("no_such_model")


def test_base_card_merges(tmp_path):
    write(tmp_path, GOOD.format(name="_base"), "_base")
    path = write(tmp_path, "name: child\nbase: _base.yaml\ntraining: {epochs: 3}\n", "child")
    card = load_card(path)
    assert card.training.epochs == 3 and card.training.batch_size == 256 and len(card.layers) == 3


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["hls", "no_such_model"], "no such model card"),
        (["hls", "--keras", "missing.h5", "--data", "x.npz"], "missing.h5: model file not found"),
        (["cards", "{card}"], "layers[0].weight"),
    ],
)
def test_cli_errors_are_one_line_and_nonzero(tmp_path, capsys, argv, needle):
    bad = write(
        tmp_path,
        GOOD.format(name="card").replace(
            "weight: (8,1)\n    bias: (8,1)\n  - type: relu", "weight: (12,13)\n    bias: (8,1)\n  - type: relu"
        ),
    )
    code = main([a.replace("{card}", str(bad)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert needle in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_debug_shows_traceback_and_keeps_the_exit_status(capsys):
    assert main(["--debug", "hls", "no_such_model"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "FlowError" in err
    assert err.strip().splitlines()[-1].startswith("error: ")


def test_every_subcommand_has_help(capsys):
    from flow.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"hls", "verify", "cards"} <= set(sub.choices)
    for name, p in sub.choices.items():
        assert p.format_help().startswith("usage: flow " + name)


def test_training_fingerprint_is_stable_across_new_card_fields():
    """Adding a LayerSpec field (batchnorm's `scale`) must not retrain every model built before it: the fingerprint
    of a card without the field is the one it had before."""
    from flow.card import load_card

    assert load_card("diag_05").training_fingerprint("x") == "203aa728b6ad8f94"
    assert load_card("lut_charge").training_fingerprint("x") == "ee3d00d6fba102f2"
