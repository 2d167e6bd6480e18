"""The paper's network (Fig. 1, eq. 3-5), its CTRNN twin (eq. 6-8) and a spiking (LIF) twin.

All three share one topology: input (size 1) → L layers of N neurons → readout to 10
classes with log-softmax. Layer n receives

    syn = W_ext^n y^{n-1}(t) + W_int^n y^n(t - dt) + b^n

(the previous layer's output at this step, its own output at the previous step) through
masked linear maps of densities d_inter and d_intra. What turns ``syn`` into an output
is the neuron: ``Oscillator`` + ``HighPass`` (spintronic), ``CTRNN``, or snnTorch's
``Leaky`` (LIF). Data are time first, ``[T, B, 1]``, with input points Δt ns apart,
each held for ``substeps`` solver steps of dt = Δt / substeps.
"""

from __future__ import annotations

import math
import warnings

import snntorch as snn
import torch
from torch import nn
from torch.nn import functional as F

from ._checks import check_finite
from .config import TrainConfig
from .connectivity import MaskedLinear
from .fused import (ctrnn_fused_reason, ensemble_reason, fused_ctrnn_sequence, fused_ctrnn_sequences,
                    fused_oscillator_sequence, fused_oscillator_sequences, oscillator_fused_reason)
from .nn import ALIF, CTRNN, HighPass, Leaky, Oscillator, detach_hidden
from .nn.alif import spike_function
from .nn.stateful import as_float_input, keep_added_buffers
from .spiking_loop import spiking_ensemble_reason, spiking_sequence, spiking_sequences


def _taus(config: TrainConfig):
    """τ for one layer: a float, or one trainable value per neuron when ``learn_tau``."""
    return torch.full((config.width,), config.tau) if config.learn_tau else config.tau


def _build_chip(model) -> None:
    """Give a new network the chip ``config.chip_seed`` when its config has a device spread
    (the per-neuron constants then live in buffers ``[N]`` and are saved with the weights)."""
    if model.config.mismatch:
        from .device import apply_chip, draw_chip

        c = model.config
        apply_chip(model, draw_chip(c.layers, c.width, c.mismatch, c.chip_seed))


_WARNED: set[str] = set()  # fallback reasons already reported (once per process)
#: Thresholds of ``neuron_health``: an oscillator below DEAD_BELOW is dead, one above SATURATED_ABOVE saturated.
DEAD_BELOW, SATURATED_ABOVE = 1e-3, 0.999


def _under_torch_func(data, model) -> bool:
    """Whether torch.func transforms (grad, vmap, ...) wrap the data or the weights."""
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    return wrapped(data) or any(wrapped(p) for p in model.parameters())


