"""Which reading of Plouet et al. makes the paper's own design point train? (issue #15)

At the published point (``preset_config("spintronic", "paper")``: τ = 14.12 ns, lr0 = 0.149,
lr_decay = 8.077, S = 0.5, raw pixels 0..16, f_cut = 1 MHz, Δt = 1 ns, 30 epochs, batch 120,
3 × 32 neurons, densities 0.5/0.5) the spintronic network stays at chance. The paper leaves
several choices open; each row of the table below is one reading of them, trained on seeds
0, 1, 2, ... at the paper's point with everything else as the preset says.

    .venv/bin/python benchmarks/paper_point.py              # every reading, 3 seeds (more where marked)
    .venv/bin/python benchmarks/paper_point.py --seeds 5    # at least 5 seeds per reading
    .venv/bin/python benchmarks/paper_point.py --only paper lr-per-batch
    .venv/bin/python benchmarks/paper_point.py --fast       # a < 1 min check: 2 readings, 1 seed, 2 epochs

Results: ``benchmarks/results/paper-point.md`` and ``.csv``; one JSON per (reading, seed) in
``benchmarks/results/paper-point/<reading>/seed_<k>.json`` (the cache: a rerun skips what is
there, so an interrupted run loses at most the training in progress; a reading whose spec
changed is retrained). ``--fast`` writes under ``benchmarks/results/paper-point/fast/`` only.

How each reading is implemented ("config": fields of ``TrainConfig`` only, trained with
``snnspin.training.train_seed``; "script": code in this file, trained with this file's
loop, which reproduces ``train_seed`` exactly when no option is set (same batch order,
optimiser, schedule, clipping, evaluation)):

Input
- ``input-1/16`` (config ``input_scale=1/16``): pixels in [0, 1] instead of 0..16.
- ``zscore`` (config ``normalize="zscore"``): pixels shifted/scaled to mean 0, std 1 (training half).
  (``normalize="digits"`` is not a row: on the digits it is the identity to 0.2 %.)
- ``S-twice-on-input`` (config ``input_scale=0.5``): the amplifier S also sits in front of the
  first layer, on top of eq. 4's S (the package already multiplies W_ext·u + b by S in every
  layer, layer 0 included), i.e. the input enters as S²·W·u.
- ``no-S-on-input`` (config ``input_scale=2``): S only *between* layers (the text: "an
  amplification factor S between each layer"), not on the pixel drive: (S·W·2u = W·u).

Filter
- ``fcut-1GHz`` (config ``f_cut_mhz=1000``): f_cut read in GHz (ω_c·Δt = 6.3 instead of 0.0063).

Neuron equation
- ``tau-2pi`` (config ``tau=14.12/2π = 2.247``): the paper derives ω ≈ 7.1 GHz from τ = 1/(αω) with
  α = 0.01; if the code set the damping as γ = α·ω with ω = 2π·f, f = 7.1 GHz (Slavin's Γ = αω
  uses the angular frequency) while the printed τ is 1/(α f), the relaxation time that was run
  is 1/γ = 14.12/2π = 2.25 ns. (Also: Fig. 2b loses accuracy beyond Δt ≈ 2.5 ns, which the
  paper's own rule τ > Δt predicts for τ = 2.25 ns, not for 14.12 ns.)
- ``eq1-factor-2`` (config ``tau=7.06, gain=1.0``): eq. 1 kept with its factor 2
  (dx/dt = -2(γ - I(1 - x))x, Q = 0, σ = 1), which is eq. 2 with γ → 2γ and I → 2I.
- ``euler`` (config ``method="euler"``): forward Euler at dt = Δt, nothing done when x leaves [0, 1].
- ``euler-clamp`` (config ``method="euler"`` + script): Euler, then x clamped to [0, 1] after every step.
- ``x_min=...`` (config ``x_min``): a floor on x after every step (a thermal floor; x = 0 is absorbing).

Network wiring
- ``S-on-readout`` (script): the readout reads S·y (Fig. 1 draws an amplification box before the
  soft-max), logits = W_out (S y) + b.
- ``sync-update`` (script): every layer advances from the state of the previous step (layer n sees
  layer n-1 at t-1, as a simultaneous Euler step of the coupled ODEs would), instead of the
  package's sequential update (layer n sees layer n-1 at t).
- ``intra-x`` (script): the intra-layer term reads the unfiltered power x of the same layer at
  t-1 (the filters drawn "between layers"), the inter-layer term still reads y.
- ``readout-x`` (config ``readout="x"``): the readout reads x instead of y.

Initialisation (package: W uniform in ±init_scale/√fan_in with fan_in = in_features of the
full matrix (1 for the input, 32 otherwise), then masked; biases uniform in ±1/√fan_in)
- ``init-0.5``, ``init-2`` (config ``init_scale``).
- ``init-masked-fanin`` (script): fan_in counted after masking (d·32 = 16 per matrix), i.e. hidden
  weights and biases × √2 (the input's fan-in stays 1).
- ``init-design-rule`` (script): hidden weights (W_ext of layers 1-2, every W_int) uniform in ±0.707,
  so that S·⟨|W|⟩·√N·Δt = 1 at N = 32 (eq. 9-11) from the start.

- ``zero-bias`` (script): the trainable biases b start at 0.

Training
- ``lr0=0.0149`` (config): the earlier measurement, for reference.
- ``double-softmax`` (script): a SoftMax layer (Fig. 1) whose output the loss log-softmaxes again.
- ``..., N epochs`` (config ``epochs``): the paper does not give the number of epochs (30 is the
  package's default); these rows set it.
- ``lr-per-batch`` (script): lr = lr0 / (k / lr_decay + 1) with k counted in optimiser steps
  (``scheduler.step()`` after every batch, a common slip), not epochs.

Combination rows join the changes of the rows they name. ``ctrnn: ...`` rows train the CTRNN
twin (eq. 6-8, ``model="ctrnn"``) at the same points, as a check of the shared protocol.

Measured (1 torch thread, 2-core machine): a 30-epoch training takes ~7 s on the fused path,
~25-50 s on the script's own per-step loop (``euler-clamp``, ``sync-update``, ``intra-x``);
100 epochs ~25 s; the whole table ~55 min; ``--fast`` ~6 s.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from snnspin.io import atomic_write_json, atomic_write_text, read_json
from snnspin.defaults import resolve_for_data
from snnspin.models import SpintronicNetwork
from snnspin.nn.stateful import as_float_input
from snnspin.presets import PAPER_ACCURACY, preset_config
from snnspin.training import evaluate, load_data, lr_factor, prepare_model, train_seed

RESULTS = Path(__file__).parent / "results"
CACHE = RESULTS / "paper-point"
CHANCE = 10.0


@dataclass(frozen=True)
class Reading:
    """One reading of the paper: config changes, script options, and a judgement."""

    name: str
    changes: dict = field(default_factory=dict)  # TrainConfig fields
    options: dict = field(default_factory=dict)  # script options (see Variant and train_custom)
    physical: str = "yes"  # physically consistent? yes / no / ...
    why: str = ""
    seeds: int = 3  # seeds for this row at least (raised by --seeds)

    @property
    def how(self) -> str:
        parts = [f"{k}={_fmt(v)}" for k, v in self.changes.items()]
        parts += [f"script:{k}" if v is True else f"script:{k}={_fmt(v)}" for k, v in self.options.items()]
        return ", ".join(parts) or "preset as is"

    def spec_hash(self, epochs: int) -> str:
        spec = json.dumps({"changes": self.changes, "options": self.options, "epochs": epochs}, sort_keys=True)
        return hashlib.sha1(spec.encode()).hexdigest()[:12]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def combine(name: str, *parts: Reading, physical: str, why: str, seeds: int = 3, **extra) -> Reading:
    """A reading joining the changes and options of ``parts`` (later ones win), plus ``changes``/``options``."""
    changes, options = {}, {}
    for p in parts:
        changes.update(p.changes)
        options.update(p.options)
    changes.update(extra.pop("changes", {}))
    options.update(extra.pop("options", {}))
    return Reading(name, changes, options, physical, why, seeds)


# ---- single readings -------------------------------------------------------------------------
R = {r.name: r for r in [
    Reading("paper", physical="yes", why="the preset: the paper's published values as the package reads them"),
    Reading("lr0=0.0149", dict(lr0=0.0149), physical="yes (not the paper's lr0)",
            why="the earlier measurement, for reference: 10× below the published lr0"),
    Reading("input-1/16", dict(input_scale=1 / 16), physical="yes",
            why="pixels in [0, 1]: a choice of current units, nothing physical changes"),
    Reading("zscore", dict(normalize="zscore"), physical="yes (negative input currents)",
            why="mean 0, std 1: the input drive becomes signed"),
    Reading("S-twice-on-input", dict(input_scale=0.5), physical="yes",
            why="an amplifier S in front of layer 0 as well (Fig. 1 boxes)"),
    Reading("no-S-on-input", dict(input_scale=2.0), physical="yes",
            why="S only between layers, as the text says"),
    Reading("fcut-1GHz", dict(f_cut_mhz=1000.0), physical="no: contradicts the stated 1 MHz",
            why="f_cut read in GHz; the filter then passes only fast changes"),
    Reading("eq1-factor-2", dict(tau=14.12 / 2, gain=1.0), physical="yes (eq. 1 as printed)",
            why="keeps eq. 1's factor 2: γ → 2γ, I → 2I (τ = 7.06 ns, S = 1)"),
    Reading("euler", dict(method="euler"), physical="no: x leaves [0, 1]",
            why="explicit Euler at dt = Δt = 1 ns, no bound on x"),
    Reading("euler-clamp", dict(method="euler"), dict(clamp=True), physical="partly: x=0 absorbs",
            why="explicit Euler at Δt, x clamped to [0, 1] after each step"),
    Reading("x_min=1e-3", dict(x_min=1e-3), physical="yes (thermal floor, not in the paper)",
            why="a floor x ≥ 1e-3 after every step: dead neurons can recover"),
    Reading("x_min=1e-2", dict(x_min=1e-2), physical="yes (thermal floor, not in the paper)",
            why="a floor x ≥ 0.01 after every step"),
    Reading("S-on-readout", {}, dict(readout_gain=True), physical="yes (Fig. 1 amplifier box)",
            why="logits = W_out (S y) + b"),
    Reading("sync-update", {}, dict(sync=True), physical="yes (one Δt transport delay per layer)",
            why="layer n reads layer n-1 at t-1 (simultaneous update of all layers)"),
    Reading("intra-x", {}, dict(intra_x=True), physical="yes",
            why="intra-layer term reads x (unfiltered) of the same layer at t-1"),
    Reading("readout-x", dict(readout="x"), physical="yes", why="readout of x instead of y"),
    Reading("init-0.5", dict(init_scale=0.5), physical="yes", why="weights × 0.5 at initialisation"),
    Reading("init-2", dict(init_scale=2.0), physical="yes", why="weights × 2 at initialisation"),
    Reading("init-masked-fanin", {}, dict(init="masked_fanin"), physical="yes",
            why="fan-in counted after masking (16): hidden weights and biases × √2"),
    Reading("init-design-rule", {}, dict(init="design_rule"), physical="yes",
            why="hidden weights uniform ±0.707: S⟨|W|⟩√32·Δt = 1 at the start (eq. 9-11)"),
    Reading("tau-2pi", dict(tau=14.12 / (2 * math.pi)), physical="yes",
            why="γ = α·ω computed with ω = 2π·7.1 GHz while τ = 1/(α·7.1 GHz) was printed: "
                "the relaxation time the code ran is 14.12/2π = 2.25 ns"),
    Reading("zero-bias", {}, dict(zero_bias=True), physical="yes",
            why="trainable biases b start at 0 (the package: ±1/√fan_in, i.e. ±1 in layer 0, "
                "which leaves ~1/3 of layer 0 dead at initialisation)"),
    Reading("double-softmax", {}, dict(double_softmax=True), physical="yes (a software slip)",
            why="a SoftMax layer (Fig. 1) followed by a loss that takes log-softmax again"),
    Reading("lr-per-batch", {}, dict(per_batch_lr=True), physical="yes (a training choice)",
            why="the schedule counts optimiser steps, not epochs"),
]}

# ---- combinations (chosen after the single readings; see the report) --------------------------
COMBOS = [
    combine("lr-per-batch + input-1/16", R["lr-per-batch"], R["input-1/16"], physical="yes",
            why="per-batch schedule, pixels in [0, 1]"),
    combine("lr-per-batch + no-S-on-input", R["lr-per-batch"], R["no-S-on-input"], physical="yes",
            why="per-batch schedule, S only between layers"),
    combine("lr-per-batch + x_min=1e-3", R["lr-per-batch"], R["x_min=1e-3"], physical="yes",
            why="per-batch schedule and a thermal floor 1e-3"),
    combine("lr-per-batch + x_min=1e-2", R["lr-per-batch"], R["x_min=1e-2"], physical="yes",
            why="per-batch schedule and a thermal floor 0.01"),
    combine("lr-per-batch + zero-bias", R["lr-per-batch"], R["zero-bias"], physical="yes",
            why="per-batch schedule, biases start at 0"),
    combine("lr-per-batch + fcut-1GHz", R["lr-per-batch"], R["fcut-1GHz"], physical="no (f_cut)",
            why="per-batch schedule with f_cut in GHz"),
    combine("fcut-1GHz + x_min=1e-2", R["fcut-1GHz"], R["x_min=1e-2"], physical="no (f_cut)",
            why="f_cut in GHz and a thermal floor 0.01"),
    combine("lr-per-batch + fcut-1GHz + x_min=1e-2", R["lr-per-batch"], R["fcut-1GHz"], R["x_min=1e-2"],
            physical="no (f_cut)", why="the three partial fixes together"),
]

# ---- τ = 14.12/2π combined with the other readings ------------------------------------------------
TAU2PI = [combine(f"tau-2pi + {name}", R["tau-2pi"], R[name], physical=physical, why=why) for name, physical, why in [
    ("x_min=1e-3", "yes", "and a thermal floor 1e-3"),
    ("x_min=1e-2", "yes", "and a thermal floor 0.01"),
    ("lr-per-batch", "yes", "and the per-batch schedule"),
    ("input-1/16", "yes", "and pixels in [0, 1]"),
    ("S-twice-on-input", "yes", "and S² on the pixel drive"),
    ("no-S-on-input", "yes", "and S only between layers"),
    ("zero-bias", "yes", "and biases starting at 0"),
    ("init-masked-fanin", "yes", "and fan-in counted after masking"),
    ("readout-x", "yes", "and the readout on x"),
    ("S-on-readout", "yes", "and S in front of the readout"),
    ("sync-update", "yes", "and the simultaneous update"),
    ("fcut-1GHz", "no (f_cut)", "and f_cut in GHz"),
]]
TAU2PI.append(combine("tau-2pi + eq1-factor-2", R["tau-2pi"], physical="yes",
                      why="both: eq. 1's factor 2 and the 2π (τ = 1.12 ns, S = 1)",
                      changes=dict(tau=14.12 / (4 * math.pi), gain=1.0)))

# ---- the number of epochs (the paper does not give it) ------------------------------------------
EPOCHS = [
    combine("paper, 100 epochs", R["paper"], physical="yes", why="the preset trained longer",
            changes=dict(epochs=100)),
    combine("tau-2pi, 60 epochs", R["tau-2pi"], physical="yes", why="τ = 2.25 ns, 60 epochs",
            changes=dict(epochs=60)),
    combine("tau-2pi, 100 epochs", R["tau-2pi"], physical="yes", why="τ = 2.25 ns, 100 epochs",
            changes=dict(epochs=100), seeds=10),
    combine("tau-2pi, 150 epochs", R["tau-2pi"], physical="yes", why="τ = 2.25 ns, 150 epochs",
            changes=dict(epochs=150)),
    combine("tau-2pi + x_min=1e-2, 100 epochs", R["tau-2pi"], R["x_min=1e-2"], physical="yes",
            why="with a thermal floor 0.01, 100 epochs", changes=dict(epochs=100), seeds=10),
    combine("tau-2pi + S-twice-on-input, 100 epochs", R["tau-2pi"], R["S-twice-on-input"], physical="yes",
            why="with S² on the pixel drive, 100 epochs", changes=dict(epochs=100), seeds=10),
    combine("tau-2pi + x_min=1e-2 + S-twice-on-input, 100 epochs", R["tau-2pi"], R["x_min=1e-2"],
            R["S-twice-on-input"], physical="yes", why="floor 0.01 and S² on the pixel drive, 100 epochs",
            changes=dict(epochs=100)),
    combine("tau-2pi + lr-per-batch, 100 epochs", R["tau-2pi"], R["lr-per-batch"], physical="yes",
            why="with the per-batch schedule, 100 epochs", changes=dict(epochs=100), seeds=10),
]

#: The CTRNN twin (eq. 6-8) at the same points: a reading of the shared protocol should train it too.
TWIN = [
    Reading("ctrnn: paper", dict(model="ctrnn"), physical="—", why="the twin at the paper's point"),
    Reading("ctrnn: tau-2pi", dict(model="ctrnn", tau=14.12 / (2 * math.pi)), physical="—",
            why="the twin with τ = 14.12/2π = 2.25 ns"),
    Reading("ctrnn: tau-2pi, 100 epochs", dict(model="ctrnn", tau=14.12 / (2 * math.pi), epochs=100), physical="—",
            why="the twin with τ = 2.25 ns, 100 epochs"),
    Reading("ctrnn: tau-2pi + input-1/16, 100 epochs",
            dict(model="ctrnn", tau=14.12 / (2 * math.pi), input_scale=1 / 16, epochs=100), physical="—",
            why="the twin with τ = 2.25 ns and pixels in [0, 1], 100 epochs"),
    Reading("ctrnn: paper, 100 epochs", dict(model="ctrnn", epochs=100), physical="—",
            why="the twin at the paper's point, 100 epochs"),
]

READINGS = list(R.values()) + COMBOS + TAU2PI + EPOCHS + TWIN
FAST = ["paper", "lr-per-batch"]


# ---- the script's model and loop ---------------------------------------------------------------
class _GainThen(torch.nn.Module):
    """readout(S · v): an amplifier S in front of a linear readout."""

    def __init__(self, gain: float, inner):
        super().__init__()
        self.gain, self.inner = gain, inner

    def forward(self, v):
        return self.inner(self.gain * v)


class _SoftmaxAfter(torch.nn.Module):
    """softmax(readout(v)): with the network's log-softmax on top, a soft-max taken twice."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, v):
        return torch.softmax(self.inner(v), dim=-1)


