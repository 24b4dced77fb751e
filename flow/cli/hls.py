"""`flow hls`: train (or reuse) a model, write its hls4ml project, run its C simulation."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the arguments."""
    p.add_argument("model", nargs="?", help="card name (qmodels/<name>.yaml) or path to a card")
    p.add_argument("--keras", metavar="PATH", help="a saved QKeras .h5 model to convert instead of a card")
    p.add_argument("--data", metavar="NPZ", help="with --keras: .npz with X_train, y_train, X_test, y_test")
    p.add_argument("--name", help="with --keras: project name (default: the file's stem)")
    p.add_argument(
        "--input-bits",
        metavar="(W,I)",
        help="with --keras, for a model without an input quantizer: quantized_bits(W,I) for the input "
        "(default: 16 bits, integer bits from the range of X_train)",
    )
    p.add_argument("--retrain", action="store_true", help="train again even if the card and data are unchanged")
    p.add_argument(
        "--force",
        action="store_true",
        help="convert and compile again even when the project is up to date (a trained model is still reused)",
    )
    p.add_argument(
        "--synth", action="store_true", help="also run vendor C synthesis when vitis_hls/vivado_hls is on PATH"
    )


def source_from_args(args: argparse.Namespace):
    """A card source or a user-model source, with one-line errors for bad combinations."""
    from flow.build import Source
    from flow.errors import FlowError
    from flow.input_bits import parse_input_bits

    input_bits = parse_input_bits(args.input_bits) if args.input_bits else None
    if args.keras and args.model:
        raise FlowError("give a model card or --keras PATH, not both")
    if args.keras:
        return Source.from_keras(args.keras, args.data, args.name, input_bits)
    keras_model = str(args.model or "").endswith((".h5", ".keras"))
    if not keras_model and (args.data or args.name):
        raise FlowError("--data and --name apply only to a Keras model (--keras PATH); a card names its own data")
    if not keras_model and input_bits:
        raise FlowError("--input-bits applies only to a Keras model (--keras PATH); a card sets its field input:")
    if not args.model:
        raise FlowError("give a model card name (e.g. diag_05) or --keras PATH --data NPZ")
    if keras_model:
        return Source.from_keras(args.model, args.data, args.name, input_bits)
    return Source.from_card(args.model)


def run(args: argparse.Namespace) -> int:
    """Run the stage."""
    from flow.build import build_hls
    from flow.cli import next_step
    from flow.ensemble_card import is_ensemble_card

    if args.model and not args.keras and is_ensemble_card(args.model):  # members, vote: its own builder
        from flow.ensemble_build import build_ensemble
        from flow.ensemble_card import load_ensemble_card

        card = load_ensemble_card(args.model)
        build_ensemble(card, force=args.force, retrain=args.retrain)
        next_step(f"make verify MODEL={card.name}  (features, every member and the vote, bit for bit)")
        return 0
    source = source_from_args(args)
    build_hls(source, synth=args.synth, retrain=args.retrain, force=args.force)
    next_step(f"make verify MODEL={source.name}  (reference vs C simulation, bit for bit)")
    return 0
