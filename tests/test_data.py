"""Digits dataset, transforms and loaders: concrete values, splits, determinism, errors."""

import numpy as np
import pytest
import tonic
import torch
from sklearn.datasets import load_digits

from snnspin.data import (
    GaussianNoise,
    Hold,
    ImageToSequence,
    Resample,
    Scale,
    SequenceDataset,
    SequentialDigits,
    as_tensors,
    collate_time_first,
    make_loader,
)

DIGITS = load_digits()


def test_row_order_first_row_is_first_eight_points():
    ds = SequentialDigits("train")
    image = DIGITS.images[ds.indices[0]]
    seq, label = ds[0]
    assert seq.shape == (64, 1)
    assert seq[:8, 0].tolist() == image[0].tolist()
    assert seq[8:16, 0].tolist() == image[1].tolist()
    assert label == DIGITS.target[ds.indices[0]]


def test_column_and_snake_orders():
    image = DIGITS.images[5]
    column = ImageToSequence("column")(image)
    assert column[:8, 0].tolist() == image[:, 0].tolist()
    snake = ImageToSequence("snake")(image)
    assert snake[:8, 0].tolist() == image[0].tolist()
    assert snake[8:16, 0].tolist() == image[1, ::-1].tolist()
    assert snake[16:24, 0].tolist() == image[2].tolist()


def test_hold_repeats_each_point_exactly_k_times():
    seq = torch.arange(5.0).reshape(5, 1)
    held = Hold(3)(seq)
    assert held.shape == (15, 1)
    for k in range(5):
        assert held[3 * k : 3 * k + 3, 0].tolist() == [float(k)] * 3


def test_resample_by_delta_t_and_dt():
    seq = torch.arange(64.0).reshape(64, 1)
    assert Resample(delta_t=2.5, dt=0.5)(seq).shape == (320, 1)
    assert Resample(delta_t=0.1, dt=0.1)(seq).shape == (64, 1)
    assert Resample(delta_t=10.0, dt=0.5).steps == 20


def test_scale_to_unit_interval_and_amplitude():
    seq = torch.tensor([[0.0], [4.0], [16.0]])
    assert Scale()(seq).flatten().tolist() == [0.0, 0.25, 1.0]
    assert Scale(16.0, 3.0)(seq).flatten().tolist() == [0.0, 0.75, 3.0]


def test_split_sizes_disjoint_and_balanced():
    train, test = SequentialDigits("train"), SequentialDigits("test")
    assert len(train) + len(test) == 1797
    assert abs(len(train) - len(test)) <= 1
    assert not set(train.indices) & set(test.indices)
    counts_train = np.bincount(train.targets, minlength=10)
    counts_test = np.bincount(test.targets, minlength=10)
    assert np.all(np.abs(counts_train - counts_test) <= 1)


def test_validation_split_is_inside_training_half():
    train = SequentialDigits("train", val_fraction=0.2)
    val = SequentialDigits("val", val_fraction=0.2)
    full_train = SequentialDigits("train")
    assert set(train.indices) | set(val.indices) == set(full_train.indices)
    assert not set(train.indices) & set(val.indices)
    assert len(val) == pytest.approx(0.2 * len(full_train), abs=1)


def test_split_is_deterministic_under_seed():
    a, b = SequentialDigits("test", split_seed=3), SequentialDigits("test", split_seed=3)
    c = SequentialDigits("test", split_seed=4)
    assert np.array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)


def test_noise_reproducible_with_generator():
    seq = torch.zeros(64, 1)
    a = GaussianNoise(0.5, torch.Generator().manual_seed(7))(seq)
    b = GaussianNoise(0.5, torch.Generator().manual_seed(7))(seq)
    assert torch.equal(a, b) and a.std() > 0.3


def test_compose_with_tonic_and_dataset_transform():
    transform = tonic.transforms.Compose([Scale(16.0, 2.0), Resample(1.0, 0.5)])
    ds = SequentialDigits("test", transform=transform, target_transform=lambda y: y + 100)
    seq, label = ds[0]
    raw = SequentialDigits("test")[0][0]
    assert seq.shape == (128, 1)
    assert torch.equal(seq[0::2], raw * 2.0 / 16.0)
    assert label >= 100


@pytest.mark.parametrize("transform", [
    ImageToSequence("snake"), Scale(16.0, 2.0), Hold(2), Resample(2.0, 1.0),
    GaussianNoise(0.3, torch.Generator().manual_seed(0)),
])
def test_transforms_do_not_modify_input(transform):
    data = torch.arange(64.0).reshape(8, 8) if isinstance(transform, ImageToSequence) else torch.arange(8.0).reshape(8, 1)
    before = data.clone()
    out = transform(data)
    assert torch.equal(data, before)
    assert out.data_ptr() != data.data_ptr()
    with pytest.raises(Exception):  # frozen dataclass
        transform.__setattr__("x", 1)