class LayeredNetwork(nn.Module):
    """Topology and time loop shared by the three networks; subclasses define the neuron.

    Subclasses implement ``initial_state(batch_size, layer, like)`` → (state, output) and
    ``neuron_step(layer, syn, state)`` → (state, output, recorded: dict of tensors).
    ``n_inputs``: features per input point (1 for the paper's pixel series, e.g. 8 for the
    digits read a row at a time); input ``[T, B, n_inputs]``.
    """

    def __init__(self, config: TrainConfig, seed: int = 0, n_inputs: int = 1, n_classes: int = 10):
        super().__init__()
        self.config = config
        generator = torch.Generator().manual_seed(seed)
        n = config.width
        self.n_inputs, self.n_classes = n_inputs, n_classes
        sizes = [n_inputs] + [n] * config.layers
        self.w_ext = nn.ModuleList(
            MaskedLinear(sizes[i], n, config.d_inter, True, config.init_scale, generator) for i in range(config.layers)
        )
        self.w_int = nn.ModuleList(
            MaskedLinear(n, n, config.d_intra, False, config.init_scale, generator) for _ in range(config.layers)
        )
        self.readout = MaskedLinear(n, n_classes, 1.0, True, 1.0, generator)
        for linear in (*self.w_ext, *self.w_int, self.readout):
            linear.bits = config.weight_bits
        # per-channel input normalisation (x - shift) · gain, set from training data (snnspin.defaults)
        self.register_buffer("input_shift", torch.zeros(n_inputs))
        self.register_buffer("input_gain", torch.ones(n_inputs))

    #: Buffers that files written before they existed lack: loading such a file keeps the identity.
    added_buffers = ("input_shift", "input_gain")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        keep_added_buffers(self, state_dict, prefix)  # weights saved before the input normalisation
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set_input_statistics(self, shift: torch.Tensor, gain: torch.Tensor) -> None:
        """Normalise every input channel as (x - shift) · gain before ``input_scale`` (``[F]`` each)."""
        if shift.shape != self.input_shift.shape or gain.shape != self.input_gain.shape:
            raise ValueError(f"input statistics for {tuple(shift.shape)} channels, the model takes {self.n_inputs}")
        self.input_shift.copy_(shift)
        self.input_gain.copy_(gain)

    def initial_state(self, batch_size: int, layer: int, like: torch.Tensor):
        raise NotImplementedError

    def neuron_step(self, layer: int, syn: torch.Tensor, state):
        raise NotImplementedError

    def state_x(self, state) -> torch.Tensor:
        """The neuron variable inside a layer's state that ``neuron_health`` judges."""
        return state

    def check_settings(self) -> None:
        """Raise ``ValueError`` for a layer setting that no engine of this network honours."""

    def neuron_health(self) -> dict:
        """Per layer, the fraction of neurons dead and saturated at the end of the last sequence
        run (``final_states`` ``[L, B, N]``); ``None`` where the notion does not apply."""
        return {"dead": None, "saturated": None}

    def fused_reason(self) -> str | None:
        """Why the fused sequence path cannot run this model exactly as its layers say (None when it can)."""
        return "no fused path for this model"

    def fused_sequence(self, data):
        """(y, x) of the last layer after the last step, by the fused path (y averaged over every
        step with ``readout_time="mean"``)."""
        raise NotImplementedError

    #: ``(models, data [T, M, B, F])`` → per network (y, x, final states): M networks in one fused call
    fused_sequences = None
    #: ``models`` → why they cannot run together in ``fused_sequences`` (None: they can)
    ensemble_reason = None

    def _use_fused(self, record: bool, data: torch.Tensor) -> bool:
        engine = self.config.engine
        if engine == "reference" or record:
            if record and self.config.checkpoint_every and torch.is_grad_enabled():
                raise ValueError("checkpoint_every needs the fused path, and record=True keeps every step's traces on "
                                 "the per-step path: record under torch.no_grad()")
            return False
        reason = self.fused_reason()
        if reason is None and _under_torch_func(data, self):
            reason = "torch.func transforms (grad, vmap, jacrev) run on the per-step path"
        if reason is None:
            return True
        if engine == "fused":
            raise ValueError(f"engine='fused' is not available: {reason}")
        if self.config.checkpoint_every and torch.is_grad_enabled():
            raise ValueError(f"checkpoint_every needs the fused path, which cannot run this model: {reason}")
        if isinstance(self, ContinuousNetwork) and reason not in _WARNED:
            _WARNED.add(reason)
            warnings.warn(f"using the per-step reference path: {reason}", RuntimeWarning, stacklevel=3)
        return False

    def readout_logits(self, state, output, final: bool) -> torch.Tensor | None:
        """Logits from the last layer; called after every solver step, used at the last."""
        return self.readout(output) if final else None

    def prepare_input(self, data) -> torch.Tensor:
        """``data`` ``[T, B, F]`` checked, normalised per channel and scaled: what the layers read."""
        self.check_settings()
        data = as_float_input(data)
        if data.dim() != 3:
            raise ValueError(f"data must be time first [T, B, F], got shape {tuple(data.shape)}")
        if data.shape[0] == 0 or data.shape[1] == 0:
            raise ValueError(f"data must hold at least one time step and one series, got shape {tuple(data.shape)}")
        if data.shape[2] != self.n_inputs:
            raise ValueError(f"data have {data.shape[2]} features per time step ([T, B, F] = {tuple(data.shape)}) "
                             f"but the model takes {self.n_inputs} (n_inputs)")
        check_finite("data", data)
        # the one place inputs are normalised and scaled: wherever data enter (identity by default)
        return (data - self.input_shift) * (self.input_gain * self.config.input_scale)

    def fused_log_probs(self, y, x) -> torch.Tensor:
        """Log-probabilities from the fused path's last-layer (y, x) ``[B, N]``."""
        return F.log_softmax(self.readout(y if self.config.readout == "y" else x), dim=-1)

    def forward(self, data: torch.Tensor, record: bool = False):
        """Run the sequence ``data`` ``[T, B, F]``; return log-probabilities ``[B, classes]``.

        The data are normalised per channel, (x - ``input_shift``) · ``input_gain`` (set from the
        training data, identity by default), and multiplied by ``config.input_scale`` first (here
        only, so that both mean one thing whichever way data arrive). With ``record=True`` also return a dict
        name → list (one per layer) of ``[T, B, N]`` tensors: the neurons' variables at the end
        of each input point (Fig. 1b-d), and ``syn``, the synaptic sums of its last solver step.
        """
        data = self.prepare_input(data)
        if self._use_fused(record, data):
            y, x, self.final_states = self.fused_sequence(data)
            return self.fused_log_probs(y, x)
        steps, batch = data.shape[0], data.shape[1]
        layers = range(self.config.layers)
        like = data.new_zeros(batch, self.config.width)
        states, outputs = zip(*(self.initial_state(batch, i, like) for i in layers))
        states, outputs = list(states), list(outputs)
        # W ⊙ M once per sequence, not once per step
        w_ext = [(m.effective_weight(), m.bias) for m in self.w_ext]
        w_int = [m.effective_weight() for m in self.w_int]
        traces = {}
        recorded = [{} for _ in layers]
        logits, self._pooled, self._steps = None, None, 0  # a readout over the sequence starts empty
        for t in range(steps):
            for k in range(self.config.substeps):
                signal = data[t]
                for i in layers:
                    syn = F.linear(signal, *w_ext[i]) + F.linear(outputs[i], w_int[i])
                    states[i], outputs[i], recorded[i] = self.neuron_step(i, syn, states[i])
                    if record:
                        recorded[i]["syn"] = syn
                    signal = outputs[i]
                final = t == steps - 1 and k == self.config.substeps - 1
                logits = self.readout_logits(states[-1], outputs[-1], final)
            if record:
                for i in layers:
                    for name, value in recorded[i].items():
                        traces.setdefault(name, [[] for _ in layers])[i].append(value.detach())
        self.final_states = torch.stack([self.state_x(state) for state in states]).detach()
        log_probs = F.log_softmax(logits, dim=-1)
        if not record:
            return log_probs
        return log_probs, {name: [torch.stack(v) for v in per_layer] for name, per_layer in traces.items()}

    def counts(self) -> dict:
        """Neurons (L · N) and synapses (unmasked weights, readout included; biases not).

        >>> SpintronicNetwork(TrainConfig()).counts()
        {'neurons': 96, 'synapses': 2896}
        """
        synapses = sum(m.n_synapses for m in self.modules() if isinstance(m, MaskedLinear))
        return {"neurons": self.config.layers * self.config.width, "synapses": synapses}


