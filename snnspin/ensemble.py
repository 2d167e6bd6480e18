"""Several networks of one shape in one fused call: an ensemble.

Training 10 seeds of the paper's 3 × 32 network one after the other pays, on each diagonal of the
time × depth grid, the overhead of a few small matrix products and one kernel call per network.
Here M networks (different seeds, chips, or per-neuron constants
τ, S, b_fixed, σ, Q, f_cut, x_min) advance together: their layers are stacked network by network
into one grid of M · L layers, so each diagonal is still one batched product and one kernel call,
M times larger. Each network reads its own batch ``[T, B, F]`` and has its own parameters; nothing
couples them, so each gets the log-probabilities and gradients it would get alone (to rounding;
``tests/test_ensemble.py`` compares in float64).

    log p_m = readout_m(fused layers of network m over data_m),   m = 1..M

``snnspin.training`` trains the seeds of a run this way when ``together_reason`` allows it
(``train_seeds``: ``train``, ``tune``'s trial seeds, the sweeps). The gain is modest, because at
the paper's size a step is mostly arithmetic (kernels and products), not overhead: 1.1× on one
thread at 2 networks per call, 1.2-1.9× on two threads (``benchmarks/results/speed.md``).
The spiking twins run together in their own lean loop (``snnspin.spiking_loop.spiking_sequences``),
where the gain is larger (about 2× at 4 per call): their step is mostly per-operation overhead.
Each network class names its call (``fused_sequences``) and what its members must share
(``ensemble_reason``).
"""

from __future__ import annotations

import torch

from .config import SPIKING
from .fused import LAYERWISE_FROM

#: The most networks run in one call: memory grows with their number (BPTT keeps every diagonal).
MAX_TOGETHER = 16
#: Training groups hold at most this many (layer, series, neuron) elements per diagonal and torch
#: thread: two networks of the paper's size (3 x 120 x 32) per thread. Larger calls leave the
#: caches: measured (``benchmarks/results/speed.md``, ``speed-ensemble-1thread.md``), 10 networks
#: of the paper's size train 1.10x faster 2 per call than one after another on one thread but
#: 0.80-0.95x 5 or 10 per call; on two threads 5 and 10 per call give 1.2-1.9x.
TOGETHER_ELEMENTS_PER_THREAD = 23_040
#: The spiking twins' loop (``snnspin.spiking_loop``) is plain torch, one small operation at a time,
#: and its step is mostly per-operation overhead: networks together pay it once. Measured on one
#: thread (LIF preset, paper size, forward to Adam), per network: 33.5 ms alone, 23.3 / 17.2 /
#: 13.4 ms 2 / 4 / 8 per call (ALIF 39.7, 28.5, 21.1, 16.8 ms). So they group this many times larger.
SPIKING_GROUP_FACTOR = 4


def group_size(config, threads: int | None = None, steps: int = 64) -> int:
    """How many networks of ``config`` (its batch size resolved from the data) train together in
    one call: TOGETHER_ELEMENTS_PER_THREAD times the torch threads (``threads``, default
    ``torch.get_num_threads()``) over one network's L · B · N, SPIKING_GROUP_FACTOR times that
    for the spiking twins, between 1 and MAX_TOGETHER. The spiking twins' autograd keeps every
    step of every network in a group, so their factor shrinks with sequences longer than the
    digits' 64 solver ``steps`` (its memory then stays that of a 64-step group).

    >>> from snnspin.config import TrainConfig
    >>> group_size(TrainConfig(batch_size=120), threads=1), group_size(TrainConfig(batch_size=120), threads=2)
    (2, 4)
    >>> group_size(TrainConfig(model="lif", batch_size=120), threads=1)
    8
    >>> group_size(TrainConfig(model="lif", batch_size=120), threads=1, steps=784)
    2
    """
    threads = threads or torch.get_num_threads()
    elements = config.layers * max(1, config.batch_size) * config.width
    factor = max(1.0, SPIKING_GROUP_FACTOR * min(1.0, 64 / max(1, steps))) if config.model in SPIKING else 1
    return max(1, min(MAX_TOGETHER, int(factor * TOGETHER_ELEMENTS_PER_THREAD * threads // elements)))


def together_reason(models) -> str | None:
    """Why ``models`` are not run in one fused call (None: they are): fewer than two, an engine
    other than the fused one, layers of ``LAYERWISE_FROM`` neurons or more (one network at a time
    is faster there; the oscillators and the CTRNN), or what the class's ``ensemble_reason`` names.

    >>> from snnspin.config import TrainConfig
    >>> from snnspin.models import build_model
    >>> together_reason([build_model(TrainConfig(), seed) for seed in range(2)]) is None
    True
    >>> together_reason([build_model(TrainConfig(model="lif"), seed) for seed in range(2)]) is None
    True
    """
    if len(models) < 2:
        return "a single network"
    if len(models) > MAX_TOGETHER:
        return f"more than {MAX_TOGETHER} networks"
    if any(m.config.engine == "reference" for m in models):
        return "engine='reference' runs the per-step path"
    if any(type(m).fused_sequences is None for m in models):
        return "no call for several networks of this kind"
    if models[0].config.width >= LAYERWISE_FROM and models[0].config.model not in SPIKING:
        return f"layers of {LAYERWISE_FROM} neurons or more run one network at a time (layer by layer)"
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    if any(wrapped(p) for m in models for p in m.parameters()):
        return "torch.func transforms run on the per-step path"
    return type(models[0]).ensemble_reason(models)


def log_probs_together(models, batches) -> list[torch.Tensor]:
    """``[model(batch) for model, batch in zip(models, batches)]``: each network's log-probabilities
    ``[B, classes]`` of its own batch ``[T, B, F]``, in one fused call when ``together_reason`` allows
    it and the batches have one shape (else one network after the other). Each network's
    ``final_states`` is set as its own forward would set it.

    >>> from snnspin.config import TrainConfig
    >>> from snnspin.models import build_model
    >>> models = [build_model(TrainConfig(width=4), seed) for seed in range(3)]
    >>> batches = [torch.rand(64, 5, 1) * 16 for _ in models]
    >>> together = log_probs_together(models, batches)
    >>> all(torch.allclose(p, m(b), atol=1e-5) for p, m, b in zip(together, models, batches))
    True
    """
    models, batches = list(models), list(batches)
    if len(models) != len(batches):
        raise ValueError(f"{len(models)} networks but {len(batches)} batches")
    prepared = [m.prepare_input(b) for m, b in zip(models, batches)]
    wrapped = any(torch._C._functorch.is_functorch_wrapped_tensor(p) for p in prepared)  # torch.func: per step
    if wrapped or together_reason(models) is not None or len({tuple(p.shape) for p in prepared}) > 1 \
            or len({p.dtype for p in prepared}) > 1:
        return [m(b) for m, b in zip(models, batches)]
    outputs = type(models[0]).fused_sequences(models, torch.stack(prepared, 1))
    log_probs = []
    for model, (y, x, states) in zip(models, outputs):
        model.final_states = states
        log_probs.append(model.fused_log_probs(y, x))
    return log_probs