class Variant(SpintronicNetwork):
    """``SpintronicNetwork`` with the script's options:

    readout_gain: logits = W_out (S v) + b;  init: "masked_fanin" | "design_rule";
    zero_bias: the layers' trainable biases b start at 0;  double_softmax: log-softmax(softmax(logits));
    clamp: x clamped to [0, 1] after every step;  sync: layer n reads layer n-1 at t-1;
    intra_x: the intra-layer term reads x instead of y. clamp/sync/intra_x run this class's own
    per-step loop (one solver step per input point, the reference layers' update functions)."""

    def __init__(self, config, seed, n_inputs, n_classes, options):
        super().__init__(config, seed, n_inputs, n_classes)
        self.options = dict(options)
        if self.options.get("readout_gain"):
            self.readout = _GainThen(config.gain, self.readout)
        if self.options.get("double_softmax"):
            self.readout = _SoftmaxAfter(self.readout)
        init = self.options.get("init")
        with torch.no_grad():
            if self.options.get("zero_bias"):
                for layer in self.w_ext:
                    layer.bias.zero_()
            if init == "masked_fanin":
                for layer in list(self.w_ext)[1:] + list(self.w_int):
                    factor = 1.0 / math.sqrt(layer.mask.float().mean().item())  # √(in / (d·in))
                    layer.weight.mul_(factor)
                    if layer.bias is not None:
                        layer.bias.mul_(factor)
            elif init == "design_rule":
                n = config.width * (config.d_inter + config.d_intra)
                bound = 2.0 / (config.gain * math.sqrt(n) * config.delta_t)  # ⟨|W|⟩ = bound / 2
                generator = torch.Generator().manual_seed(10_000 + seed)
                for layer in list(self.w_ext)[1:] + list(self.w_int):
                    fresh = (torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * bound
                    layer.weight.copy_(fresh * layer.mask)
            elif init is not None:
                raise ValueError(f"unknown init {init!r}")
        self.own_loop = any(self.options.get(k) for k in ("clamp", "sync", "intra_x"))

    def fused_reason(self):
        return "script loop" if self.own_loop else super().fused_reason()

    def forward(self, data, record=False):
        if not self.own_loop:
            return super().forward(data, record)
        if record or self.config.substeps != 1:
            raise ValueError("the script's loop has no record and one solver step per point")
        data = as_float_input(data)
        data = (data - self.input_shift) * (self.input_gain * self.config.input_scale)
        layers, batch = range(self.config.layers), data.shape[1]
        like = data.new_zeros(batch, self.config.width)
        xs = [self.neurons[i].rest_state(like)[0] for i in layers]
        ys = [torch.zeros_like(like) for _ in layers]
        w_ext = [(m.effective_weight(), m.bias) for m in self.w_ext]
        w_int = [m.effective_weight() for m in self.w_int]
        clamp, sync, intra_x = (bool(self.options.get(k)) for k in ("clamp", "sync", "intra_x"))
        for t in range(data.shape[0]):
            new_x, new_y = list(xs), list(ys)
            for i in layers:
                signal = data[t] if i == 0 else (ys[i - 1] if sync else new_y[i - 1])
                own = xs[i] if intra_x else ys[i]
                syn = F.linear(signal, *w_ext[i]) + F.linear(own, w_int[i])
                x_next, _ = self.neurons[i](syn, xs[i])
                if clamp:
                    x_next = x_next.clamp(0.0, 1.0)
                new_y[i], _ = self.filters[i](x_next, (ys[i], xs[i]))
                new_x[i] = x_next
            xs, ys = new_x, new_y
        self.final_states = torch.stack(xs).detach()
        out = ys[-1] if self.config.readout == "y" else xs[-1]
        return F.log_softmax(self.readout(out), dim=-1)


class _Record:
    """What this script keeps of an epoch (the fields of ``EpochRecord`` it reads)."""

    def __init__(self, epoch, lr, train_acc, eval_acc, dead, saturated, skipped):
        self.epoch, self.lr, self.train_acc, self.eval_acc = epoch, lr, train_acc, eval_acc
        self.dead, self.saturated, self.skipped = dead, saturated, skipped


def train_custom(config, seed, options, data, on_epoch):
    """``train_seed``'s protocol with the script's options (``Variant``; ``per_batch_lr``)."""
    config = resolve_for_data(config, data)
    (x_train, y_train), (x_eval, y_eval) = data
    model = Variant(config, seed, config.n_inputs, config.n_classes, options)
    prepare_model(model, config, x_train)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config.lr_decay))
    per_batch = bool(options.get("per_batch_lr"))
    n = x_train.shape[1]
    for epoch in range(config.epochs):
        lr = optimizer.param_groups[0]["lr"]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(1_000_003 * seed + epoch))  # as training
        correct, skipped = 0, 0
        model.train()
        for first in range(0, n, config.batch_size):
            index = order[first: first + config.batch_size]
            log_probs = model(x_train[:, index])
            loss = F.nll_loss(log_probs, y_train[index])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss.item()} at epoch {epoch + 1}")
            correct += int((log_probs.argmax(-1) == y_train[index]).sum())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None):
                torch.nn.utils.clip_grad_value_(model.parameters(), config.clip)
                optimizer.step()
            else:
                skipped += 1
            if per_batch:
                scheduler.step()
        if not per_batch:
            scheduler.step()
        _, eval_acc, health = evaluate(model, x_eval, y_eval, health=True)
        on_epoch(_Record(epoch + 1, lr, 100.0 * correct / n, eval_acc, health["dead"], health["saturated"], skipped))
    return model


