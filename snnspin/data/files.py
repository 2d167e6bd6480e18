"""Your own time series from a ``.npz`` file: checked, split, time first.

File format (``numpy.savez``):

- ``x``: ``[N, T, F]`` floats, N series of T time points with F channels (``[N, T]`` is read
  as one channel); the points are Δt ns apart when presented to a network;
- ``y``: ``[N]`` integer labels in 0 .. C-1, every class with series (whole-valued floats are
  accepted);
- optionally ``x_test`` ``[M, T, F]`` and ``y_test`` ``[M]`` (labels among y's): a test set of your own. Without
  them the series are split 50/50, stratified, by the split seed (as the digits are).

Series of different lengths must be padded to one T before saving (zeros at the end, as
``collate_time_first`` pads); snnspin does not mask padding, so pad only where a trailing
run of zeros means "no input", and say so in your methods. Every problem with the file is
refused with one line naming the file and the problem.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .datasets import stratified_split


class SeriesSplit(NamedTuple):
    """Training and held-out series, time first: ``x_*`` ``[T, N, F]`` float, ``y_*`` ``[N]`` long."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor

    @property
    def n_inputs(self) -> int:
        """Channels per time point, F."""
        return int(self.x_train.shape[2])

    @property
    def n_classes(self) -> int:
        """Classes C: one more than the largest label in either part."""
        return int(max(self.y_train.max(), self.y_eval.max())) + 1


#: Array names that look like series or labels (X, x_val, Y_Test, x-train, ...): refused, not ignored.
_LOOKS_LIKE_DATA = re.compile(r"(x|y|data|labels?|targets?)([_-]?(test|train|val|valid|validation|eval))?",
                              re.IGNORECASE)


def _labels(path, name, values) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{path}: {name} must be one label per series [N], got shape {values.shape}")
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or not (values == np.round(values)).all():
            raise ValueError(f"{path}: {name} holds non-integer labels (e.g. {values[values != np.round(values)][:3]})"
                             "; labels must be whole numbers 0 .. C-1")
        values = values.astype(np.int64)
    if values.dtype.kind not in "iu":
        raise ValueError(f"{path}: {name} must hold integer labels, got dtype {values.dtype}")
    if len(values) and values.min() < 0:
        raise ValueError(f"{path}: {name} holds negative labels; labels must be 0 .. C-1")
    return values.astype(np.int64)


def _series(path, name, values) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype == object:
        raise ValueError(f"{path}: {name} is ragged (series of different lengths); pad them to one length "
                         "[N, T, F] before saving")
    if values.dtype.kind not in "fiub":
        raise ValueError(f"{path}: {name} must be numeric, got dtype {values.dtype}")
    if values.ndim == 2:
        values = values[:, :, None]
    if values.ndim != 3 or 0 in values.shape:
        raise ValueError(f"{path}: {name} must have shape [N, T, F] (or [N, T]) with no empty axis, "
                         f"got {values.shape}")
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise ValueError(f"{path}: {name} holds {bad} NaN or infinite values")
    return values.astype(np.float64)


