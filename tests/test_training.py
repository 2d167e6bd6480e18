"""Training loop: schedule, clipping, resume equivalence, weights, CLI."""

import json
from dataclasses import asdict

import pytest
import torch

from snnspin.cli import main
from snnspin.config import TrainConfig
from snnspin.models import build_model
from snnspin.training import (check_resumable, check_sees_input, evaluate, load_weights, lr_factor, train, train_seed,
                              trained_models)

TINY = dict(layers=1, width=6, epochs=3, batch_size=300)


def test_lr_schedule_is_the_papers():
    f = lr_factor(8.077)
    assert f(0) == 1.0
    assert f(8.077) == 0.5  # after lr_decay epochs the rate is halved
    assert f(1) == pytest.approx(0.8898314421, abs=1e-10)  # 8.077 / 9.077
    assert f(8) == pytest.approx(0.5023947254, abs=1e-10)  # 8.077 / 16.077
    assert f(16) == pytest.approx(0.3354653819, abs=1e-10)  # 8.077 / 24.077
    assert [lr_factor(2.0)(e) for e in (0, 1, 2, 6)] == pytest.approx([1.0, 2 / 3, 0.5, 0.25])


def test_the_optimiser_steps_with_the_schedules_learning_rates(monkeypatch):
    used = []
    original = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        used.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    config = TrainConfig(layers=1, width=4, epochs=3, batch_size=450, lr0=0.1, lr_decay=2.0)
    _, history = train_seed(config, 0, progress=False)
    # 898 training digits in batches of 450: 2 steps per epoch at 0.1, 0.1 · 2/3, 0.1 · 1/2
    assert used == pytest.approx([0.1, 0.1, 0.0666666667, 0.0666666667, 0.05, 0.05], abs=1e-10)
    assert [r.lr for r in history] == pytest.approx([0.1, 0.0666666667, 0.05], abs=1e-10)


def test_training_leaves_the_global_rng_alone_and_repeats():
    config = TrainConfig(**TINY)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    _, first = train_seed(config, 1, progress=False)
    assert torch.equal(torch.random.get_rng_state(), before)  # neither reseeded nor drawn from
    torch.manual_seed(999)  # another global state changes nothing
    _, second = train_seed(config, 1, progress=False)
    assert _comparable(first) == _comparable(second)
    _, other = train_seed(config, 2, progress=False)
    assert _comparable(other) != _comparable(first)  # the seed, not the global RNG, decides


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_restores_the_mode_it_found(training):
    model = build_model(TrainConfig(layers=1, width=4))
    model.train(training)
    model.readout.train(not training)  # a mixed state is restored module by module
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    generator = torch.Generator().manual_seed(0)
    data, targets = torch.rand(64, 6, 1, generator=generator) * 16, torch.arange(6)
    loss, accuracy = evaluate(model, data, targets, batch_size=4)
    assert seen == [False, False]  # both batches ran in eval mode
    assert model.training is training and model.readout.training is (not training)
    assert all(m.training is training for name, m in model.named_modules() if not name.startswith("readout"))
    assert 0.0 <= accuracy <= 100.0 and loss > 0

    def fail(module, args):
        raise RuntimeError("broken forward")

    model.register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="broken forward"):
        evaluate(model, data, targets)
    assert model.training is training and model.readout.training is (not training)


