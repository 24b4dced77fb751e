"""`flow cards`: list the shipped model cards, or validate some."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the arguments."""
    p.add_argument("cards", nargs="*", help="cards to validate (names or paths); none: list all")


def run(args: argparse.Namespace) -> int:
    """List or validate."""
    from flow.card import list_cards, load_card
    from flow.ensemble_card import is_ensemble_card, load_ensemble_card

    for name in args.cards or list_cards():
        if is_ensemble_card(name):
            ens = load_ensemble_card(name)
            print(f"{ens.name:<16} {'ensemble':<15} {ens.voting.value:<8} {len(ens.members)} members")
            continue
        card = load_card(name)
        layers = " -> ".join(f"{s.type}{'(' + str(s.units) + ')' if s.units else ''}" for s in card.layers)
        print(f"{card.name:<16} {card.task:<15} {card.dataset.get('kind'):<8} {layers}")
    return 0
