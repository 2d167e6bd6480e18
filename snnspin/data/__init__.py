"""Time-series datasets, tonic-style transforms and time-first loaders."""

from .datasets import SequenceDataset, SequentialDigits, stratified_split
from .loading import as_tensors, collate_time_first, make_loader
from .transforms import GaussianNoise, Hold, ImageToSequence, Resample, Scale

__all__ = [
    "GaussianNoise",
    "Hold",
    "ImageToSequence",
    "Resample",
    "Scale",
    "SequenceDataset",
    "SequentialDigits",
    "as_tensors",
    "collate_time_first",
    "make_loader",
    "stratified_split",
]
