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
    for name in names:
        card = load_card(name)
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
    ],
)
def test_bad_card_names_file_field_and_allowed(tmp_path, edit, field, allowed):
    path = write(tmp_path, GOOD.format(name="card").replace(*edit))
    with pytest.raises(FlowError) as exc:
        load_card(path)
    msg = str(exc.value)
    assert str(path) in msg and field in msg and allowed in msg
    assert "\n" not in msg


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


def test_cli_debug_shows_traceback(tmp_path):
    with pytest.raises(FlowError):
        main(["--debug", "hls", "no_such_model"])


def test_every_subcommand_has_help(capsys):
    from flow.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"hls", "verify", "cards"} <= set(sub.choices)
    for name, p in sub.choices.items():
        assert p.format_help().startswith("usage: flow " + name)
