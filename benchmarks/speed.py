"""Time of one full training step (forward, NLL, backward, clipping, Adam), interleaved.

Compares the fused sequence path (with the native C kernels, and with the torch kernels it
falls back to), the per-step reference path, the CTRNN twin's fused path, the cost of the
device models on the fused path (a chip's spread and 6-bit weights; thermal noise, alone and
with the spread), the same topology
built from snnTorch's RLeaky, and torch.nn.RNN (tanh) of the same size with the same readout.
Reports medians over repeats and ratios to nn.RNN measured in the same run, and writes
them to benchmarks/results/speed.md.

    python benchmarks/speed.py                 # all configurations, CPU
    python benchmarks/speed.py --repeats 3 --configs paper
    python benchmarks/speed.py --device cuda   # on a GPU, when one is present

A second table times 10 seeds at the paper's size trained one after another against
together in one fused call (``snnspin.ensemble``), 2, 5 or 10 networks per call.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import snntorch as snn
import torch
from torch import nn
from torch.nn import functional as F

from snnspin import pointwise
from snnspin.config import TrainConfig
from snnspin.ensemble import log_probs_together
from snnspin.models import build_model

CONFIGS = {
    "paper": dict(batch=120, width=32, substeps=1),
    "substeps10": dict(batch=120, width=32, substeps=10),
    "batch900": dict(batch=900, width=32, substeps=1),
    "width128": dict(batch=120, width=128, substeps=1),
}


class RLeakyNet(nn.Module):
    """3 layers of snnTorch RLeaky (all-to-all recurrence) with a linear readout of the last membrane."""

    def __init__(self, width, layers=3):
        super().__init__()
        self.fc = nn.ModuleList(nn.Linear(1 if i == 0 else width, width) for i in range(layers))
        self.lif = nn.ModuleList(snn.RLeaky(beta=0.9, linear_features=width) for _ in range(layers))
        self.readout = nn.Linear(width, 10)

    def forward(self, data):
        state = [lif.reset_mem() for lif in self.lif]
        for t in range(data.shape[0]):
            signal = data[t]
            for i, (fc, lif) in enumerate(zip(self.fc, self.lif)):
                spk, mem = lif(fc(signal), *state[i])
                state[i] = (spk, mem)
                signal = spk
        return F.log_softmax(self.readout(state[-1][1]), -1)


class RNNNet(nn.Module):
    def __init__(self, width, layers=3, substeps=1):
        super().__init__()
        self.rnn = nn.RNN(1, width, layers)
        self.readout = nn.Linear(width, 10)
        self.substeps = substeps

    def forward(self, data):
        if self.substeps > 1:
            data = data.repeat_interleave(self.substeps, 0)
        out, _ = self.rnn(data)
        return F.log_softmax(self.readout(out[-1]), -1)


def make_step(model):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(data, targets):
        loss = F.nll_loss(model(data), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)
        optimizer.step()

    return step


def with_kernels(kernels, step):
    """``step`` run with the fused path's pointwise kernels forced to ``kernels``."""

    def forced(data, targets):
        with pointwise.using(kernels):
            step(data, targets)

    return forced


def contenders(width, substeps, device):
    base = dict(width=width, substeps=substeps, delta_t=float(substeps))
    out = {
        "fused": build_model(TrainConfig(engine="fused", **base)),
        "fused, torch kernels": build_model(TrainConfig(engine="fused", **base)),
        "reference": build_model(TrainConfig(engine="reference", **base)),
        "ctrnn fused": build_model(TrainConfig(model="ctrnn", engine="fused", **base)),
        # device realism on the fused path: a chip's spread and k-bit weights, thermal noise
        "fused, 5 % mismatch, 6-bit weights": build_model(TrainConfig(engine="fused", mismatch=0.05, weight_bits=6,
                                                                      **base)),
        "fused, thermal noise": build_model(TrainConfig(engine="fused", thermal_power=0.001, **base)),
        "fused, thermal noise + 5 % mismatch": build_model(TrainConfig(engine="fused", thermal_power=0.001,
                                                                       mismatch=0.05, **base)),
        "snntorch RLeaky": RLeakyNet(width),
        "nn.RNN": RNNNet(width, substeps=substeps),
    }
    if substeps > 1:
        out.pop("snntorch RLeaky")  # no sub-stepping in a plain RLeaky loop
    steps = {name: make_step(model.to(device)) for name, model in out.items()}
    steps["fused, torch kernels"] = with_kernels(pointwise.TORCH, steps["fused, torch kernels"])
    return steps