def test_numpy_in_numpy_out_tensor_in_tensor_out():
    """tonic's convention, so that tonic's numpy transforms can follow ours."""
    import tonic

    out = ImageToSequence()(np.ones((8, 8), dtype=np.int64))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (64, 1)
    sequence = np.arange(8.0).reshape(8, 1)
    for transform in (Scale(16.0, 2.0), Hold(2), Resample(2.0, 1.0), GaussianNoise(0.1, torch.Generator())):
        assert isinstance(transform(sequence), np.ndarray), transform
        assert transform(sequence).dtype == np.float64  # a float input keeps its precision
        assert isinstance(transform(torch.as_tensor(sequence)), torch.Tensor), transform
    chain = tonic.transforms.Compose([Scale(16.0, 16.0), Resample(2.0, 0.5), tonic.transforms.NumpyAsType(np.float32)])
    assert chain(sequence).dtype == np.float32 and chain(sequence).shape == (32, 1)


def test_gaussian_noise_differs_per_call_epoch_and_worker_and_repeats_from_its_seed():
    def epochs(seed):
        noise = GaussianNoise(1.0, torch.Generator().manual_seed(seed))
        ds = SequenceDataset(np.zeros((8, 5, 1)), np.arange(8) % 2, transform=noise)
        loader = make_loader(ds, batch_size=2, shuffle=False, seed=0, num_workers=2)
        return [torch.cat([data[:, :, 0].T for data, _ in loader]) for _ in range(2)]  # [8, 5] per epoch

    first, second = epochs(7)
    samples = torch.cat([first, second])  # 16 noise draws: 8 samples (over 2 workers) × 2 epochs
    assert len({tuple(row.tolist()) for row in samples}) == 16  # every call, worker and epoch differs
    again = epochs(7)
    assert torch.equal(again[0], first) and torch.equal(again[1], second)
    assert not torch.equal(epochs(8)[0], first)


def test_collate_and_loader_are_time_first():
    ds = SequentialDigits("test")
    data, targets = next(iter(make_loader(ds, batch_size=7)))
    assert data.shape == (64, 7, 1) and targets.shape == (7,)
    assert torch.equal(data[:, 0], ds[0][0])
    shuffled_a = next(iter(make_loader(ds, batch_size=7, shuffle=True, seed=1)))[1]
    shuffled_b = next(iter(make_loader(ds, batch_size=7, shuffle=True, seed=1)))[1]
    assert torch.equal(shuffled_a, shuffled_b)


def test_as_tensors_full_batch():
    data, targets = as_tensors(SequentialDigits("test"))
    assert data.shape == (64, 899, 1) and targets.shape == (899,)


def test_generic_dataset_from_arrays():
    rng = np.random.default_rng(0)
    ds = SequenceDataset(rng.normal(size=(10, 20, 3)), np.arange(10) % 2, transform=Hold(2))
    x, y = ds[3]
    assert x.shape == (40, 3) and y == 1 and ds.sensor_size == (3, 1, 1) and ds.classes == [0, 1]
    batch = collate_time_first([ds[0], ds[1]])
    assert batch[0].shape == (40, 2, 3)


@pytest.mark.parametrize("make, match", [
    (lambda: ImageToSequence("spiral"), "unknown order 'spiral'"),
    (lambda: SequentialDigits(order="diagonal"), "unknown order 'diagonal'"),
    (lambda: Resample(delta_t=-1.0), "delta_t must be positive"),
    (lambda: Resample(delta_t=1.0, dt=0.0), "dt must be positive"),
    (lambda: Resample(delta_t=1.0, dt=0.3), "not a whole number of solver steps"),
    (lambda: Hold(0), "steps must be an integer >= 1"),
    (lambda: ImageToSequence()(torch.ones(64)), r"image must have shape \[H, W\]"),
    (lambda: SequenceDataset(np.ones((3, 4)), [0, 1]), "data has 3 samples"),
    (lambda: SequenceDataset(np.ones(3), [0, 1, 2]), r"data must have shape"),
    (lambda: GaussianNoise(-1.0), "std must be finite and >= 0"),
    (lambda: Scale(0.0), "max_value must be positive"),
    (lambda: SequentialDigits("val"), "needs val_fraction"),
])
def test_bad_input_names_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()
