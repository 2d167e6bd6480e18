"""Fused sequence path: a layered network's whole time loop in one autograd node.

The per-step layers (``snnspin.nn``) build an autograd graph of dozens of tiny operations
per layer and step; at the paper's size the time goes to per-operation overhead. Here the
forward pass runs the loop without autograd and the backward pass is BPTT written out by
hand: one reverse loop over steps and layers carrying dL/dx and dL/dy, with the weight
gradients formed at the end as one matmul per weight matrix over all steps.

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


_OSC_STORED = ("x", "y", "syn", "a", "e", "f", "den")


class _FusedOscillator(torch.autograd.Function):
    @staticmethod
    def forward(ctx, data, gains, gammas, options, *weights):
        substeps, h, omega, q, sigma, bias_fixed = options
        layers, total = len(weights) // 3, data.shape[0] * substeps
        batch, n = data.shape[1], weights[0].shape[0]
        e_hp, k_hp = math.exp(-omega * h), expm1_ratio(-omega * h)
        b_fixes = 2.0 * gammas if bias_fixed is None else torch.full_like(gammas, bias_fixed)
        rests = (sigma * b_fixes - gammas) / (gammas * q + sigma * b_fixes)  # [L, N]
        stored = {key: [data.new_empty(total, batch, n) for _ in range(layers)] for key in _OSC_STORED}
        x = [rests[l].expand(batch, n) for l in range(layers)]
        y = [data.new_zeros(batch, n) for _ in range(layers)]
        for k in range(total):
            signal = data[k // substeps]
            for l in range(layers):
                w_ext, bias, w_int = weights[3 * l : 3 * l + 3]
                gain, gamma = gains[l], gammas[l]
                syn = _syn(signal, w_ext, bias, y[l], w_int)
                drive = sigma * (gain * syn + b_fixes[l])
                a = drive - gamma
                x_new, _, _, e, f, den = _exact_parts(x[l], a, gamma * q + drive, h)
                y[l] = e_hp * y[l] + k_hp * (x_new - x[l])
                x[l] = x_new
                for key, value in zip(_OSC_STORED, (x_new, y[l], syn, a, e, f, den)):
                    stored[key][l][k] = value
                signal = y[l]
        ctx.options, ctx.layers = options, layers
        ctx.save_for_backward(data, gains, gammas, rests, *weights, *(t for key in _OSC_STORED for t in stored[key]))
        return y[-1].clone(), x[-1].clone()

    @staticmethod
    def backward(ctx, grad_y, grad_x):
        substeps, h, omega, q, sigma, bias_fixed = ctx.options
        layers = ctx.layers
        saved = ctx.saved_tensors
        data, gains, gammas, rests = saved[:4]
        weights = saved[4 : 4 + 3 * layers]
        flat = saved[4 + 3 * layers :]
        stored = {key: flat[i * layers : (i + 1) * layers] for i, key in enumerate(_OSC_STORED)}
        x_all, y_all = stored["x"], stored["y"]
        e_hp, k_hp = math.exp(-omega * h), expm1_ratio(-omega * h)
        total = data.shape[0] * substeps
        zeros, gy, gx, dsyn_all = _backward_carries(x_all, grad_y, grad_x)
        g_gain = [zeros.clone() for _ in range(layers)]
        g_a_sum = [zeros.clone() for _ in range(layers)]
        g_b_sum = [zeros.clone() for _ in range(layers)]
        for k in range(total - 1, -1, -1):
            for l in range(layers - 1, -1, -1):
                w_ext, _, w_int = weights[3 * l : 3 * l + 3]
                gain, gamma = gains[l], gammas[l]
                x_old = x_all[l][k - 1] if k > 0 else rests[l].expand_as(zeros)
                a = stored["a"][l][k]
                grow = a >= 0
                w = torch.where(grow, -a, a) * h
                b = a + gamma * (1.0 + q)
                d_x, d_a, d_b = exact_derivatives(
                    x_old, b, x_all[l][k], grow, w, stored["e"][l][k], stored["f"][l][k], stored["den"][l][k], h
                )
                g_y = gy[l]
                g_xn = gx[l] + k_hp * g_y
                g_a, g_b = g_xn * d_a, g_xn * d_b
                g_drive = sigma * (g_a + g_b)
                g_gain[l] += g_drive * stored["syn"][l][k]
                g_a_sum[l] += g_a
                g_b_sum[l] += g_b
                dsyn = gain * g_drive
                dsyn_all[l][k] = dsyn
                gy[l] = torch.addmm(e_hp * g_y, dsyn, w_int)
                gx[l] = d_x * g_xn - k_hp * g_y
                if l > 0:
                    gy[l - 1] = gy[l - 1].addmm_(dsyn, w_ext)
        grads = []
        for l in range(layers):
            signal, y_prev = _layer_inputs(data, y_all, l, substeps)
            grads.extend(_weight_grads(dsyn_all[l], signal, y_prev))
        g_data = _input_grad(data, dsyn_all[0], weights[0], substeps) if ctx.needs_input_grad[0] else None
        g_gains = torch.stack([g.sum() for g in g_gain]) if ctx.needs_input_grad[1] else None
        g_gammas = None
        if ctx.needs_input_grad[2]:
            # a = σ(S syn + b_fix) - γ and b = γQ + σ(S syn + b_fix), with b_fix = 2γ unless given;
            # the initial state x(0) = rest(γ) is a constant, as in the reference path
            dfix = 2.0 if bias_fixed is None else 0.0
            g_gammas = torch.stack([
                (g_a_sum[l] * (sigma * dfix - 1.0) + g_b_sum[l] * (q + sigma * dfix)).sum(0) for l in range(layers)
            ])
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
