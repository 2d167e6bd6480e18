"""Fused sequence path: a layered network's whole time loop in one autograd node.

The per-step layers (``snnspin.nn``) build an autograd graph of dozens of tiny operations
per layer and step; at the paper's size the time goes to per-operation overhead. Here the
forward pass runs the loop without autograd and the backward pass is BPTT written out by
hand: one reverse loop carrying dL/dx and dL/dy, with the weight gradients formed at the
end as one matmul per weight matrix over all steps. All layers advance together along the
diagonals (step + layer) of the time × depth grid: layer l at step k needs layer l-1 at
step k and itself at step k-1, both on the previous diagonal, so one batched operation
updates every layer (L times fewer operations than a layer-by-layer loop).

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


def _fill_inputs(z, data, y, d, steps, substeps, width_in):
    """Inputs of every layer on diagonal d, in place: z[l] = [signal_l | y_l], signal_0 = data."""
    n = y.shape[-1]
    if d < steps:
        z[0, :, :width_in] = data[d // substeps]
    z[1:, :, :n] = y[:-1]
    z[:, :, z.shape[-1] - n :] = y
    return z


def _edge_mask(d, steps, layers, like):
    """[L, 1, 1] mask of the layers active on diagonal d, or None when all are."""
    lo, hi = max(0, d - steps + 1), min(layers - 1, d)
    if lo == 0 and hi == layers - 1:
        return None
    mask = torch.zeros(layers, 1, 1, dtype=like.dtype, device=like.device)
    mask[lo : hi + 1] = 1
    return mask


class _FusedOscillator(torch.autograd.Function):
    """Oscillator + high-pass layers, advanced together along the step+layer diagonals."""

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
            z = _fill_inputs(inputs[d], data, y, d, steps, substeps, width_in)
            syn = torch.baddbmm(bias, z, w.transpose(1, 2))
            drive = sigma * (gain * syn + b_fix)
            a = drive - gamma
            x_new, _, _, e, f, den, _ = _exact_parts(x, a, gamma * (1.0 + q), h)
            y_new = e_hp * y + k_hp * (x_new - x)
            active = _edge_mask(d, steps, layers, data)
            if active is not None:  # edge diagonals: layers not yet started or done keep their state
                x_new, y_new = torch.where(active.bool(), x_new, x), torch.where(active.bool(), y_new, y)
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
            active = _edge_mask(d, steps, layers, x_all)
            if active is not None:
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
    """CTRNN layers advanced together along the step+layer diagonals (see ``_FusedOscillator``)."""

    @staticmethod
    def forward(ctx, data, gains, gammas, options, *weights):
        substeps, h = options
        layers, steps = len(weights) // 3, data.shape[0] * substeps
        batch, n, width_in = data.shape[1], weights[0].shape[0], data.shape[2]
        diagonals = steps + layers - 1
        w, bias, p = _stack_weights(weights, layers, n, width_in)
        decay = torch.exp(-gammas * h).unsqueeze(1)  # [L, 1, N]
        step_gain = (h * expm1_ratio(-gammas * h)).unsqueeze(1) * gains.view(layers, 1, 1)
        x_all = data.new_empty(diagonals, layers, batch, n)
        y_all = data.new_empty(diagonals, layers, batch, n)
        inputs = data.new_zeros(diagonals, layers, batch, p + n)
        x, y = data.new_zeros(layers, batch, n), data.new_zeros(layers, batch, n)
        for d in range(diagonals):
            z = _fill_inputs(inputs[d], data, y, d, steps, substeps, width_in)
            x_new = torch.baddbmm(bias, z, w.transpose(1, 2)).mul_(step_gain).add_(x * decay)
            active = _edge_mask(d, steps, layers, data)
            if active is not None:
                x_new = torch.where(active.bool(), x_new, x)
            x = x_new
            y = torch.tanh(x)
            x_all[d], y_all[d] = x, y
        ctx.options, ctx.sizes = options, (layers, steps, p, width_in)
        ctx.save_for_backward(data, gains, gammas, w, bias, inputs, x_all, y_all)
        return y[-1].clone(), x[-1].clone()

    @staticmethod
    def backward(ctx, grad_y, grad_x):
        substeps, h = ctx.options
        layers, steps, p, width_in = ctx.sizes
        data, gains, gammas, w, bias, inputs, x_all, y_all = ctx.saved_tensors
        diagonals, batch, n = x_all.shape[0], x_all.shape[2], x_all.shape[3]
        decay = torch.exp(-gammas * h).unsqueeze(1)
        unit_gain = (h * expm1_ratio(-gammas * h)).unsqueeze(1)  # h F(-γh), [L, 1, N]
        step_gain = unit_gain * gains.view(layers, 1, 1)
        gy = x_all.new_zeros(layers, batch, n)
        gx = x_all.new_zeros(layers, batch, n)
        gy[-1] += grad_y
        gx[-1] += grad_x
        g_state = torch.empty_like(x_all)  # dL/dx per diagonal (zero where a layer is inactive)
        g_data = torch.zeros_like(data) if ctx.needs_input_grad[0] else None
        w_ext_t, w_int_t = w[:, :, :p], w[:, :, p:]
        for d in range(diagonals - 1, -1, -1):
            y = y_all[d]
            g_x = gx + gy * (1.0 - y * y)
            active = _edge_mask(d, steps, layers, x_all)
            if active is not None:
                g_x = g_x * active
            g_state[d] = g_x
            dsyn = g_x * step_gain
            back_ext = torch.bmm(dsyn, w_ext_t)
            gx = g_x * decay
            gy = torch.bmm(dsyn, w_int_t)
            gy[:-1] += back_ext[1:, :, :n]
            if g_data is not None and d < steps:
                g_data[d // substeps] += back_ext[0, :, :width_in]
        dsyn_all = g_state * step_gain
        flat_d = dsyn_all.permute(1, 3, 0, 2).reshape(layers, n, diagonals * batch)
        flat_z = inputs.permute(1, 0, 2, 3).reshape(layers, diagonals * batch, p + n)
        g_w = torch.bmm(flat_d, flat_z)
        g_b_all = dsyn_all.sum((0, 2))
        grads = []
        for l in range(layers):
            in_l = width_in if l == 0 else n
            grads.extend([g_w[l, :, :in_l], g_b_all[l], g_w[l, :, p:]])
        g_gains = g_gammas = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            syn = torch.baddbmm(bias, flat_z, w.transpose(1, 2)).view(layers, diagonals, batch, n).transpose(0, 1)
            if ctx.needs_input_grad[1]:
                g_gains = (g_state * syn * unit_gain).sum((0, 2, 3))
            if ctx.needs_input_grad[2]:
                w_exp = -gammas * h
                d_unit = (-h * h * expm1_ratio_derivative(w_exp, expm1_ratio(w_exp))).unsqueeze(1)
                x_prev = torch.cat([torch.zeros_like(x_all[:1]), x_all[:-1]])
                g_gammas = (g_state * (-h * decay * x_prev + gains.view(layers, 1, 1) * syn * d_unit)).sum((0, 2))
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
