"""Time-series datasets, tonic-style transforms and time-first loaders."""

from .datasets import SequenceDataset, SequentialDigits, stratified_split
from .loading import as_tensors, collate_time_first, make_loader
from .files import SeriesSplit, load_series
from .transforms import FramesToSequence, GaussianNoise, Hold, ImageToSequence, Resample, Scale

__all__ = [
    "FramesToSequence",
    "GaussianNoise",
    "Hold",
    "ImageToSequence",
    "Resample",
    "Scale",
    "SequenceDataset",
    "SequentialDigits",
    "SeriesSplit",
    "as_tensors",
    "collate_time_first",
    "load_series",
    "make_loader",
    "stratified_split",
]
