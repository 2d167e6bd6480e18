"""The per-diagonal pointwise updates of the fused path, in two interchangeable backends.

``TORCH`` is written with torch operations on top of ``snnspin.functional`` (any device);
``NATIVE`` calls the C kernels of ``snnspin.native`` (CPU, float32/float64), one call per
update instead of ~20-30 small torch kernels. Both take the same arguments, update the
same output buffers in place and agree to rounding (tested to 1e-12 in float64).
``for_tensor(t)`` picks NATIVE when it can run on ``t`` and TORCH otherwise; ``using(TORCH)``
forces one backend inside a ``with`` block (benchmarks, tests).

Shapes: state, drive and gradient buffers ``[L, B, N]`` (contiguous); ``z_next`` and
``back``, the next diagonal's layer inputs and the back-propagated ones, ``[L, B, P + N]``
(P signal columns, then the N recurrent ones); the per-neuron constants (``gain``, ``gamma``,
``bias_fixed``, ``sigma``, ``q``, the filter's ``e_hp`` and ``k_hp``, the floor ``x_min``, the thermal
kick's amplitude ``kick``, ``step_gain``, ``decay``) ``[L, N]``; ``noise``, the kick's normal draws, ``[L, 2, B, N]``
or None; ``h`` the solver step (ns). Arguments are passed by name, as listed
in ``snnspin.native.KERNELS``, the one table of them; ``checked=False`` lets the native
backend skip its per-tensor checks for arguments cut from arrays an earlier call passed
checked (``snnspin.native.call``). The L layers may be those of several networks of ``depth``
layers each, network by network (an ensemble; ``depth=None``: one network of L layers): only a
network's own next layer reads a layer's output. Layers outside ``[lo, hi]`` (counted within
their network) are inactive on this diagonal: their state is kept, the gradient of their state
passes back unchanged, and none reaches their drive.
The equations are those of ``snnspin.fused``.

>>> for_tensor(torch.zeros(1, device="meta")) is TORCH
True
"""

from __future__ import annotations

import contextlib

import torch

from . import native
from .functional.oscillator import _exact_parts, exact_derivatives, kicked_power


def _networks(t, depth):
    """``t`` ``[L, ...]`` as ``[L / depth, depth, ...]``: network by network (a view)."""
    return t.unflatten(0, (-1, depth))


def _keep_inactive(new, old, lo, hi, depth):
    """``new`` with the layers outside [lo, hi] (within each network) taken from ``old`` (in place)."""
    new_, old_ = _networks(new, depth), _networks(old, depth)
    new_[:, :lo] = old_[:, :lo]
    new_[:, hi + 1 :] = old_[:, hi + 1 :]
    return new


def _silence_inactive(grad, lo, hi, depth):
    grad_ = _networks(grad, depth)
    grad_[:, :lo] *= 0
    grad_[:, hi + 1 :] *= 0
    return grad


def _write_next_inputs(z_next, y, depth):
    """y_l into its own recurrent columns and, as signal, into layer l + 1's first columns (same network)."""
    if z_next is not None:
        n = y.shape[-1]
        z_next[:, :, z_next.shape[-1] - n :] = y
        _networks(z_next, depth)[:, 1:, :, :n] = _networks(y, depth)[:, :-1]


def _add_back(gy, back, depth):
    """dL/dy_l += (back-propagated recurrent part of layer l) + (signal part of layer l + 1, same network)."""
    if back is not None:
        n = gy.shape[-1]
        gy += back[:, :, back.shape[-1] - n :]
        _networks(gy, depth)[:, :-1] += _networks(back, depth)[:, 1:, :, :n]


def _kicked(x_det, kick, noise):
    """The thermal kick after the deterministic step (``noise`` [L, 2, B, N] or None: none)."""
    if noise is None:
        return x_det
    return kicked_power(x_det, kick.unsqueeze(1), noise[:, 0], noise[:, 1])


def _oscillator_step(syn, x, gain, gamma, bias_fixed, sigma, q, h):
    """a = σ (S syn + b_fixed) - γ and the exact step's parts (x⁺, grow, w, e, F, D, b)."""
    g, sigma = gamma.unsqueeze(1), sigma.unsqueeze(1)
    a = sigma * (gain.unsqueeze(1) * syn + bias_fixed.unsqueeze(1)) - g
    return a, _exact_parts(x, a, g * (1.0 + q.unsqueeze(1)), h)


