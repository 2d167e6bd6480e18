"""Own data from .npz files, and the path from a tonic event stream to a network."""

import numpy as np
import pytest
import torch

from snnspin.data import FramesToSequence, load_series


def _save(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_split_is_stratified_time_first_and_repeatable(tmp_path):
    x = np.random.default_rng(0).normal(size=(60, 30, 3))
    path = _save(tmp_path, x=x, y=np.arange(60) % 3)
    a, b = load_series(path, split_seed=1), load_series(path, split_seed=1)
    assert a.x_train.shape == (30, 30, 3) and a.n_inputs == 3 and a.n_classes == 3
    assert torch.equal(a.x_train, b.x_train) and torch.bincount(a.y_train).tolist() == [10, 10, 10]
    # the same series, only time first: every training series is a row of x
    rows = {tuple(np.round(r, 6).ravel()) for r in x.astype(np.float32)}
    assert all(tuple(np.round(s.numpy(), 6).ravel()) in rows for s in a.x_train.permute(1, 0, 2))
    assert not torch.equal(load_series(path, split_seed=2).y_train, a.y_train) or \
        not torch.equal(load_series(path, split_seed=2).x_train, a.x_train)
    val = load_series(path, val_fraction=0.2)
    assert val.x_train.shape[1] + val.x_eval.shape[1] == 30  # validation comes from the training half


def test_own_test_set_and_one_channel(tmp_path):
    path = _save(tmp_path, x=np.ones((8, 5)), y=[0, 1] * 4, x_test=np.zeros((4, 5)), y_test=[1.0, 0.0, 1.0, 0.0])
    data = load_series(path)
    assert data.x_train.shape == (5, 8, 1) and data.x_eval.shape == (5, 4, 1)
    assert data.y_eval.tolist() == [1, 0, 1, 0] and data.y_eval.dtype == torch.long


@pytest.mark.parametrize("arrays, match", [
    (dict(y=[0, 1]), "missing array 'x'"),
    (dict(x=np.ones((4, 3))), "missing array 'y'"),
    (dict(x=np.ones((4, 3)), y=[0, 1, 0]), "x has 4 series but y has 3 labels"),
    (dict(x=np.ones((4, 3)), y=[0.2, 1.7, 0, 1]), "non-integer labels"),
    (dict(x=np.ones((4, 3)), y=[0, 0, 0, 0]), "one class only"),
    (dict(x=np.ones((4, 3)), y=[0, -1, 0, -1]), "negative labels"),
    (dict(x=np.ones((4, 3)), y=["a", "b", "a", "b"]), "integer labels"),
    (dict(x=np.full((4, 3), np.nan), y=[0, 1, 0, 1]), "12 NaN or infinite values"),
    (dict(x=np.ones(4), y=[0, 1, 0, 1]), r"shape \[N, T, F\]"),
    (dict(x=np.ones((4, 3)), y=[0, 1, 1, 2]), "class 0 has a single series"),
    (dict(x=np.ones((4, 3)), y=[0, 1, 0, 1], x_test=np.ones((2, 3))), "x_test and y_test go together"),
    (dict(x=np.ones((4, 3)), y=[0, 1, 0, 1], x_test=np.ones((2, 4)), y_test=[0, 1]), "x_test's series are"),
    (dict(x=np.ones((4, 3)), y=[1, 2, 1, 2]), r"labels must be 0 \.\. C-1 .*no series of class 0\)"),
    (dict(x=np.ones((4, 3)), y=[0, 2, 0, 2]), r"2 classes up to 2 \(no series of class 1\)"),
    (dict(x=np.ones((4, 3)), y=[0, 2**40, 0, 2**40]), "no series of class 1, 2, 3, ..."),
    (dict(x=np.ones((4, 3)), y=[0, 1, 0, 1], x_test=np.ones((2, 3)), y_test=[0, 5]), r"y_test holds label\(s\) \[5\]"),
    (dict(x=np.ones((4, 3)), y=[0, 1, 0, 1], X_test=np.ones((2, 3)), Y_test=[0, 1]), "X_test, Y_test would be ignored"),
    (dict(x=np.ones((4, 3)), y=[0, 1, 0, 1], x_val=np.ones((2, 3))), "x_val would be ignored"),
    (dict(x=np.random.default_rng(0).normal(size=(4, 3)) * 1e-50, y=[0, 1, 0, 1]), "channel 0 varies by .*e-5.*cannot resolve"),
    (dict(x=1e6 + np.random.default_rng(0).normal(size=(4, 3)) * 1e-3, y=[0, 1, 0, 1]), "subtract its offset"),
    (dict(x=np.ones((4, 3)) * 1e50, y=[0, 1, 0, 1]), "beyond float32's range"),
])
def test_bad_files_get_one_line_naming_the_file(tmp_path, arrays, match):
    path = _save(tmp_path, **arrays)
    with pytest.raises(ValueError, match=match) as error:
        load_series(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_ragged_missing_and_not_npz(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.ones(3), np.ones(5)
    np.savez(tmp_path / "ragged.npz", x=ragged, y=np.array([0, 1]))
    with pytest.raises(ValueError, match="ragged"):
        load_series(tmp_path / "ragged.npz")
    with pytest.raises(ValueError, match="no such file"):
        load_series(tmp_path / "none.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a readable .npz file"):
        load_series(tmp_path / "text.npz")


def test_tonic_events_to_frames_to_a_network():
    """A synthetic event stream in tonic's structured dtype → ToFrame → [T, F] → a network."""
    import tonic

    from snnspin.config import TrainConfig
    from snnspin.models import SpintronicNetwork

    sensor_size = (34, 1, 2)  # (X, Y, P) as tonic's NMNIST/SHD-style sensors
    rng = np.random.default_rng(0)
    events = np.zeros(200, dtype=[("x", int), ("t", int), ("p", int)])
    events["x"], events["t"], events["p"] = rng.integers(0, 34, 200), np.sort(rng.integers(0, 10_000, 200)), \
        rng.integers(0, 2, 200)
    to_sequence = tonic.transforms.Compose([tonic.transforms.ToFrame(sensor_size=sensor_size, n_time_bins=20),
                                            FramesToSequence()])
    sequence = to_sequence(events)
    assert sequence.shape == (20, 68)
    # column p·34 + x counts the events of channel (p, x): all of them (tonic's last bin may drop the last one)
    want = np.bincount(events["p"] * 34 + events["x"], minlength=68)
    assert 0 <= (want - sequence.sum(0)).sum() <= 1 and (want >= sequence.sum(0)).all()
    batch = torch.as_tensor(np.stack([sequence, sequence]), dtype=torch.float32).permute(1, 0, 2)  # [T, B, F]
    net = SpintronicNetwork(TrainConfig(width=8), n_inputs=68, n_classes=3)
    assert net(batch).shape == (2, 3)


def test_metadata_arrays_are_named_not_refused_and_constant_channels_pass(tmp_path):
    t = np.linspace(0, 6, 30)
    x = np.stack([np.sin(t[None] * (1 + np.arange(8)[:, None] % 2)), np.sin(t) ** 2 + np.cos(t) ** 2 + 0 * t[None]
                  * np.ones((8, 1))], axis=-1)  # channel 1 is 1 up to float64 rounding
    path = _save(tmp_path, x=x, y=[0, 1] * 4, class_names=np.array(["low", "high"]))
    with pytest.warns(UserWarning, match="arrays class_names are not read"):
        data = load_series(path)
    assert data.n_inputs == 2 and float(data.x_train[:, :, 1].std()) < 1e-6