class ContinuousNetwork(LayeredNetwork):
    """Shared by the oscillator and CTRNN networks: a readout of y or x, and the fused path.

    The readout is linear, logits = W_r v + b_r, and reads v from the last layer: y (or x with
    ``readout="x"``) after the last solver step (``readout_time="last"``, the paper's), or its
    average over every solver step of the sequence (``readout_time="mean"``), which hands each
    step the same share of the gradient instead of only the last one."""

    _pooled, _steps = None, 0

    def readout_logits(self, state, output, final):
        value = output if self.config.readout == "y" else self.state_x(state)
        if self.config.readout_time == "mean":  # "auto" (a config saved before the option) is "last"
            self._pooled = value if self._pooled is None else self._pooled + value
            self._steps += 1
            if not final:
                return None
            value, self._pooled, self._steps = self._pooled / self._steps, None, 0
        elif not final:
            return None
        return self.readout(value)

class SpintronicNetwork(ContinuousNetwork):
    """Layers of spintronic oscillators with high-pass filtered outputs (Plouet et al. Fig. 1).

        I = S syn + b_fixed (= 2γ),  dx/dt = -γ x + I x (1 - x),  dy/dt = -2π f_cut y + dx/dt

    x starts at its rest point 0.5, y at 0. The next layer, the intra-layer weights and (by
    default) the readout see y. Input ``[T, B, 1]`` → log-probabilities ``[B, 10]``.

    >>> net = SpintronicNetwork(TrainConfig())
    >>> net(torch.rand(64, 5, 1) * 16).shape
    torch.Size([5, 10])
    """

    def __init__(self, config: TrainConfig, seed: int = 0, n_inputs: int = 1, n_classes: int = 10):
        super().__init__(config, seed, n_inputs, n_classes)
        c = config
        self.neurons = nn.ModuleList(
            Oscillator(_taus(c), c.dt, c.gain, method=c.method, x_min=c.x_min, thermal_power=c.thermal_power,
                       learn_tau=c.learn_tau, check=False)
            for _ in range(c.layers)
        )
        self.filters = nn.ModuleList(HighPass(c.f_cut_mhz, c.dt, check=False) for _ in range(c.layers))
        #: the design values of the device constants a chip spreads (``snnspin.device``)
        self.design = {"tau": c.tau, "sigma": 1.0, "q": 0.0}
        _build_chip(self)

    def initial_state(self, batch_size, layer, like):
        x = self.neurons[layer].rest_state(like)[0]
        y = torch.zeros_like(like)
        return (x, y), y

    def neuron_step(self, layer, syn, state):
        x, y = state
        x_next, _ = self.neurons[layer](syn, x)
        y, _ = self.filters[layer](x_next, (y, x))
        return (x_next, y), y, {"x": x_next, "y": y}

    def state_x(self, state):
        return state[0]

    def check_settings(self):
        for i, filt in enumerate(self.filters):
            if filt.x0 is not None:
                raise ValueError(f"filters[{i}].x0 does not apply inside the network: each filter starts from its "
                                 "oscillator's reset state, with y = 0; set the oscillators' x0 instead")

    def neuron_health(self):
        """Dead: x < 1e-3 (x = 0 absorbs: such an oscillator hardly recovers within a sequence),
        or held at the floor x_min when there is one (x < 1.001 x_min); saturated: x > 0.999.
        Fractions per layer at the end of the last sequence."""
        x = self.final_states
        floors = torch.tensor([1.001 * float(n.x_min) for n in self.neurons], dtype=x.dtype, device=x.device)
        dead_below = torch.clamp(floors, min=DEAD_BELOW).view(-1, 1, 1)
        return {"dead": (x < dead_below).float().mean((1, 2)).tolist(),
                "saturated": (x > SATURATED_ABOVE).float().mean((1, 2)).tolist()}

    def fused_reason(self):
        return oscillator_fused_reason(self)

    def fused_sequence(self, data):
        return fused_oscillator_sequence(self, data)

    fused_sequences = staticmethod(fused_oscillator_sequences)
    ensemble_reason = staticmethod(ensemble_reason)


