"""What both fused schemes (``snnspin.fused``: diagonals; ``snnspin.fused_layerwise``: layer by
layer) share around their hand-written backward passes."""

from __future__ import annotations

import torch

from . import pointwise
from .functional.exponential import expm1_ratio, expm1_ratio_derivative


def in_c(kernels, data) -> bool:
    """Whether a fused pass runs its whole loop in C (``snnspin.native.sequences``: native kernels,
    CPU float32/64, torch's BLAS GEMM found), else call by call from Python."""
    from .native import sequences  # (imported here: loading it needs nothing until a pass runs)

    return kernels is pointwise.NATIVE and sequences.ready(data)


def _state_grads(grad, like):
    """A writable dL/d(state) buffer [L, B, N] from what came back for a final state (None: zero)."""
    return torch.zeros_like(like) if grad is None else grad.clone(memory_format=torch.contiguous_format)


_NO_SECOND = ("the fused path has no second derivatives; build the model with engine='reference' for them")


def _first_order_only(backward):
    """Run a hand-written BPTT backward without recording a graph, and refuse, loudly, whatever
    would differentiate its result again: ``create_graph=True`` (autograd would take the
    gradients for constants and return second derivatives without their terms through here)
    and nested torch.func transforms. A single ``torch.func.grad``/``vjp``/``jacrev`` runs."""

    def wrapped(ctx, *grad_outputs):
        if any(g is not None and torch._C._functorch.is_functorch_wrapped_tensor(g) for g in grad_outputs):
            level = torch._C._functorch.maybe_current_level()
            if level is not None and level > 1:  # a transform around this one would differentiate again
                raise RuntimeError(_NO_SECOND + " (nor nested torch.func transforms)")
        elif torch.is_grad_enabled():
            raise RuntimeError(_NO_SECOND + " (create_graph=True)")
        with torch.no_grad():
            return backward(ctx, *grad_outputs)

    return wrapped


def _batched(tensor) -> bool:
    """Whether ``tensor`` is a batched (vmapped) one: torch.func's, or the legacy kind that
    ``is_grads_batched=True`` hands a backward."""
    functorch = torch._C._functorch
    legacy = getattr(functorch, "is_legacy_batchedtensor", lambda _: False)
    return functorch.is_batchedtensor(tensor) or legacy(tensor)


def _backward_kernels(ctx, *grads):
    """The forward's kernels, unless torch.func hands the backward wrapped tensors (then the torch ones).
    Refuses batched gradients (``torch.autograd.grad(..., is_grads_batched=True)``), which the
    hand-written backward cannot take."""
    if any(g is not None and _batched(g) for g in grads):
        raise RuntimeError("the fused path's backward does not take batched gradients (is_grads_batched=True, "
                           "vmap, jacrev); take them one at a time, or build the model with engine='reference'")
    wrapped = any(g is not None and torch._C._functorch.is_functorch_wrapped_tensor(g) for g in grads)
    return pointwise.TORCH if wrapped else ctx.kernels


def oscillator_arguments(gains, gammas, bias_fixed, constants):
    """The per-neuron arguments of the oscillator kernels (contiguous ``[L, N]``, and h) from a
    fused oscillator Function's inputs, with the thermal draws and sub-steps that come with them.
    ``constants`` = (σ, Q, E, K, x_min, kick amplitude, draws or None, sub-steps, h, and whether
    autograd's own backward will run, ``backward_follows()``, read by ``snnspin.fused_layerwise``)."""
    sigma, q, e_hp, k_hp, x_min, kick, noise, substeps, h, _ = constants
    arguments = dict(gain=gains.contiguous(), gamma=gammas.contiguous(), bias_fixed=bias_fixed.contiguous(),
                     sigma=sigma, q=q, e_hp=e_hp, k_hp=k_hp, x_min=x_min, kick=kick, h=h)
    return arguments, noise, substeps


def backward_follows() -> bool:
    """Whether a fused pass run now may be differentiated by autograd's own backward: grad mode on
    and no ``torch.func`` transform around it (whose backward gets wrapped tensors and takes the
    torch kernels, which recompute each step from the states)."""
    return torch.is_grad_enabled() and torch._C._functorch.maybe_current_level() is None


def oscillator_constant_grads(needs, g_gain, g_a, g_b, arguments):
    """(dL/dS, dL/dγ, dL/db_fixed) per neuron ``[L, N]`` from Σ dL/dS (``g_gain``), Σ dL/da and
    Σ dL/db over steps and samples, each None where ``needs`` (three flags) says so.
    a = σ (S syn + b_fixed) - γ, b = a + γ (1 + Q): ∂a/∂γ = -1, ∂b/∂γ = Q; ∂a/∂b_fixed = ∂b/∂b_fixed = σ."""
    return (g_gain if needs[0] else None, arguments["q"] * g_b - g_a if needs[1] else None,
            arguments["sigma"] * (g_a + g_b) if needs[2] else None)


def ctrnn_step_constants(gains, gammas, h):
    """(S h F(-γh), e^{-γh}) per neuron, contiguous ``[L, N]``: the CTRNN step's gain on syn and decay."""
    return (h * expm1_ratio(-gammas * h) * gains).contiguous(), torch.exp(-gammas * h).contiguous()


def ctrnn_constant_grads(needs, g_state, syn, x_prev, gains, gammas, decay, h):
    """(dL/dS, dL/dγ) per neuron ``[L, N]`` (None where ``needs``, two flags, says so) from
    dL/dx⁺ (``g_state``), the synaptic sums and the states before each step, all laid out
    ``[L, steps, B, N]`` (any strides). x⁺ = x e^{-γh} + S syn h F(-γh)."""
    per_neuron = lambda t: t.view(t.shape[0], 1, 1, -1)  # noqa: E731
    g_gains = g_gammas = None
    if needs[0]:
        g_gains = (g_state * syn * per_neuron(h * expm1_ratio(-gammas * h))).sum((1, 2))
    if needs[1]:
        w_exp = -gammas * h
        d_unit = per_neuron(-h * h * expm1_ratio_derivative(w_exp, expm1_ratio(w_exp)))
        g_gammas = (g_state * (-h * per_neuron(decay) * x_prev + per_neuron(gains) * syn * d_unit)).sum((1, 2))
    return g_gains, g_gammas
