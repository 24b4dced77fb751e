"""Datasets for the model cards: synthetic gamma-ray spectra, lookup tables and users' .npz files."""

from flow.data.dataset import Dataset
from flow.data.kinds import check_dataset, dataset_fingerprint, load_dataset
from flow.data.spectra import CLASS_NAMES, SpectraParams, diagonal_features, generate_spectra
from flow.data.tables import TableInfo

__all__ = [
    "CLASS_NAMES",
    "Dataset",
    "SpectraParams",
    "TableInfo",
    "check_dataset",
    "dataset_fingerprint",
    "diagonal_features",
    "generate_spectra",
    "load_dataset",
]
