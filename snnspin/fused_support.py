"""What both fused schemes (``snnspin.fused``: diagonals; ``snnspin.fused_layerwise``: layer by
layer) share around their hand-written backward passes."""

from __future__ import annotations

import torch

from . import pointwise


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


def _backward_kernels(ctx, *grads):
    """The forward's kernels, unless torch.func hands the backward wrapped tensors (then the torch ones)."""
    wrapped = any(g is not None and torch._C._functorch.is_functorch_wrapped_tensor(g) for g in grads)
    return pointwise.TORCH if wrapped else ctx.kernels