def _comparable(history):
    return [{k: v for k, v in asdict(r).items() if k != "seconds"} for r in history]


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("model", ["spintronic", "lif"])
def test_resume_gives_the_uninterrupted_result(tmp_path, model):
    config = TrainConfig(model=model, **TINY)
    full_model, full_history = train_seed(config, 0, tmp_path / "full", progress=False)

    def stop_after_two(record):
        if record.epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_seed(config, 0, tmp_path / "cut", progress=False, on_epoch=stop_after_two)
    saved = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert len(saved["history"]) == 2 and not (tmp_path / "cut" / "weights.pt").exists()
    resumed_model, resumed_history = train_seed(config, 0, tmp_path / "cut", resume=True, progress=False)
    assert _comparable(resumed_history) == _comparable(full_history)
    for (name, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_finished_run_without_checkpoints_resumes_as_finished(tmp_path):
    # A committed run keeps weights.pt and history.json but not checkpoint.pt (.gitignore): resuming
    # it must not train again over its files, and growing it (no optimiser state) is refused.
    config = TrainConfig(model="ctrnn", seeds=2, **TINY)
    first = train(config, tmp_path / "run", progress=False)
    files = {p: p.read_bytes() for p in (tmp_path / "run").glob("seed_*/*") if p.name != "checkpoint.pt"}
    for path in (tmp_path / "run").glob("seed_*/checkpoint.pt"):
        path.unlink()
    again = train(config, tmp_path / "run", resume=True, progress=False)
    assert again["accuracy"] == first["accuracy"]
    for path, content in files.items():
        assert path.read_bytes() == content, path.name  # same weights, same history (its timings too)
    before = (tmp_path / "run" / "config.json").read_text()
    with pytest.raises(ValueError, match="finished after 3 epochs .*cannot go on to 4"):
        train(config.replace(epochs=4), tmp_path / "run", resume=True, progress=False)
    assert (tmp_path / "run" / "config.json").read_text() == before  # refused before anything is written
    with pytest.raises(ValueError, match="has 3 epochs done; --epochs 2 would shrink it"):
        train(config.replace(epochs=2), tmp_path / "run", resume=True, progress=False)
    with pytest.raises(ValueError, match="has seeds 0, 1 started or done; --seeds 1 would shrink it"):
        train(config.replace(seeds=1), tmp_path / "run", resume=True, progress=False)


def test_history_records_schedule_and_learning(tmp_path):
    config = TrainConfig(model="ctrnn", layers=1, width=16, epochs=4, tau=2.0, lr0=0.05)
    _, history = train_seed(config, 0, tmp_path, progress=False)
    assert [r.epoch for r in history] == [1, 2, 3, 4]
    assert [r.lr for r in history] == pytest.approx([0.05 * lr_factor(8.077)(e) for e in range(4)])
    assert history[-1].train_loss < history[0].train_loss
    assert history[-1].eval_acc > 30.0  # chance is 10 %
    on_disk = json.loads((tmp_path / "history.json").read_text())
    assert [r["eval_acc"] for r in on_disk] == [r.eval_acc for r in history]


def test_gradients_are_clipped_elementwise(monkeypatch):
    seen = []
    original = torch.nn.utils.clip_grad_value_

    def spy(parameters, clip_value):
        parameters = list(parameters)
        original(parameters, clip_value)
        seen.append(max(float(p.grad.abs().max()) for p in parameters if p.grad is not None))

    monkeypatch.setattr(torch.nn.utils, "clip_grad_value_", spy)
    train_seed(TrainConfig(clip=1e-3, epochs=1, layers=1, width=4, batch_size=450), 0, progress=False)
    assert seen and max(seen) == pytest.approx(1e-3)  # float32 of 1e-3; unclipped gradients are larger


def test_weights_load_weights_only_and_shape_errors(tmp_path):
    config = TrainConfig(**{**TINY, "epochs": 1})
    train_seed(config, 0, tmp_path, progress=False)
    state = torch.load(tmp_path / "weights.pt", weights_only=True)
    model = build_model(config)
    model.load_state_dict(state)
    load_weights(model, tmp_path / "weights.pt")
    wider = build_model(config.replace(width=7))
    with pytest.raises(ValueError, match=r"weights.pt: saved for another model or width \(size mismatch on "
                                         r"w_ext.0.weight: shape \(6, 1\) in the file but \(7, 1\) in the model"):
        load_weights(wider, tmp_path / "weights.pt")


def test_train_writes_run_folder_and_refuses_to_overwrite(tmp_path):
    config = TrainConfig(seeds=2, **{**TINY, "epochs": 1})
    summary = train(config, tmp_path / "run", progress=False)
    assert set(summary["accuracy"]) == {"0", "1"}
    assert summary["counts"] == {"neurons": 6, "synapses": 3 + 18 + 60}
    for name in ("config.json", "data.json", "summary.json", "curves.png", "seed_0/weights.pt", "seed_1/history.json"):
        assert (tmp_path / "run" / name).exists(), name
    # the run records what the data gave (the digits: 1 channel, 10 classes, raw pixels, epochs as epochs,
    # the last step's readout)
    assert TrainConfig.from_dict(json.loads((tmp_path / "run" / "config.json").read_text())) == \
        config.replace(n_inputs=1, n_classes=10, normalize="none", schedule="epochs", readout_time="last",
                       init_drive=0.0)
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(config, tmp_path / "run", progress=False)


def test_train_never_shrinks_a_run_and_checks_before_writing(tmp_path):
    config = TrainConfig(**{**TINY, "epochs": 2})
    train(config, tmp_path, progress=False)
    saved = (tmp_path / "config.json").read_bytes()
    with pytest.raises(ValueError, match="the run has 2 epochs done; --epochs 1 would shrink it"):
        train(config.replace(epochs=1), tmp_path, resume=True, progress=False)
    assert (tmp_path / "config.json").read_bytes() == saved
    with pytest.raises(ValueError, match="device 'cuda:99' is not available"):
        train(config.replace(device="cuda:99"), tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()


def test_check_resumable():
    saved = TrainConfig()
    check_resumable(saved, saved.replace(epochs=50, seeds=3))
    with pytest.raises(ValueError, match="tau: saved 14.12, requested 3.0"):
        check_resumable(saved, saved.replace(tau=3.0))


def test_cli_train_resume_and_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "--layers", "1", "--width", "4", "--epochs", "1", "--batch-size", "450", "--quiet", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "test accuracy per seed: seed 0:" in text and "4 neurons" in text
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 0
    history = json.loads((out / "seed_0" / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    assert main(["train", "--out", str(out), "--resume", "--tau", "2.0", "--quiet"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    with pytest.raises(SystemExit):
        main(["train", "--model", "transformer"])


def test_presets_and_cli_defaults(tmp_path):
    from snnspin.cli import _config_from_args, build_parser
    from snnspin.presets import TUNED, preset_config

    assert preset_config("ctrnn", "paper") == TrainConfig(model="ctrnn")
    assert preset_config("ctrnn").tau == TUNED["ctrnn"]["tau"]
    parse = lambda *a: _config_from_args(build_parser().parse_args(["train", *a]))[0]
    assert parse("--model", "ctrnn") == preset_config("ctrnn")
    assert parse("--model", "lif", "--preset", "paper", "--tau", "3") == TrainConfig(model="lif", tau=3.0)
    assert parse("--learn-tau").learn_tau is True and parse("--no-learn-tau").learn_tau is False
    with pytest.raises(ValueError, match="preset must be one of"):
        preset_config("ctrnn", "best")


def test_non_finite_gradient_skips_the_step_and_nan_loss_raises(monkeypatch):
    import snnspin.training as training

    original = training.build_model
    config = TrainConfig(layers=1, width=4, epochs=1, batch_size=300)

    def poisoned(config, seed):  # the first backward pass gives a NaN gradient
        model = original(config, seed)
        fired = []
        model.readout.weight.register_hook(lambda g: (fired.append(1), g * float("nan"))[1] if not fired else g)
        return model

    monkeypatch.setattr(training, "build_model", poisoned)
    with pytest.warns(RuntimeWarning, match="1 batch\\(es\\) had non-finite gradients"):
        model, history = train_seed(config, 0, progress=False)
    assert history[0].skipped == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())

    def broken(config, seed):
        model = original(config, seed)
        with torch.no_grad():
            model.readout.bias[0] = float("nan")
        return model

    monkeypatch.setattr(training, "build_model", broken)
    with pytest.raises(FloatingPointError, match="the loss became nan at epoch 1"):
        train_seed(config, 0, progress=False)


def test_weights_written_before_q_and_sigma_were_saved_still_load():
    """The committed runs' weights.pt predate the oscillators' Q and σ buffers."""
    from pathlib import Path

    run = Path(__file__).parent.parent / "benchmarks" / "results" / "accuracy" / "spintronic-tuned"
    config, models = trained_models(run, [0])
    (seed, model), = list(models)
    assert "neurons.0.q" not in torch.load(run / "seed_0" / "weights.pt", weights_only=True)
    assert float(model.neurons[0].q) == 0.0 and float(model.neurons[0].sigma) == 1.0
    assert model.readout.weight.abs().sum() > 0


def test_resume_with_a_preset_and_of_a_run_saved_before_the_data_fields(tmp_path):
    """Review finding: a resolved saved config was compared with an unresolved requested one."""
    out = tmp_path / "run"
    common = ["--layers", "1", "--width", "2", "--out", str(out), "--quiet"]
    assert main(["train", "--epochs", "1", *common]) == 0
    assert main(["train", "--epochs", "2", "--resume", "--preset", "tuned", *common]) == 0
    saved = json.loads((out / "config.json").read_text())
    for field in ("n_inputs", "n_classes", "normalize", "schedule"):  # as a run written before them
        saved.pop(field)
    (out / "config.json").write_text(json.dumps(saved))
    assert main(["train", "--epochs", "3", "--resume", *common]) == 0
    assert len(json.loads((out / "seed_0" / "history.json").read_text())) == 3


def test_a_network_that_cannot_see_its_input_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="with d_inter = 0 layer 0 keeps no connection from the input"):
        train(TrainConfig(layers=1, width=4, epochs=1, d_inter=0.0), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything is written
    deep = TrainConfig(layers=3, width=4, epochs=1, d_inter=0.03, n_inputs=64)  # inputs kept, layers 1-2 cut off
    with pytest.raises(ValueError, match="layer 1 keeps no connection from layer 0"):
        check_sees_input(build_model(deep))
