"""Datasets in tonic's spirit: each item is a float sequence ``[T, F]`` and an int label."""

from __future__ import annotations

import math
import numbers
from typing import Callable, Sequence

import numpy as np
import torch

from .functional import ORDERS, image_to_sequence
from .._checks import check_choice, check_finite


def _labels(targets) -> np.ndarray:
    """Class labels as int64: integers, booleans, or floats that are whole numbers (1.0);
    anything else (0.2, NaN, strings) is a ``ValueError`` naming the first bad label."""
    if targets.dtype.kind in "iub":
        return targets.astype(np.int64)
    if targets.dtype.kind == "f":
        bad = ~np.isfinite(targets)
        bad[~bad] = targets[~bad] != np.round(targets[~bad])
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(f"targets must be whole-number class labels, got {targets[first].item()!r} at index "
                             f"{first} ({int(bad.sum())} of {len(targets)} labels are not whole numbers)")
        return targets.astype(np.int64)
    raise ValueError(f"targets must be integer class labels, got {targets.dtype} values such as {targets[:1].tolist()}")


def _check_fraction(name: str, value, low_open: bool) -> None:
    """``value`` is a number in [0, 1) (``low_open=False``) or (0, 1) (``low_open=True``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (0.0 < value < 1.0 if low_open else 0.0 <= value < 1.0)
    if not ok:
        raise ValueError(f"{name} must be in {'(0, 1)' if low_open else '[0, 1)'}, got {value!r}")


class SequenceDataset(torch.utils.data.Dataset):
    """Any labelled time series: ``data`` ``[N, T, F]`` or ``[N, T]`` (one feature), ``targets`` ``[N]``.

    Data are stored in torch's default float dtype (float32 unless changed) and must be
    finite; labels must be whole numbers (ints, or floats such as 1.0).

    Attributes follow tonic: ``transform`` (applied to each ``[T, F]`` sample),
    ``target_transform``, ``classes`` and ``sensor_size`` = ``(F, 1, 1)``: tonic's (X, Y, P) of a
    sensor with F channels in one row and one polarity, as tonic gives its audio sets (SHD:
    ``(700, 1, 1)``), so that tonic's transforms that read it see F channels.

    >>> ds = SequenceDataset(np.zeros((5, 7)), [0, 1, 0, 1, 2])
    >>> x, y = ds[1]
    >>> x.shape, y, ds.classes, ds.sensor_size, len(ds)
    (torch.Size([7, 1]), 1, [0, 1, 2], (1, 1, 1), 5)
    """

    def __init__(
        self,
        data,
        targets,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        classes: Sequence | None = None,
    ):
        data = torch.as_tensor(np.asarray(data)).to(torch.get_default_dtype())
        check_finite("data", data)
        if data.dim() == 2:
            data = data.unsqueeze(-1)
        if data.dim() != 3:
            raise ValueError(f"data must have shape [N, T, F] or [N, T], got {tuple(data.shape)}")
        targets = np.asarray(targets)
        if targets.ndim != 1 or len(targets) != len(data):
            raise ValueError(
                f"targets must be one label per sample: data has {len(data)} samples, "
                f"targets has shape {targets.shape}"
            )
        self.data = data
        self.targets = _labels(targets)
        self.transform = transform
        self.target_transform = target_transform
        self.classes = list(classes) if classes is not None else sorted(np.unique(self.targets).tolist())
        self.sensor_size = (data.shape[-1], 1, 1)

    def __len__(self) -> int:
        return len(self.data)

    def sample(self, index: int) -> torch.Tensor:
        """The untransformed sequence ``[T, F]`` of one item."""
        return self.data[index]

    def __getitem__(self, index: int):
        sequence = self.sample(index)
        target = int(self.targets[index])
        if self.transform is not None:
            sequence = self.transform(sequence)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sequence, target


def stratified_split(targets, test_fraction: float, seed: int, name: str = "test_fraction"):
    """Indices (train, test) of a stratified split, fixed by ``seed``; errors call the
    fraction ``name``.

    >>> train, test = stratified_split([0, 1] * 10, 0.5, seed=0)
    >>> len(train), len(test), sorted(set(train) | set(test)) == list(range(20))
    (10, 10, True)
    """
    from sklearn.model_selection import train_test_split

    _check_fraction(name, test_fraction, low_open=True)
    index = np.arange(len(targets))
    try:
        train, test = train_test_split(index, test_size=test_fraction, stratify=targets, random_state=seed)
    except ValueError as error:  # e.g. too few samples per class for this fraction
        raise ValueError(f"{name} = {test_fraction:g} cannot split {len(targets)} samples stratified: "
                         f"{error}") from None
    return np.sort(train), np.sort(test)


class SequentialDigits(SequenceDataset):
    """sklearn's 1797 handwritten digits (8×8, pixels 0..16) as 64-point time series.

    Each image is scanned pixel by pixel (``order``: ``"row"`` as in the paper, ``"column"``
    or ``"snake"``) into ``[64, 1]`` raw pixel values; the input points are Δt apart in time
    (set by the model's ``dt`` or a ``Resample`` transform). ``split`` picks ``"train"`` or
    ``"test"`` of a stratified split fixed by ``split_seed`` (the paper: 50/50). With
    ``val_fraction`` in (0, 1) the training half is split again, stratified, into ``"train"`` and
    ``"val"`` (for tuning without touching the test half). Works offline: the digits ship
    inside scikit-learn.

    >>> train = SequentialDigits("train")
    >>> test = SequentialDigits("test")
    >>> len(train), len(test), train[0][0].shape, train.classes[:3]
    (898, 899, torch.Size([64, 1]), [0, 1, 2])
    """

    def __init__(
        self,
        split: str = "train",
        order: str = "row",
        split_seed: int = 0,
        test_fraction: float = 0.5,
        val_fraction: float = 0.0,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
    ):
        from sklearn.datasets import load_digits

        check_choice("split", split, ("train", "val", "test"))
        check_choice("order", order, ORDERS)
        _check_fraction("test_fraction", test_fraction, low_open=True)
        _check_fraction("val_fraction", val_fraction, low_open=False)
        if split == "val" and val_fraction <= 0:
            raise ValueError("split='val' needs val_fraction > 0")
        digits = load_digits()
        images, targets = digits.images, digits.target
        train, test = stratified_split(targets, test_fraction, split_seed)
        if val_fraction > 0:
            inner_train, inner_val = stratified_split(targets[train], val_fraction, split_seed, "val_fraction")
            train, val = train[inner_train], train[inner_val]
        index = {"train": train, "test": test}.get(split) if split != "val" else val
        sequences = np.stack([np.asarray(image_to_sequence(img, order)) for img in images[index]])
        super().__init__(sequences, targets[index], transform, target_transform, classes=list(range(10)))
        self.split, self.order, self.indices = split, order, index
