"""Batching: time-first ``[T, B, F]`` batches, as snnTorch's training loops expect.

tonic's ``PadTensors`` gives ``[B, T, F]`` unless ``batch_first=False``; these helpers are
time-first by construction.
"""

from __future__ import annotations

import torch


def collate_time_first(batch):
    """Collate ``[(sequence [T_i, F], label), ...]`` into ``(data [T, B, F], targets [B])``.

    Shorter sequences are padded with zeros at the end up to the longest T.

    >>> data, targets = collate_time_first([(torch.ones(3, 1), 0), (torch.ones(2, 1), 1)])
    >>> data.shape, targets.tolist(), data[:, 1, 0].tolist()
    (torch.Size([3, 2, 1]), [0, 1], [1.0, 1.0, 0.0])
    """
    sequences = [torch.as_tensor(s) for s, _ in batch]
    targets = torch.as_tensor([int(t) for _, t in batch], dtype=torch.long)
    data = torch.nn.utils.rnn.pad_sequence(sequences, batch_first=False)
    return data, targets


def make_loader(dataset, batch_size: int = 120, shuffle: bool = False, seed: int | None = None, **kwargs):
    """A ``DataLoader`` yielding time-first batches ``[T, B, F]`` and labels ``[B]``.

    ``seed`` fixes the shuffling order (and each worker's seed) independently of global RNG.

    >>> from snnspin.data import SequentialDigits
    >>> data, targets = next(iter(make_loader(SequentialDigits("test"), batch_size=120)))
    >>> data.shape, targets.shape
    (torch.Size([64, 120, 1]), torch.Size([120]))
    """
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_time_first,
        generator=generator, **kwargs,
    )


def as_tensors(dataset):
    """The whole dataset, transformed, as ``(data [T, N, F], targets [N])`` in one batch.

    Small datasets such as the digits fit in memory; slicing these tensors is much faster
    than a ``DataLoader`` for many short trainings.

    >>> from snnspin.data import SequentialDigits
    >>> data, targets = as_tensors(SequentialDigits("test"))
    >>> data.shape, targets.shape
    (torch.Size([64, 899, 1]), torch.Size([899]))
    """
    return collate_time_first([dataset[i] for i in range(len(dataset))])