@torch.no_grad()
def dead_or_floored(model, x_eval, x_min: float) -> list[float]:
    """Per layer, the fraction of neurons with x < max(1e-3, 1.001 x_min) after the last step of
    the test sequences: dead, or held at the floor x_min (where the package's 1e-3 test says 0)."""
    model.eval()
    model(x_eval)
    threshold = max(1e-3, 1.001 * x_min)
    return (model.final_states < threshold).float().mean((1, 2)).tolist()


def epochs_of(reading: Reading, default: int, fast: bool) -> int:
    """The reading's own ``epochs`` if it sets one (the paper does not say how many), else ``default``;
    ``--fast`` always 2."""
    return 2 if fast else int(reading.changes.get("epochs", default))


def run_one(reading: Reading, seed: int, epochs: int, data) -> dict:
    """Train one seed of a reading; the result dict that the cache keeps."""
    changes = dict(reading.changes)
    model_name = changes.pop("model", "spintronic")
    if reading.options and model_name != "spintronic":
        raise ValueError("the script's options apply to the spintronic network only")
    config = preset_config(model_name, "paper", **{**changes, "epochs": epochs})  # epochs: see epochs_of
    records, error, model = [], None, None
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if reading.options:
                model = train_custom(config, seed, reading.options, data, records.append)
            else:
                model, _ = train_seed(config, seed, progress=False, data=data, on_epoch=records.append)
        except (FloatingPointError, RuntimeError, ValueError) as e:  # a diverged run is a result
            error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    seconds = time.perf_counter() - start
    last = records[-1] if records else None
    return {
        "reading": reading.name, "seed": seed, "epochs": epochs, "spec": reading.spec_hash(epochs),
        "how": reading.how, "diverged": error, "epochs_done": len(records),
        "acc": last.eval_acc if (last and error is None) else CHANCE if error else None,
        "last_finite_acc": last.eval_acc if last else None,
        "best_acc": max(r.eval_acc for r in records) if records else None,
        "curve": [round(r.eval_acc, 2) for r in records],
        "train_acc": last.train_acc if last else None,
        "dead": last.dead if last else None, "saturated": last.saturated if last else None,
        "dead_or_floored": dead_or_floored(model, data[1][0], config.x_min) if model is not None else None,
        "skipped_batches": sum(r.skipped for r in records), "seconds": seconds,
    }


