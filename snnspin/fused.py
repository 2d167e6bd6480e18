"""Fused sequence path: a layered network's whole time loop in one autograd node.

The per-step layers (``snnspin.nn``) build an autograd graph of dozens of tiny operations
per layer and step; at the paper's size the time goes to per-operation overhead. Here the
forward pass runs the loop without autograd and the backward pass is BPTT written out by
hand: one reverse loop carrying dL/dx and dL/dy, with the weight gradients formed at the
end as one matmul per weight matrix over all steps. The oscillator network also advances
all its layers together along the diagonals (step + layer) of the time × depth grid, so
one batched operation updates every layer.

Same equations as the reference path (``snnspin.functional``), solver step k, layer l:

    syn_l(k) = W_ext,l s_{l-1}(k) + W_int,l y_l(k-1) + b_l     (s_{-1}: input, s_l = y_l)
    spintronic: I = S syn + b_fixed, x⁺ = Φ_exact(x, I) (eq. 2), y⁺ = E y + K (x⁺ - x) (eq. 5)
    CTRNN:      x⁺ = x e^{-γh} + S syn h F(-γh),  y⁺ = tanh(x⁺)     (eq. 6-8)

with h the solver step, E = e^{-ωh}, K = F(-ωh), F(w) = (e^w - 1)/w. Each returns the last
layer's (y, x) after the last step ``[B, N]``; the readout runs outside, under autograd.
The tests compare loss and every gradient with the reference path to 1e-12 in float64.
"""

from __future__ import annotations

import math

import torch

from .functional.exponential import expm1_ratio, expm1_ratio_derivative
from .functional.oscillator import _exact_parts, exact_derivatives


def _syn(signal, w_ext, bias, y_self, w_int):
    return torch.addmm(bias, signal, w_ext.t()).addmm_(y_self, w_int.t())


def _weight_grads(dsyn, inputs, selfs):
    """(dW_ext, db, dW_int) = Σ_k dsyn_kᵀ [s_k, 1, y_self_k] as one matmul over steps and batch."""
    d = dsyn.flatten(0, 1)
    return d.t() @ inputs.flatten(0, 1), d.sum(0), d.t() @ selfs.flatten(0, 1)


def _layer_inputs(data, y_all, l, substeps):
    """Per solver step: the layer's input signal [K, B, F] and its own previous output [K, B, N]."""
    if l == 0:
        signal = data.repeat_interleave(substeps, dim=0)
    else:
        signal = y_all[l - 1]
    y_prev = torch.cat([torch.zeros_like(y_all[l][:1]), y_all[l][:-1]])
    return signal, y_prev


def _backward_carries(x_all, grad_y, grad_x):
    """Zero carries dL/dy, dL/dx per layer, seeded at the last layer with the output gradients,
    and the per-step dL/dsyn buffers."""
    zeros = torch.zeros_like(x_all[0][0])
    gy = [zeros.clone() for _ in x_all]
    gx = [zeros.clone() for _ in x_all]
    gy[-1] = gy[-1] + grad_y
    gx[-1] = gx[-1] + grad_x
    return zeros, gy, gx, [torch.empty_like(x) for x in x_all]


def _input_grad(data, dsyn0, w_ext0, substeps):
    g = (dsyn0 @ w_ext0).view(data.shape[0], substeps, *data.shape[1:])
    return g.sum(1)


_WAVE_STORED = ("x", "syn", "a", "e", "f", "den")


def _stack_weights(weights, layers, n, width_in):
    """[L, N, P + N] weights ([W_ext padded to P columns | W_int]) and [L, 1, N] biases."""
    p = max(width_in, n)
    stacked = weights[0].new_zeros(layers, n, p + n)
    for l in range(layers):
        w_ext, _, w_int = weights[3 * l : 3 * l + 3]
        stacked[l, :, : w_ext.shape[1]] = w_ext
        stacked[l, :, p:] = w_int
    biases = torch.stack([weights[3 * l + 1] for l in range(layers)]).unsqueeze(1)
    return stacked, biases, p