class TorchKernels:
    """The updates with torch operations (reference semantics of the native kernels)."""

    name = "torch"

    @staticmethod
    def osc_forward(lo, hi, checked=True, depth=None, *, syn, x, y, gain, gamma, bias_fixed, sigma, q, e_hp, k_hp, x_min, kick,
                    noise, h, x_out, y_out, z_next):
        """x⁺ = max(κ(Φ_exact(x, a)), x_min), a = σ (S syn + b_fixed) - γ (eq. 2, step h ns), κ the thermal
        kick of amplitude ``kick`` with the draws ``noise`` (``kicked_power``; None: none); y⁺ = E y + K (x⁺ - x)
        (eq. 5, E = ``e_hp``, K = ``k_hp``), into ``x_out``, ``y_out`` (and ``z_next``)."""
        depth = depth or x.shape[0]
        raw = _kicked(_oscillator_step(syn, x, gain, gamma, bias_fixed, sigma, q, h)[1][0], kick, noise)
        floor = x_min.unsqueeze(1).expand_as(raw)
        x_new = torch.where(raw >= floor, raw, floor)
        y_new = e_hp.unsqueeze(1) * y + k_hp.unsqueeze(1) * (x_new - x)
        x_out.copy_(_keep_inactive(x_new, x, lo, hi, depth))
        y_out.copy_(_keep_inactive(y_new, y, lo, hi, depth))
        _write_next_inputs(z_next, y_out, depth)

    @staticmethod
    def osc_backward(lo, hi, checked=True, depth=None, *, back, gx, gy, x_old, syn, gain, gamma, bias_fixed, sigma, q, e_hp,
                     k_hp, x_min, kick, noise, h, dsyn_out, g_gain, g_a_sum, g_b_sum):
        """One BPTT step back through ``osc_forward`` (recomputed from ``x_old`` and ``syn``): updates
        (gx, gy) in place, writes dL/dsyn, accumulates dL/dS · (per element), dL/da and dL/db. The
        thermal kick passes the gradient straight through (as ``thermal_kick``)."""
        depth = depth or gx.shape[0]
        _add_back(gy, back, depth)
        a, (x_new, grow, w, e, f, den, b) = _oscillator_step(syn, x_old, gain, gamma, bias_fixed, sigma, q, h)
        d_x, d_a, d_b = exact_derivatives(x_old, b, x_new, grow, w, e, f, den, h)
        k_hp = k_hp.unsqueeze(1)
        passes = _kicked(x_new, kick, noise) >= x_min.unsqueeze(1)  # where the floor holds x: no gradient
        g_xn = _silence_inactive((gx + k_hp * gy) * passes, lo, hi, depth)
        g_a, g_b = g_xn * d_a, g_xn * d_b
        g_drive = sigma.unsqueeze(1) * (g_a + g_b)
        g_gain += g_drive * syn
        g_a_sum += g_a
        g_b_sum += g_b
        dsyn_out.copy_(gain.unsqueeze(1) * g_drive)
        # inactive layers kept (x, y): their gradients pass unchanged
        gx.copy_(_keep_inactive(d_x * g_xn - k_hp * gy, gx, lo, hi, depth))
        gy.copy_(_keep_inactive(gy * e_hp.unsqueeze(1), gy, lo, hi, depth))

    @staticmethod
    def ctrnn_forward(lo, hi, checked=True, depth=None, *, syn, x, step_gain, decay, x_out, y_out, z_next):
        """x⁺ = syn · S h F(-γh) + x e^{-γh} (eq. 6-8, ``step_gain`` and ``decay``), y⁺ = tanh(x⁺)."""
        depth = depth or x.shape[0]
        x_new = syn * step_gain.unsqueeze(1) + x * decay.unsqueeze(1)
        x_out.copy_(_keep_inactive(x_new, x, lo, hi, depth))
        torch.tanh(x_out, out=y_out)
        _write_next_inputs(z_next, y_out, depth)

    @staticmethod
    def ctrnn_backward(lo, hi, checked=True, depth=None, *, back, gx, gy, y, step_gain, decay, g_state, dsyn_out):
        """One BPTT step back through ``ctrnn_forward``: writes dL/dx⁺ (``g_state``) and dL/dsyn."""
        depth = depth or gx.shape[0]
        _add_back(gy, back, depth)
        g_total = gx + gy * (1.0 - y * y)  # dL/dx⁺ (inactive layers: x⁺ = x, y⁺ = tanh x; dL/dx itself)
        g_x = _silence_inactive(g_total.clone(), lo, hi, depth)
        g_state.copy_(g_x)
        dsyn_out.copy_(g_x * step_gain.unsqueeze(1))
        gx.copy_(_keep_inactive(g_x * decay.unsqueeze(1), g_total, lo, hi, depth))
        gy.zero_()


def _native(kernel):
    def run(lo, hi, checked=True, depth=None, **arguments):
        native.call(kernel, lo, hi, checked, depth, **arguments)

    run.__name__ = run.__qualname__ = kernel
    run.__doc__ = f"``TorchKernels.{kernel}`` by the C kernel (arguments checked by ``snnspin.native.call``)."
    return staticmethod(run)


class NativeKernels:
    """The same updates by the C kernels of ``snnspin.native`` (CPU, contiguous tensors); each
    method has ``TorchKernels``' signature and meaning."""

    name = "native"
    osc_forward = _native("osc_forward")
    osc_backward = _native("osc_backward")
    ctrnn_forward = _native("ctrnn_forward")
    ctrnn_backward = _native("ctrnn_backward")


TORCH, NATIVE = TorchKernels(), NativeKernels()
_forced: list = []


def for_tensor(tensor: torch.Tensor):
    """NATIVE when the native kernels run on ``tensor`` (CPU, float32/64, compiler found, not
    wrapped by a torch.func transform), else TORCH; inside ``using(k)``, ``k``."""
    if _forced:
        return _forced[-1]
    if torch._C._functorch.is_functorch_wrapped_tensor(tensor):  # torch.func's wrappers have no storage
        return TORCH
    return NATIVE if native.supports(tensor) else TORCH


@contextlib.contextmanager
def using(kernels):
    """Run the fused path with ``kernels`` (TORCH or NATIVE) inside the block.

    >>> with using(TORCH):
    ...     for_tensor(torch.zeros(1)).name
    'torch'
    """
    if kernels is NATIVE and not native.available():
        raise RuntimeError("the native kernels are not available on this machine (see snnspin.native)")
    _forced.append(kernels)
    try:
        yield kernels
    finally:
        _forced.pop()