def _time_first(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(x).to(torch.get_default_dtype()).permute(1, 0, 2).contiguous()


def _check_representable(path, name, values: np.ndarray) -> None:
    """Refuse series that torch's default float type cannot hold: values past its range, or a
    channel whose spread it loses (values below its smallest normal number, or an offset that
    swamps the variation); normalising inside the model would then see zeros or rounding."""
    dtype = np.dtype(str(torch.get_default_dtype()).replace("torch.", ""))
    cast = values.astype(dtype)
    if not np.isfinite(cast).all():
        raise ValueError(f"{path}: {name} holds values beyond {dtype}'s range (largest |value| "
                         f"{np.abs(values).max():.3g}); rescale the series before saving")
    exact, kept = values.std(axis=(0, 1)), cast.astype(np.float64).std(axis=(0, 1))
    # a spread within float64's own rounding of the values (e.g. sin² + cos²) is a constant channel
    varies = exact > 1e3 * np.finfo(np.float64).eps * np.abs(values).max(axis=(0, 1))
    lost = np.flatnonzero(varies & (np.abs(kept - exact) > 1e-2 * exact))
    if lost.size:
        k = int(lost[0])
        raise ValueError(f"{path}: {name}'s channel {k} varies by {exact[k]:.3g} around {values[:, :, k].mean():.3g}, "
                         f"which {dtype} cannot resolve; subtract its offset or rescale it before saving")


def load_series(path, split_seed: int = 0, val_fraction: float = 0.0) -> SeriesSplit:
    """Read, check and split a ``.npz`` file of labelled series (format: module doc).

    Held out: ``x_test``/``y_test`` if the file has them, else a stratified half chosen by
    ``split_seed``. With ``val_fraction`` > 0 the held-out part is instead that fraction of
    the training part (stratified, ``split_seed``), for tuning without touching the test set.

    >>> import tempfile
    >>> f = f"{tempfile.mkdtemp()}/toy.npz"
    >>> np.savez(f, x=np.random.default_rng(0).normal(size=(40, 25, 2)), y=np.arange(40) % 4)
    >>> data = load_series(f)
    >>> tuple(data.x_train.shape), tuple(data.x_eval.shape), data.n_inputs, data.n_classes
    ((25, 20, 2), (25, 20, 2), 2, 4)
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .npz file ({error})") from None
    with archive:
        keys = set(archive.files)
        unknown = sorted(keys - {"x", "y", "x_test", "y_test"})
        misspelt = [k for k in unknown if _LOOKS_LIKE_DATA.fullmatch(k)]
        if misspelt:  # series or labels under a name that would be ignored
            raise ValueError(f"{path}: array(s) {', '.join(misspelt)} would be ignored; a file holds x, y and "
                             "optionally x_test, y_test (names are case-sensitive)")
        if unknown:
            warnings.warn(f"{path}: arrays {', '.join(unknown)} are not read (only x, y, x_test, y_test are)",
                          UserWarning, stacklevel=2)
        for needed in ("x", "y"):
            if needed not in keys:
                raise ValueError(f"{path}: missing array '{needed}' (has: {', '.join(sorted(keys)) or 'none'})")
        if ("x_test" in keys) != ("y_test" in keys):
            raise ValueError(f"{path}: x_test and y_test go together (has only one of them)")
        try:
            x, y = _series(path, "x", archive["x"]), _labels(path, "y", archive["y"])
            test = (_series(path, "x_test", archive["x_test"]), _labels(path, "y_test", archive["y_test"])) \
                if "x_test" in keys else None
        except ValueError as error:
            if "Object arrays cannot be loaded" in str(error):
                raise ValueError(f"{path}: holds Python objects (ragged series?); save numeric arrays "
                                 "[N, T, F] only") from None
            raise
    if len(x) != len(y):
        raise ValueError(f"{path}: x has {len(x)} series but y has {len(y)} labels")
    if test is not None:
        if len(test[0]) != len(test[1]):
            raise ValueError(f"{path}: x_test has {len(test[0])} series but y_test has {len(test[1])} labels")
        if test[0].shape[1:] != x.shape[1:]:
            raise ValueError(f"{path}: x_test's series are {test[0].shape[1:]} [T, F] but x's are {x.shape[1:]}")
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"{path}: y holds one class only ({classes.tolist()}); a classifier needs two or more")
    if classes[-1] != len(classes) - 1:  # labels 0 .. C-1, each with training series
        missing = sorted(set(range(min(int(classes[-1]) + 1, 1000))) - set(classes.tolist()))[:3]
        raise ValueError(f"{path}: y's labels must be 0 .. C-1 with every class present; it holds "
                         f"{len(classes)} classes up to {int(classes[-1])} (no series of class "
                         f"{', '.join(map(str, missing))}{', ...' if len(missing) == 3 else ''})")
    if test is not None and not np.isin(test[1], classes).all():
        strange = np.unique(test[1][~np.isin(test[1], classes)])[:3].tolist()
        raise ValueError(f"{path}: y_test holds label(s) {strange} that no training series has (y's classes are "
                         f"0 .. {len(classes) - 1})")
    for name, values in (("x", x),) + ((("x_test", test[0]),) if test is not None else ()):
        _check_representable(path, name, values)
    counts = np.bincount(y)
    if test is None or val_fraction > 0:
        if counts[counts > 0].min() < 2:
            raise ValueError(f"{path}: class {int(np.flatnonzero(counts == 1)[0])} has a single series; "
                             "a stratified split needs two or more of each class")
    if test is None:  # the file's own split: a stratified half, as for the digits
        train, test_index = stratified_split(y, 0.5, split_seed)
        x, y, test = x[train], y[train], (x[test_index], y[test_index])
    if val_fraction > 0:  # validation from the training part only: the test part is never touched
        train, held = stratified_split(y, val_fraction, split_seed)
        x, y, test = x[train], y[train], (x[held], y[held])
    return SeriesSplit(_time_first(x), torch.as_tensor(y), _time_first(test[0]), torch.as_tensor(test[1]))