class CTRNNNetwork(ContinuousNetwork):
    """The software twin: CTRNN neurons dx/dt = -x/τ + S syn, output y = tanh(x) (eq. 6-8).

    x starts at 0. The readout sees y (or x with ``readout="x"``).

    >>> CTRNNNetwork(TrainConfig(model="ctrnn"))(torch.rand(64, 2, 1)).shape
    torch.Size([2, 10])
    """

    def __init__(self, config: TrainConfig, seed: int = 0, n_inputs: int = 1, n_classes: int = 10):
        super().__init__(config, seed, n_inputs, n_classes)
        c = config
        self.neurons = nn.ModuleList(
            CTRNN(_taus(c), c.dt, c.gain, method=c.method, learn_tau=c.learn_tau, check=False) for _ in range(c.layers)
        )
        self.design = {"tau": c.tau}  # a chip spreads τ only (``snnspin.device``)
        _build_chip(self)

    def initial_state(self, batch_size, layer, like):
        return torch.zeros_like(like), torch.zeros_like(like)

    def neuron_step(self, layer, syn, state):
        y, x = self.neurons[layer](syn, state)
        return x, y, {"x": x, "y": y}

    def neuron_health(self):
        """Saturated: |tanh x| > 0.999 (no gradient flows through it); a CTRNN has no absorbing
        dead state. Fractions per layer at the end of the last sequence."""
        y = torch.tanh(self.final_states).abs()
        return {"dead": None, "saturated": (y > SATURATED_ABOVE).float().mean((1, 2)).tolist()}

    def fused_reason(self):
        return ctrnn_fused_reason(self)

    def fused_sequence(self, data):
        return fused_ctrnn_sequence(self, data)

    fused_sequences = staticmethod(fused_ctrnn_sequences)
    ensemble_reason = staticmethod(ensemble_reason)


