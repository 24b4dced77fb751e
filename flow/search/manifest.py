"""The manifest of generated cards: `flow search` removes or replaces only the cards it lists (it wrote them)."""

from __future__ import annotations

import re
from pathlib import Path

from flow.errors import FlowError
from flow.project import read_json, write_json

MANIFEST = ".qflow-manifest.json"


def listed(out_dir: Path) -> set[str]:
    """File names of the cards qflow wrote in ``out_dir``."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return set()
    data = read_json(path)
    cards = data.get("cards") if isinstance(data, dict) else None
    return {c for c in cards if isinstance(c, str)} if isinstance(cards, list) else set()


def write(out_dir: Path, names: set[str]) -> None:
    """Record ``names`` as the cards qflow wrote in ``out_dir`` (atomically)."""
    write_json(Path(out_dir) / MANIFEST, {"written_by": "qflow search", "cards": sorted(names)})


def variant_cards(out_dir: Path, model: str) -> list[Path]:
    """Every ``<model>_p<k>.yaml`` in ``out_dir`` (the names a search of ``model`` writes)."""
    pattern = re.compile(re.escape(model) + r"_p\d+\.yaml")
    return sorted(p for p in Path(out_dir).glob(f"{model}_p*.yaml") if pattern.fullmatch(p.name))


def check_writable(out_dir: Path, model: str) -> None:
    """A one-line error when a card the search of ``model`` may write or remove is not one qflow wrote."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise FlowError(f"{out_dir}: the generated-cards folder is a link or a file; qflow writes only a real folder")
    ours = listed(out_dir)
    for path in variant_cards(out_dir, model) if out_dir.is_dir() else ():
        if path.name not in ours or path.is_symlink() or not path.is_file():
            raise FlowError(
                f"{path}: not written by `flow search` (not in {out_dir / MANIFEST}); the search of {model} writes "
                f"{model}_p<k>.yaml there: move or rename it"
            )