def ensemble_steps(models, group):
    """One training step of every model, ``group`` networks at a time in one fused call
    (``snnspin.ensemble.log_probs_together``), each with its own Adam; ``group`` 0: as many steps
    of the first model alone (seeds trained one after another: each run keeps its network warm
    in the caches for all its steps)."""
    optimizers = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
    if group == 0:
        alone = make_step(models[0])

        def step(batches, targets):
            for _ in models:
                alone(batches[0], targets)

        return step

    def step(batches, targets):
        for first in range(0, len(models), group):
            chunk = slice(first, first + group)
            log_probs = log_probs_together(models[chunk], batches[chunk])
            loss = sum(F.nll_loss(p, targets) for p in log_probs)
            for optimizer in optimizers[chunk]:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for model, optimizer in zip(models[chunk], optimizers[chunk]):
                torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)
                optimizer.step()

    return step


def measure_ensemble(repeats, device, seeds=10, groups=(0, 1, 2, 5, 10)):
    """Seconds (median) for one training step of ``seeds`` paper-size networks, per group size."""
    spec = CONFIGS["paper"]
    models = [build_model(TrainConfig(engine="fused"), seed).to(device) for seed in range(seeds)]
    batches = [(torch.rand(64, spec["batch"], 1) * 16).to(device) for _ in models]
    targets = torch.randint(0, 10, (spec["batch"],), device=device)
    steps = {group: ensemble_steps(models, group) for group in groups}
    return _interleaved(steps, (batches, targets), repeats, device)


def _interleaved(steps, arguments, repeats, device):
    times = {name: [] for name in steps}
    for step in steps.values():  # warm-up
        step(*arguments)
    for _ in range(repeats):  # interleaved
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step(*arguments)
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(v) for name, v in times.items()}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(config_name, repeats, device):
    spec = CONFIGS[config_name]
    data = (torch.rand(64, spec["batch"], 1) * 16).to(device)
    targets = torch.randint(0, 10, (spec["batch"],), device=device)
    return _interleaved(contenders(spec["width"], spec["substeps"], device), (data, targets), repeats, device)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-ensemble", dest="ensemble", action="store_false",
                        help="skip the table of 10 seeds trained one after another or together")
    parser.add_argument("--ensemble-only", action="store_true", help="only the table of 10 seeds")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "speed.md"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    # subnormals flushed for every contender (the fused kernels flush them anyway): nn.RNN's BPTT
    # gradients, decaying over long sequences, otherwise fall into subnormal arithmetic
    torch.set_flush_denormal(True)
    torch.manual_seed(0)  # the contenders' initialisations that draw from the global generator
    lines = [
        "# Training-step time (forward, NLL, backward, clip, Adam)",
        "",
        f"Device: {device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads), "
        f"torch {torch.__version__}; medians of {args.repeats} interleaved repeats; 3 layers, 64 input points; subnormals flushed for every contender, seed 0. "
        f"`fused` uses the {pointwise.for_tensor(torch.zeros(1, device=device)).name} kernels "
        "(`snnspin.pointwise`); `fused, torch kernels` forces the torch ones.",
        "",
        "| configuration | contender | ms per step | × nn.RNN |",
        "| --- | --- | ---: | ---: |",
    ]
    if args.ensemble_only:
        lines = lines[:3] + [f"`python benchmarks/speed.py {' '.join(argv if argv is not None else sys.argv[1:])}`"]
    for name in [] if args.ensemble_only else args.configs:
        medians = measure(name, args.repeats, device)
        ref = medians["nn.RNN"]
        spec = CONFIGS[name]
        label = f"{name} (batch {spec['batch']}, width {spec['width']}, substeps {spec['substeps']})"
        for contender, seconds in medians.items():
            row = f"| {label} | {contender} | {seconds * 1e3:.1f} | {seconds / ref:.2f} |"
            print(row, flush=True)
            lines.append(row)
        speedup = medians["reference"] / medians["fused"]
        print(f"  fused is {speedup:.2f}x faster than the reference loop", flush=True)
        lines.append(f"| {label} | fused speed-up over reference | | {speedup:.2f}× |")
    if args.ensemble:
        medians = measure_ensemble(args.repeats, device)
        alone = medians[0]
        lines += ["", "## Ten seeds at the paper's size: one after another, or together", "",
                  "One training step of each of 10 networks (seeds 0-9, each its own batch and Adam), the networks "
                  "run `group` at a time in one fused call (`snnspin.ensemble`; 1: one call per network, the "
                  "networks taking turns), against 10 steps of one network (seeds trained one after another, "
                  "each run keeping its network warm); throughput relative to that, in the same run.", "",
                  "| networks per call | ms for 10 steps | ms per network | throughput × |", "| --- | ---: | ---: | ---: |"]
        for group, seconds in medians.items():
            label = "one after another" if group == 0 else str(group)
            row = f"| {label} | {seconds * 1e3:.1f} | {seconds * 1e2:.1f} | {alone / seconds:.2f} |"
            print(row, flush=True)
            lines.append(row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