class LIFNetwork(LayeredNetwork):
    """The spiking twins: snnTorch ``Leaky`` neurons (``model="lif"``) or adaptive-threshold
    ``ALIF`` neurons (``model="alif"``, ``snnspin.nn.ALIF``) with the same topology.

    Each layer: mem⁺ = β mem + S syn, spike when mem > 1 (ALIF: 1 + b_a a), reset by
    subtraction (the reset's gradient stopped unless ``detach_reset`` is False; ``snnspin.nn.Leaky``),
    β = e^{-dt/τ} (one per neuron and trained with ``learn_beta``); the outputs
    fed forward and back are spikes, with snnTorch's surrogate gradient ``surrogate``
    (slope ``surrogate_slope``). Logits (``spike_readout``): ``last``: the last layer's spikes
    drive non-spiking leaky integrators (β of ``readout_tau``, else the neurons' β), read after the last step, the spiking
    analogue of reading the state after the last step; ``max``: their largest value over the
    sequence; ``mean``: the readout of the spikes averaged over the sequence.

    Engines: ``reference`` (and ``record=True``) steps the snnTorch / ALIF modules; ``auto`` and
    ``fused`` run the same equations in one lean loop (``snnspin.spiking_loop``; equal to the
    modules bit for bit in our tests), faster per training step at the paper's size (one CPU
    thread, batch 120: 67.6 → 37.4 ms for LIF, 55.5 → 40.6 ms for ALIF).

    >>> LIFNetwork(TrainConfig(model="lif"))(torch.rand(64, 2, 1)).shape
    torch.Size([2, 10])
    >>> LIFNetwork(TrainConfig(model="alif", learn_beta=True, spike_readout="max"))(torch.rand(64, 2, 1)).shape
    torch.Size([2, 10])
    """

    def __init__(self, config: TrainConfig, seed: int = 0, n_inputs: int = 1, n_classes: int = 10):
        super().__init__(config, seed, n_inputs, n_classes)
        c = config
        ignored = {"learn_tau": c.learn_tau, "readout='x'": c.readout == "x", f"method={c.method!r}": c.method != "exact"}
        if any(ignored.values()):
            raise ValueError(f"{', '.join(k for k, v in ignored.items() if v)} does not apply to the spiking twins "
                             "(β = e^(-dt/τ), trained with learn_beta; spikes to the readout; no stepper)")
        decay = math.exp(-c.dt / c.tau)
        beta = lambda: torch.full((c.width,), decay) if c.learn_beta else decay
        spike = spike_function(c.surrogate, c.surrogate_slope)
        self.gain = c.gain
        if c.model == "alif":
            rho = math.exp(-c.dt / c.adapt_tau)
            self.neurons = nn.ModuleList(ALIF(beta(), rho, c.adapt_strength, learn_beta=c.learn_beta,
                                              surrogate=c.surrogate, slope=c.surrogate_slope, check=False,
                                              detach_reset=c.detach_reset)
                                         for _ in range(c.layers))
        else:
            self.neurons = nn.ModuleList(Leaky(beta=beta(), threshold=1.0, learn_beta=c.learn_beta, spike_grad=spike,
                                               detach_reset=c.detach_reset)
                                         for _ in range(c.layers))
        readout_decay = math.exp(-c.dt / c.readout_tau) if c.readout_tau else decay  # its own memory, or the neurons'
        integrator_beta = torch.full((n_classes,), readout_decay) if c.learn_beta else readout_decay
        self.integrator = snn.Leaky(beta=integrator_beta, learn_beta=c.learn_beta, reset_mechanism="none")
        self._readout_mem = None
        self._pooled, self._steps = None, 0

    def initial_state(self, batch_size, layer, like):
        if layer == self.config.layers - 1:
            self._readout_mem = like.new_zeros(batch_size, self.readout.out_features)
            self._pooled, self._steps = None, 0
        if self.config.model == "alif":
            return (torch.zeros_like(like), torch.zeros_like(like), torch.zeros_like(like)), torch.zeros_like(like)
        return torch.zeros_like(like), torch.zeros_like(like)

    def neuron_step(self, layer, syn, state):
        if self.config.model == "alif":
            spk, state = self.neurons[layer](self.gain * syn, state)
            return tuple(state), spk, {"mem": state.mem, "spk": spk, "adapt": state.adapt}
        spk, mem = self.neurons[layer](self.gain * syn, state)
        spk = spk.to(mem.dtype)  # snnTorch's spikes are float32 whatever the membrane's dtype
        return mem, spk, {"mem": mem, "spk": spk}

    def state_x(self, state):
        return state[0] if isinstance(state, tuple) else state

    def fused_reason(self):
        """Why the lean loop (``snnspin.spiking_loop``) cannot run this network as its layers say."""
        if self.config.checkpoint_every:
            return "checkpoint_every recomputes the oscillators' and CTRNN's fused segments; the spiking twins have none"
        for i, n in enumerate(self.neurons):
            if not isinstance(n, snn.Leaky):
                continue
            changed = [name for name, default in (("reset_mechanism", "subtract"), ("state_quant", False),
                                                   ("inhibition", False), ("reset_delay", True))
                       if getattr(n, name) != default]
            for name in ("graded_spikes_factor", "threshold"):
                value = getattr(n, name)
                if isinstance(value, nn.Parameter) or value.numel() != 1 or (name != "threshold" and float(value) != 1):
                    changed.append(name)
            if changed:
                return f"layer {i}: the lean loop computes snnTorch Leaky's defaults; {', '.join(changed)} changed"
        return None

    def fused_sequence(self, data):
        logits, membranes = spiking_sequence(self, data)
        return logits, None, membranes

    fused_sequences = staticmethod(spiking_sequences)
    ensemble_reason = staticmethod(spiking_ensemble_reason)

    def fused_log_probs(self, logits, _):
        return F.log_softmax(logits, dim=-1)

    def readout_logits(self, state, output, final):
        mode = self.config.spike_readout
        if mode == "mean":
            drive = self.readout(output)
            self._pooled = drive if self._pooled is None else self._pooled + drive
            self._steps += 1
            logits = self._pooled / self._steps if final else None
        else:
            _, self._readout_mem = self.integrator(self.readout(output), self._readout_mem)
            if mode == "max":
                mem = self._readout_mem
                self._pooled = mem if self._pooled is None else torch.maximum(self._pooled, mem)
                logits = self._pooled
            else:
                logits = self._readout_mem
        if final:  # the sequence is over: no graph stays on the module (deepcopy, memory);
            self._readout_mem, self._pooled, self._steps = None, None, 0  # snnTorch keeps each
            detach_hidden(self)  # neuron's last membrane in a buffer
        return logits if final else None


MODEL_CLASSES = {"spintronic": SpintronicNetwork, "ctrnn": CTRNNNetwork, "lif": LIFNetwork, "alif": LIFNetwork}


def build_model(config: TrainConfig, seed: int = 0) -> LayeredNetwork:
    """The network named by ``config.model``, with weights and masks drawn from ``seed``; its input
    and output widths are ``config.n_inputs`` and ``config.n_classes`` (0: the digits' 1 and 10).

    >>> build_model(TrainConfig(model="lif")).counts()
    {'neurons': 96, 'synapses': 2896}
    """
    return MODEL_CLASSES[config.model](config, seed, config.n_inputs or 1, config.n_classes or 10)