# ---- table -------------------------------------------------------------------------------------
def summarize(reading: Reading, results: list[dict]) -> dict:
    acc = np.array([r["acc"] for r in results], dtype=float)
    ok = [r.get("dead_or_floored") or r["dead"] for r in results if r["dead"] and r["diverged"] is None]
    dead = [np.mean(d) for d in ok]
    dead_layers = ok
    return {
        "reading": reading.name, "how": reading.how, "n": len(results), "mean": acc.mean(), "std": acc.std(),
        "min": acc.min(), "max": acc.max(), "per_seed": acc.tolist(),
        "diverged": sum(r["diverged"] is not None for r in results),
        "best_epoch_mean": float(np.mean([r["best_acc"] for r in results if r["best_acc"] is not None] or [np.nan])),
        "rising": float(np.mean([r["curve"][-1] - r["curve"][-6] for r in results if len(r["curve"]) >= 6]
                                or [np.nan])),
        "dead": float(np.mean(dead)) if dead else float("nan"),
        "dead_layers": np.mean(dead_layers, 0).tolist() if dead_layers else None,
        "seconds": float(np.mean([r["seconds"] for r in results])),
        "physical": reading.physical, "why": reading.why,
    }


def write_tables(rows: list[dict], md_path: Path, epochs: int, conclusion: str) -> None:
    paper_mean, paper_std = PAPER_ACCURACY["spintronic"]
    head = ("| reading | implemented as | accuracy % (mean ± std, n) | per seed | last-5-epoch change | "
            "dead at end (mean; L0/L1/L2) | physically consistent? | why |")
    lines = [
        "# The paper's design point under different readings (issue #15)",
        "",
        f"Spintronic network, `preset_config(\"spintronic\", \"paper\")` plus the changes named; {epochs} epochs "
        "unless the row sets `epochs`; "
        f"test accuracy after the last epoch on the 899 held-out digits (split seed 0); the paper reports "
        f"{paper_mean} ± {paper_std} % (10 seeds). Std is over seeds (population). A diverged run (NaN loss) "
        f"counts as {CHANCE:g} %. 'Last-5-epoch change': accuracy at the last epoch minus five epochs earlier "
        "(mean over seeds; > 0: still rising). Dead: x < 1e-3 after the last step of the test sequences "
        "(with a floor x_min: x < 1.001·x_min, i.e. held at the floor). "
        "Generated by `benchmarks/paper_point.py` (see its docstring for how each reading is implemented).",
        "",
        head,
        "| " + " | ".join(["---"] * 8) + " |",
    ]
    for s in rows:
        acc = f"{s['mean']:.2f} ± {s['std']:.2f} (n={s['n']})"
        if s["diverged"]:
            acc += f", {s['diverged']} diverged"
        seeds = " / ".join(f"{a:.1f}" for a in s["per_seed"])
        layers = "/".join(f"{d:.2f}" for d in s["dead_layers"]) if s["dead_layers"] else "—"
        dead = f"{s['dead']:.2f} ({layers})" if s["dead_layers"] else "—"
        rising = f"{s['rising']:+.1f}" if not math.isnan(s["rising"]) else "—"
        lines.append(f"| {s['reading']} | `{s['how']}` | {acc} | {seeds} | {rising} | {dead} | {s['physical']} | "
                     f"{s['why']} |")
    lines += ["", "## Conclusion", "", conclusion, ""]
    atomic_write_text(md_path, "\n".join(lines))
    with open(md_path.with_suffix(".csv.tmp"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["reading", "how", "n", "mean", "std", "min", "max", "per_seed", "diverged",
                         "last5_change", "dead_mean", "dead_layers", "physical", "why", "seconds_per_run"])
        for s in rows:
            writer.writerow([s["reading"], s["how"], s["n"], f"{s['mean']:.3f}", f"{s['std']:.3f}",
                             f"{s['min']:.2f}", f"{s['max']:.2f}", " ".join(f"{a:.2f}" for a in s["per_seed"]),
                             s["diverged"], f"{s['rising']:.2f}", f"{s['dead']:.3f}",
                             " ".join(f"{d:.3f}" for d in s["dead_layers"] or []), s["physical"], s["why"],
                             f"{s['seconds']:.1f}"])
    md_path.with_suffix(".csv.tmp").replace(md_path.with_suffix(".csv"))


def conclusion_text(rows: list[dict], target: float = 85.0) -> str:
    """A generated first line (best rows); the hand-written judgement is CONCLUSION below."""
    ranked = sorted(rows, key=lambda s: -s["mean"])
    reaching = [s for s in ranked if s["mean"] >= target]
    best = ", ".join(f"{s['reading']} {s['mean']:.1f} ± {s['std']:.1f} % (n={s['n']})" for s in ranked[:4])
    head = (f"Readings at ≥ {target:g} % mean: {', '.join(s['reading'] for s in reaching) or 'none'}. "
            f"Best four: {best}.")
    return head + ("\n\n" + CONCLUSION if CONCLUSION else "")


#: Written by hand from the measured table (10 seeds where n = 10; rerunning with more seeds updates
#: the table and the generated line above it, not this text).
CONCLUSION = """\
**No reading of the printed numbers alone trains at the paper's point.** With τ = 14.12 ns every
single change stays at chance or far below (best: lr0 = 0.0149, 72 %; per-batch schedule, 58 %;
f_cut in GHz, 51 %; a floor x_min = 0.01, 47 %), and so do their combinations (≤ 64 %) and
100 epochs (39 %). Pixel scale and normalisation (chance), S on the input (twice: 18 %; only
between layers: 35 %) or on the readout (chance), initialisation (≤ 17 %), Euler (diverges on the
first batch with raw pixels; clamped to [0, 1]: chance), synchronous update, intra-layer x, zero
biases, double soft-max (all chance). The likely cause is the size of the Adam step (lr0 = 0.149
per weight per step) against the neuron's damping γ = 1/τ = 0.071 /ns: a few steps move drives by
more than γ and neurons fall into the absorbing x = 0 (50-60 % dead at the end; every change that
helps at τ = 14.12 ns either shrinks the steps or lets neurons come back).

**The reading that trains: τ = 14.12 / 2π = 2.25 ns** (`tau=2.2473`), i.e. the code computed the
damping as γ = α·ω with ω = 2π·f, f = 7.1 GHz, while the paper printed τ = 1/(α·f). It is
physically self-consistent (a 7.1 GHz oscillator with α = 0.01 relaxes in 1/(α·2π·f) = 2.24 ns),
it explains Fig. 2b (accuracy drops beyond Δt ≈ 2.5 ns, where the paper's own rule τ > Δt fails
for τ = 2.25 ns, not for 14.12 ns) and it sits where this package's own tuning found the optimum
(τ = 1.97 ns). At 30 epochs it gives 76.6 ± 2.8 % (n = 3); the paper does not state the number
of epochs, and with 100 epochs it gives **85.9 ± 3.3 % (n = 10)**, with everything else the
paper's (lr0 = 0.149, lr_decay = 8.077, S = 0.5, raw pixels, f_cut = 1 MHz, exact solver).
150 epochs: 86.7 ± 1.7 % (n = 3): the curve has flattened.

Two further changes, each physically plausible but not in the paper, close the rest of the gap
to 89.83 ± 2.91 %: a thermal floor x_min = 0.01 (88.4 ± 2.5 %, n = 10; no neuron is absorbed,
24 % sit at the floor) or an amplifier S also in front of layer 0 (input_scale = 0.5;
88.0 ± 1.8 %, n = 10); both together 88.4 ± 3.1 % (n = 3). The per-batch schedule does not help
at τ = 2.25 ns (85.1 ± 1.1 %, n = 10).

Recommended: `tau=14.12/(2*math.pi), epochs=100` as the paper reading (optionally `x_min=0.01`).
Still unexplained: the CTRNN twin stays at or near chance at the paper's values under every
reading tried here (τ = 14.12 or 2.25 ns, raw or [0, 1] pixels, 30 or 100 epochs: ≤ 35 %), and the
paper's learning-rate rule (lr ≈ 1/100 of 1/(Δt·S·√N) = 0.0035) is 40× below its own lr0 under
every reading.
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="at least this many seeds per reading (0, 1, ...)")
    parser.add_argument("--fast", action="store_true", help="2 readings, 1 seed, 2 epochs (a check, < 1 min)")
    parser.add_argument("--only", nargs="+", help="run only these readings (the table lists every cached one)")
    parser.add_argument("--list", action="store_true", help="list the readings and exit")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.list:
        for r in READINGS:
            print(f"{r.name:32s} {r.how}")
        return
    default_epochs = preset_config("spintronic", "paper").epochs
    cache = CACHE / "fast" if args.fast else CACHE
    md_path = cache / "paper-point-fast.md" if args.fast else RESULTS / "paper-point.md"
    chosen = [r for r in READINGS if r.name in FAST] if args.fast else READINGS
    if args.only:
        unknown = set(args.only) - {r.name for r in READINGS}
        if unknown:
            sys.exit(f"unknown readings: {', '.join(sorted(unknown))} (see --list)")
        chosen = [r for r in chosen if r.name in args.only]
    data = load_data(preset_config("spintronic", "paper"))
    for reading in chosen:
        n_seeds = 1 if args.fast else max(args.seeds, reading.seeds)
        epochs = epochs_of(reading, default_epochs, args.fast)
        for seed in range(n_seeds):
            path = cache / _slug(reading.name) / f"seed_{seed}.json"
            if path.exists() and read_json(path).get("spec") == reading.spec_hash(epochs):
                continue
            result = run_one(reading, seed, epochs, data)
            atomic_write_json(path, result)
            flag = f" DIVERGED ({result['diverged']})" if result["diverged"] else ""
            print(f"{reading.name:34s} seed {seed}: {result['acc']:.2f} % (best {result['best_acc'] or 0:.1f}), "
                  f"dead {np.mean(result['dead']) if result['dead'] else float('nan'):.2f}, "
                  f"{result['seconds']:.0f} s{flag}", flush=True)
    rows = []
    for reading in (chosen if args.fast else READINGS):
        folder = cache / _slug(reading.name)
        results = [read_json(p) for p in sorted(folder.glob("seed_*.json"))] if folder.exists() else []
        spec = reading.spec_hash(epochs_of(reading, default_epochs, args.fast))
        results = [r for r in results if r.get("spec") == spec]
        if results:
            rows.append(summarize(reading, results))
    write_tables(rows, md_path, 2 if args.fast else default_epochs, conclusion_text(rows))
    print(f"table: {md_path}")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-=._" else "_" for c in name.replace(" + ", "+")).replace("/", "_")


if __name__ == "__main__":
    main()