class _FusedOscillator(torch.autograd.Function):
    """All layers advance together along diagonals d = k + l of (step k, layer l): layer l at
    step k needs layer l-1 at step k (diagonal d-1) and itself at step k-1 (diagonal d-1), so
    one diagonal is one batched update of every layer — L times fewer operations."""

    @staticmethod
    def forward(ctx, data, gains, gammas, options, *weights):
        substeps, h, omega, q, sigma, bias_fixed = options
        layers, steps = len(weights) // 3, data.shape[0] * substeps
        batch, n, width_in = data.shape[1], weights[0].shape[0], data.shape[2]
        diagonals = steps + layers - 1
        w, bias, p = _stack_weights(weights, layers, n, width_in)
        e_hp, k_hp = math.exp(-omega * h), expm1_ratio(-omega * h)
        gamma = gammas.unsqueeze(1)  # [L, 1, N]
        gain = gains.view(layers, 1, 1)
        b_fix = 2.0 * gamma if bias_fixed is None else torch.full_like(gamma, bias_fixed)
        rest = ((sigma * b_fix - gamma) / (gamma * q + sigma * b_fix)).expand(layers, batch, n)
        stored = {key: data.new_empty(diagonals, layers, batch, n) for key in _WAVE_STORED}
        inputs = data.new_zeros(diagonals, layers, batch, p + n)
        x, y = rest, data.new_zeros(layers, batch, n)
        for d in range(diagonals):
            z = inputs[d]
            if d < steps:
                z[0, :, :width_in] = data[d // substeps]
            z[1:, :, :n] = y[:-1]
            z[:, :, p:] = y
            syn = torch.baddbmm(bias, z, w.transpose(1, 2))
            drive = sigma * (gain * syn + b_fix)
            a = drive - gamma
            x_new, _, _, e, f, den = _exact_parts(x, a, gamma * q + drive, h)
            y_new = e_hp * y + k_hp * (x_new - x)
            lo, hi = max(0, d - steps + 1), min(layers - 1, d)
            if lo > 0 or hi < layers - 1:  # edge diagonals: layers outside [lo, hi] keep their state
                active = torch.zeros(layers, 1, 1, dtype=torch.bool, device=data.device)
                active[lo : hi + 1] = True
                x_new, y_new = torch.where(active, x_new, x), torch.where(active, y_new, y)
            x, y = x_new, y_new
            for key, value in zip(_WAVE_STORED, (x, syn, a, e, f, den)):
                stored[key][d] = value
        ctx.options, ctx.sizes = options, (layers, steps, p, width_in)
        ctx.save_for_backward(data, gains, gammas, rest, w, inputs, *(stored[k] for k in _WAVE_STORED))
        return y[-1].clone(), x[-1].clone()

    @staticmethod
    def backward(ctx, grad_y, grad_x):
        substeps, h, omega, q, sigma, bias_fixed = ctx.options
        layers, steps, p, width_in = ctx.sizes
        data, gains, gammas, rest, w, inputs, *flat = ctx.saved_tensors
        stored = dict(zip(_WAVE_STORED, flat))
        x_all = stored["x"]
        diagonals, batch, n = x_all.shape[0], x_all.shape[2], x_all.shape[3]
        e_hp, k_hp = math.exp(-omega * h), expm1_ratio(-omega * h)
        gamma = gammas.unsqueeze(1)
        gain = gains.view(layers, 1, 1)
        gy = x_all.new_zeros(layers, batch, n)
        gx = x_all.new_zeros(layers, batch, n)
        gy[-1] += grad_y
        gx[-1] += grad_x
        dsyn_all = torch.empty_like(x_all)
        g_data = torch.zeros_like(data) if ctx.needs_input_grad[0] else None
        g_gain = x_all.new_zeros(layers, batch, n)
        g_a_sum = x_all.new_zeros(layers, batch, n)
        g_b_sum = x_all.new_zeros(layers, batch, n)
        w_ext_t, w_int_t = w[:, :, :p], w[:, :, p:]
        for d in range(diagonals - 1, -1, -1):
            x_old = x_all[d - 1] if d > 0 else rest
            a = stored["a"][d]
            grow = a >= 0
            w_exp = torch.where(grow, -a, a) * h
            b = a + gamma * (1.0 + q)
            d_x, d_a, d_b = exact_derivatives(x_old, b, x_all[d], grow, w_exp, stored["e"][d], stored["f"][d],
                                              stored["den"][d], h)
            g_xn = gx + k_hp * gy
            lo, hi = max(0, d - steps + 1), min(layers - 1, d)
            if lo > 0 or hi < layers - 1:
                active = torch.zeros(layers, 1, 1, dtype=x_all.dtype, device=x_all.device)
                active[lo : hi + 1] = 1.0
                g_xn = g_xn * active
            g_a, g_b = g_xn * d_a, g_xn * d_b
            g_drive = sigma * (g_a + g_b)
            g_gain += g_drive * stored["syn"][d]
            g_a_sum += g_a
            g_b_sum += g_b
            dsyn = gain * g_drive
            dsyn_all[d] = dsyn
            back_ext = torch.bmm(dsyn, w_ext_t)  # [L, B, P]: to the previous layer's y (layer 0: input)
            gx = d_x * g_xn - k_hp * gy
            gy = torch.baddbmm(e_hp * gy, dsyn, w_int_t)
            gy[:-1] += back_ext[1:, :, :n]
            if g_data is not None and d < steps:
                g_data[d // substeps] += back_ext[0, :, :width_in]
        flat_d = dsyn_all.permute(1, 3, 0, 2).reshape(layers, n, diagonals * batch)
        flat_z = inputs.permute(1, 0, 2, 3).reshape(layers, diagonals * batch, p + n)
        g_w = torch.bmm(flat_d, flat_z)  # [L, N, P + N]
        g_b_all = dsyn_all.sum((0, 2))  # [L, N]
        grads = []
        for l in range(layers):
            in_l = width_in if l == 0 else n
            grads.extend([g_w[l, :, :in_l], g_b_all[l], g_w[l, :, p:]])
        g_gains = g_gain.sum((1, 2)) if ctx.needs_input_grad[1] else None
        g_gammas = None
        if ctx.needs_input_grad[2]:
            dfix = 2.0 if bias_fixed is None else 0.0
            g_gammas = (g_a_sum * (sigma * dfix - 1.0) + g_b_sum * (q + sigma * dfix)).sum(1)
        return (g_data, g_gains, g_gammas, None, *grads)


class _FusedCTRNN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, data, gains, gammas, options, *weights):
        substeps, h = options
        layers, total = len(weights) // 3, data.shape[0] * substeps
        batch, n = data.shape[1], weights[0].shape[0]
        decays = torch.exp(-gammas * h)  # [L, N]
        step_gains = h * expm1_ratio(-gammas * h)
        store = lambda: data.new_empty(total, batch, n)
        x_all, y_all = [store() for _ in range(layers)], [store() for _ in range(layers)]
        x = [data.new_zeros(batch, n) for _ in range(layers)]
        y = [data.new_zeros(batch, n) for _ in range(layers)]
        for k in range(total):
            signal = data[k // substeps]
            for l in range(layers):
                w_ext, bias, w_int = weights[3 * l : 3 * l + 3]
                syn = _syn(signal, w_ext, bias, y[l], w_int)
                x[l] = x[l] * decays[l] + (gains[l] * syn) * step_gains[l]
                y[l] = torch.tanh(x[l])
                x_all[l][k], y_all[l][k] = x[l], y[l]
                signal = y[l]
        ctx.options, ctx.layers = options, layers
        ctx.save_for_backward(data, gains, gammas, *weights, *x_all, *y_all)
        return y[-1].clone(), x[-1].clone()

    @staticmethod
    def backward(ctx, grad_y, grad_x):
        substeps, h = ctx.options
        layers = ctx.layers
        saved = ctx.saved_tensors
        data, gains, gammas = saved[:3]
        weights = saved[3 : 3 + 3 * layers]
        x_all = saved[3 + 3 * layers : 3 + 4 * layers]
        y_all = saved[3 + 4 * layers :]
        decays = torch.exp(-gammas * h)
        w_all = -gammas * h
        step_gains = h * expm1_ratio(w_all)
        total = data.shape[0] * substeps
        _, gy, gx, dsyn_all = _backward_carries(x_all, grad_y, grad_x)
        g_drive = [torch.empty_like(x_all[0]) for _ in range(layers)]
        for k in range(total - 1, -1, -1):
            for l in range(layers - 1, -1, -1):
                w_ext, _, w_int = weights[3 * l : 3 * l + 3]
                y_new = y_all[l][k]
                g_x = gx[l] + gy[l] * (1.0 - y_new * y_new)  # dL/dx_l(k)
                g_drive[l][k] = g_x  # dL/d(S syn · step_gain) per unit
                dsyn = g_x * step_gains[l] * gains[l]
                dsyn_all[l][k] = dsyn
                gx[l] = g_x * decays[l]
                gy[l] = dsyn @ w_int
                if l > 0:
                    gy[l - 1] = gy[l - 1] + dsyn @ w_ext
        grads = []
        for l in range(layers):
            signal, y_prev = _layer_inputs(data, y_all, l, substeps)
            grads.extend(_weight_grads(dsyn_all[l], signal, y_prev))
        g_data = _input_grad(data, dsyn_all[0], weights[0], substeps) if ctx.needs_input_grad[0] else None
        g_gains = g_gammas = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            d_step_gains = -h * h * expm1_ratio_derivative(w_all, expm1_ratio(w_all))  # d(h F(-γh))/dγ
            per_gain, per_gamma = [], []
            for l in range(layers):
                signal, y_prev = _layer_inputs(data, y_all, l, substeps)
                w_ext, bias, w_int = weights[3 * l : 3 * l + 3]
                syn = torch.addmm(bias, signal.flatten(0, 1), w_ext.t()).addmm_(y_prev.flatten(0, 1), w_int.t())
                syn = syn.view_as(x_all[l])
                x_prev = torch.cat([torch.zeros_like(x_all[l][:1]), x_all[l][:-1]])
                g = g_drive[l]
                per_gain.append((g * syn * step_gains[l]).sum())
                per_gamma.append((g * (-h * decays[l] * x_prev + gains[l] * syn * d_step_gains[l])).sum((0, 1)))
            g_gains = torch.stack(per_gain) if ctx.needs_input_grad[1] else None
            g_gammas = torch.stack(per_gamma) if ctx.needs_input_grad[2] else None
        return (g_data, g_gains, g_gammas, None, *grads)


def _weights(model):
    out = []
    for ext, intra in zip(model.w_ext, model.w_int):
        out.extend([ext.effective_weight(), ext.bias, intra.effective_weight()])
    return out


def _per_layer(model, data):
    """Stacked per-layer gains ``[L]`` and rates γ ``[L, N]`` (trainable ones keep their graph)."""
    n = model.config.width
    gains = torch.stack([m.gain.reshape(()) for m in model.neurons]).to(data)
    gammas = torch.stack([m.gamma.expand(n) for m in model.neurons]).to(data)
    return gains, gammas


def fused_oscillator_sequence(model, data):
    """Run a ``SpintronicNetwork``'s layers over ``data`` ``[T, B, F]``; return the last
    layer's (y, x) ``[B, N]`` after the last step, differentiable w.r.t. every parameter."""
    first, c = model.neurons[0], model.config
    options = (c.substeps, c.dt, 2.0 * math.pi * c.f_cut_mhz * 1e-3, first.q, first.sigma, first.bias_fixed)
    return _FusedOscillator.apply(data, *_per_layer(model, data), options, *_weights(model))


def fused_ctrnn_sequence(model, data):
    """Run a ``CTRNNNetwork``'s layers over ``data``; return the last layer's (y, x) ``[B, N]``."""
    options = (model.config.substeps, model.config.dt)
    return _FusedCTRNN.apply(data, *_per_layer(model, data), options, *_weights(model))
