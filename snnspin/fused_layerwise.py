"""The fused path for wide layers: one layer at a time over the whole sequence, as ``nn.RNN`` does.

The diagonal scheme of ``snnspin.fused`` advances every layer in one call per solver step,
which at small widths saves most of the per-call overhead. For wide layers the matrix products
dominate, and their shape matters more than the number of calls: taken one layer at a time,
a layer's input drive W_ext s + b over all steps, its weight gradients and the gradient it
passes down are each **one** large product (inner dimension T·B), and only the recurrent
product W_int y(k-1) runs step by step. ``snnspin.fused`` picks this scheme from
``LAYERWISE_FROM`` neurons per layer on. Same equations, same kernels (called on one layer,
``[1, B, N]``), same inputs and outputs as the diagonal Functions, and the same results to
rounding (the tests hold both to the per-step reference path to 1e-12 in float64).

On CPU with the native kernels, each layer's step loop runs in C (``snnspin.native.sequences``:
the recurrent product through torch's own BLAS GEMM, then the same kernel), one call per layer
and direction instead of two per step; elsewhere (GPU, torch kernels, no GEMM found) the Python
loop below runs. The tests hold the two loops to each other to 1e-12 in float64.

Per layer l, solver step k (``ys[k]``: the output before step k):

    forward:  syn(k) = drive(k) + W_int ys[k];  (x, ys[k+1]) = step(x, ys[k], syn(k))
    backward: dL/dys[k] = (what the step passes back) + dsyn(k) W_int + (the layer above's
              dL/d(its signal at step k-1)); then dW_int = Σ dsyn(k)ᵀ ys[k],
              dW_ext = Σ dsyn(k)ᵀ s(k) and dL/ds = dsyn W_ext, each one product over all steps.

Where only the weights learn (S, τ and b_fixed fixed, the default) and autograd's backward will
run, the oscillator's C forward keeps each step's two derivatives, c = ∂x⁺/∂syn and d = ∂x⁺/∂x,
in the buffers of the synaptic sums and the states (``_keeps_derivatives``), and the backward
reads them instead of recomputing the step: dL/dsyn(k) = c g, dL/dx = d g - K dL/dy⁺ with
g = dL/dx⁺ + K dL/dy⁺ (K the filter's gain). Same memory, the same gradients to rounding.

As in the diagonal scheme, each Function also returns the last layer's output summed over the
steps ``[1, B, N]`` (differentiable) for a readout of the mean (``readout_time="mean"``): what
comes back for it is the same dL/dy at every step, added where the layer above's would be.
"""

from __future__ import annotations

import torch

from . import pointwise
from .native import sequences
from .fused_support import (_backward_kernels, _first_order_only, _state_grads, ctrnn_constant_grads,
                            ctrnn_step_constants, in_c, oscillator_arguments, oscillator_constant_grads)

#: From this many neurons per layer on, the fused path runs layer by layer (``snnspin.fused``).
LAYERWISE_FROM = 48


def _signal0(data, substeps):
    """Layer 0's signal per solver step: the data repeated over sub-steps, ``[T·substeps, B, F]``."""
    return data.repeat_interleave(substeps, 0) if substeps > 1 else data


def _rows(t):
    """``[steps, ..., B, F]`` → ``[steps·B, F]`` (one row per step and sample)."""
    return t.reshape(-1, t.shape[-1])


def _layer_grads(dsyn, signal, ys, w_ext, w_int, pass_down):
    """(dW_ext, db, dW_int) of one layer and dL/d(its signal) ``[steps, B, F]`` (None unless
    ``pass_down``), each one product over all (step, sample) rows."""
    rows = _rows(dsyn)
    g_ext = rows.t() @ _rows(signal)
    g_int = rows.t() @ _rows(ys)
    g_down = (rows @ w_ext).view(signal.shape) if pass_down else None
    return g_ext, rows.sum(0), g_int, g_down


def _buffers(data, layers, steps, n):
    """Per layer and solver step ``[L, steps, 1, B, N]``: the states, the outputs (one more: the
    output before the first step) and the synaptic sums, all kept for the backward."""
    batch = data.shape[1]
    return (data.new_empty(layers, steps, 1, batch, n), data.new_empty(layers, steps + 1, 1, batch, n),
            data.new_empty(layers, steps, 1, batch, n))


def _drive(signal, w_ext, bias):
    """W_ext s(k) + b for every solver step at once, ``[steps, B, N]``: one product."""
    return torch.addmm(bias, _rows(signal), w_ext.t()).view(*signal.shape[:2], -1)


def _data_grad(g_down, data, substeps):
    return g_down.view(data.shape[0], substeps, *data.shape[1:]).sum(1) if g_down is not None else None


def _drive_into(syns, signal, w_ext, bias):
    """W_ext s(k) + b for every solver step, written straight into the layer's ``syns`` ``[steps, B, N]``."""
    torch.addmm(bias, _rows(signal), w_ext.t(), out=syns.view(-1, syns.shape[-1]))


def _last_layer_grads(grad_sum, like):
    """dL/d(the last layer's output after step k) ``[steps, B, N]`` from what came back for its sum
    over the steps ``[1, B, N]`` (None: nothing came back): the same at every step."""
    return None if grad_sum is None else grad_sum[0].expand(like.shape).contiguous()


def _keeps_derivatives(data, x0, y0, gains, gammas, bias_fixed, constants, weights) -> bool:
    """Whether the oscillator's C loops keep each step's derivatives (``osc_forward_keep_seq``) in
    place of its states and synaptic sums: in C, autograd's backward to follow
    (``backward_follows``) for something (the weights, the data or the initial state), and S, γ,
    b_fixed without gradients (their gradients need the sums). The backward is then a few
    multiply-adds per neuron and step instead of the step recomputed, for the same memory:
    c = ∂x⁺/∂syn over the sums, d = ∂x⁺/∂x over the states."""
    return constants[-1] and in_c(pointwise.for_tensor(data), data) and \
        any(t.requires_grad for t in (data, x0, y0, *weights)) and \
        not any(t.requires_grad for t in (gains, gammas, bias_fixed))


def _per_layer(values: dict, l: int) -> dict:
    """Layer l's rows ``[1, N]`` of the per-neuron constants (scalars as they are)."""
    return {k: v[l : l + 1].contiguous() if isinstance(v, torch.Tensor) else v for k, v in values.items()}


class LayerwiseOscillator(torch.autograd.Function):
    """``snnspin.fused._FusedOscillator``, layer by layer: same inputs and outputs, except that the
    thermal draws come per solver step, ``[steps, L, 2, B, N]`` (or None), and that with kept
    derivatives (``_keeps_derivatives``) the buffers returned for the backward hold d and c in
    place of the states and the synaptic sums."""

    @staticmethod
    def forward(data, x0, y0, gains, gammas, bias_fixed, constants, *weights):
        every, noise, substeps = oscillator_arguments(gains, gammas, bias_fixed, constants)
        kernels, layers = pointwise.for_tensor(data), len(weights) // 3
        signal = _signal0(data, substeps)
        steps, n = signal.shape[0], x0.shape[-1]
        xs_all, ys_all, syn_all = _buffers(data, layers, steps, n)
        in_one_call = in_c(kernels, data)
        kept = _keeps_derivatives(data, x0, y0, gains, gammas, bias_fixed, constants, weights)
        x_last = []  # kept: each layer's last state (xs_all holds d = ∂x⁺/∂x instead)
        for l in range(layers):
            w_ext, bias, w_int = weights[3 * l : 3 * l + 3]
            per = _per_layer(every, l)
            xs, ys, syns, w_int_t = xs_all[l], ys_all[l], syn_all[l], w_int.t()
            ys[0, 0] = y0[l]
            if in_one_call:  # (kept implies in C)
                _drive_into(syns[:, 0], signal, w_ext, bias)
                loop = dict(w_int=w_int.contiguous(), syn=syns[:, 0], x0=x0[l].contiguous(), ys=ys[:, 0],
                            noise=noise[:, l : l + 1] if noise is not None else None, **per)
                if kept:
                    pair = data.new_empty(2, *x0.shape[1:])
                    sequences.run("osc_forward_keep_seq", ds=xs[:, 0], x_pair=pair, **loop)
                    x_last.append(pair[(steps - 1) % 2])
                else:
                    sequences.run("osc_forward_seq", xs=xs[:, 0], **loop)
                signal = ys[1:, 0]
                continue
            drive = _drive(signal, w_ext, bias)
            x = x0[l : l + 1].contiguous()
            for k in range(steps):
                torch.addmm(drive[k], ys[k, 0], w_int_t, out=syns[k, 0])
                draws = noise[k, l : l + 1] if noise is not None else None
                kernels.osc_forward(0, 0, k < 2, syn=syns[k], x=x, y=ys[k], x_out=xs[k], y_out=ys[k + 1],
                                    z_next=None, noise=draws, **per)
                x = xs[k]
            signal = ys[1:, 0]
        final_x = torch.stack(x_last) if kept else xs_all[:, -1, 0].clone()
        return final_x, ys_all[:, -1, 0].clone(), ys_all[-1:, 1:, 0].sum(1), xs_all, ys_all, syn_all

    @staticmethod
    def setup_context(ctx, inputs, output):
        data, x0, y0, gains, gammas, bias_fixed, constants, *weights = inputs
        ctx.every, ctx.noise, ctx.substeps = oscillator_arguments(gains, gammas, bias_fixed, constants)
        ctx.kept = _keeps_derivatives(data, x0, y0, gains, gammas, bias_fixed, constants, weights)
        ctx.mark_non_differentiable(*output[3:])
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(data, x0, *output[3:], *weights)
        ctx.kernels = pointwise.for_tensor(data)

    @staticmethod
    @_first_order_only
    def backward(ctx, grad_x, grad_y, grad_sum, *_):
        data, x0, xs_all, ys_all, syn_all, *weights = ctx.saved_tensors
        kernels, noise, every = _backward_kernels(ctx, grad_x, grad_y, grad_sum), ctx.noise, ctx.every
        if ctx.kept and kernels is not ctx.kernels:  # backward_follows() ruled torch.func out
            raise RuntimeError("the fused forward kept derivatives for a native backward, not a torch.func one")
        layers, steps = xs_all.shape[:2]
        gxf, gyf = _state_grads(grad_x, x0), _state_grads(grad_y, x0)
        g_weights, g_above = [None] * (3 * layers), _last_layer_grads(grad_sum, syn_all[-1, :, 0])
        g_gain, g_a, g_b = (torch.zeros_like(x0[:, 0]) for _ in range(3))  # [L, N]
        signal0 = _signal0(data, ctx.substeps)
        for l in range(layers - 1, -1, -1):
            w_ext, _, w_int = weights[3 * l : 3 * l + 3]
            per = _per_layer(every, l)
            gx, gy = gxf[l : l + 1], gyf[l : l + 1]
            if g_above is not None:
                gy[0] += g_above[steps - 1]
            dsyn = torch.empty_like(syn_all[l])
            sums = [torch.zeros_like(gx) for _ in range(3)]
            xs, syns = xs_all[l], syn_all[l]
            if ctx.kept or in_c(kernels, data):
                loop = dict(w_int=w_int.contiguous(), gx=gx[0], gy=gy[0], dsyn=dsyn[:, 0], g_above=g_above)
                if ctx.kept:  # xs holds d = ∂x⁺/∂x, syns c = ∂x⁺/∂syn (_keeps_derivatives)
                    sequences.run("osc_backward_kept_seq", cs=syns[:, 0], ds=xs[:, 0], e_hp=per["e_hp"],
                                  k_hp=per["k_hp"], **loop)
                else:
                    sequences.run("osc_backward_seq", x0=x0[l].contiguous(), xs=xs[:, 0], syn=syns[:, 0],
                                  noise=noise[:, l : l + 1] if noise is not None else None, g_gain=sums[0][0],
                                  g_a_sum=sums[1][0], g_b_sum=sums[2][0], **loop, **per)
            else:
                x_first = x0[l : l + 1].contiguous()
                for k in range(steps - 1, -1, -1):
                    draws = noise[k, l : l + 1] if noise is not None else None
                    kernels.osc_backward(0, 0, k > steps - 3, back=None, gx=gx, gy=gy,
                                         x_old=xs[k - 1] if k > 0 else x_first, syn=syns[k], dsyn_out=dsyn[k],
                                         g_gain=sums[0], g_a_sum=sums[1], g_b_sum=sums[2], noise=draws, **per)
                    gy[0].addmm_(dsyn[k, 0], w_int)  # ys[k] fed this step's recurrent product
                    if g_above is not None and k > 0:
                        gy[0] += g_above[k - 1]  # ys[k] was the layer above's signal at step k-1
            signal = signal0 if l == 0 else ys_all[l - 1, 1:, 0]
            pass_down = l > 0 or ctx.needs_input_grad[0]
            g_ext, g_bias, g_int, g_above = _layer_grads(dsyn, signal, ys_all[l, :-1], w_ext, w_int, pass_down)
            g_weights[3 * l : 3 * l + 3] = [g_ext, g_bias, g_int]
            g_gain[l], g_a[l], g_b[l] = (s[0].sum(0) for s in sums)
        return (_data_grad(g_above, data, ctx.substeps) if ctx.needs_input_grad[0] else None,
                gxf if ctx.needs_input_grad[1] else None, gyf if ctx.needs_input_grad[2] else None,
                *oscillator_constant_grads(ctx.needs_input_grad[3:6], g_gain, g_a, g_b, every), None, *g_weights)


class LayerwiseCTRNN(torch.autograd.Function):
    """``snnspin.fused._FusedCTRNN``, layer by layer: same inputs and outputs."""

    @staticmethod
    def forward(data, x0, gains, gammas, options, *weights):
        substeps, h = options
        kernels, layers = pointwise.for_tensor(data), len(weights) // 3
        signal = _signal0(data, substeps)
        steps, n = signal.shape[0], x0.shape[-1]
        step_gain, decay = ctrnn_step_constants(gains, gammas, h)
        xs_all, ys_all, syn_all = _buffers(data, layers, steps, n)
        in_one_call = in_c(kernels, data)
        for l in range(layers):
            w_ext, bias, w_int = weights[3 * l : 3 * l + 3]
            xs, ys, syns, w_int_t = xs_all[l], ys_all[l], syn_all[l], w_int.t()
            ys[0, 0] = torch.tanh(x0[l])
            sg, dec = step_gain[l : l + 1], decay[l : l + 1]
            if in_one_call:
                _drive_into(syns[:, 0], signal, w_ext, bias)
                sequences.run("ctrnn_forward_seq", w_int=w_int.contiguous(), syn=syns[:, 0], x0=x0[l].contiguous(),
                              ys=ys[:, 0], xs=xs[:, 0], step_gain=sg, decay=dec)
                signal = ys[1:, 0]
                continue
            drive = _drive(signal, w_ext, bias)
            x = x0[l : l + 1].contiguous()
            for k in range(steps):
                torch.addmm(drive[k], ys[k, 0], w_int_t, out=syns[k, 0])
                kernels.ctrnn_forward(0, 0, k < 2, syn=syns[k], x=x, step_gain=sg, decay=dec, x_out=xs[k],
                                      y_out=ys[k + 1], z_next=None)
                x = xs[k]
            signal = ys[1:, 0]
        return (xs_all[:, -1, 0].clone(), ys_all[:, -1, 0].clone(), ys_all[-1:, 1:, 0].sum(1), xs_all, ys_all, syn_all,
                step_gain, decay)

    @staticmethod
    def setup_context(ctx, inputs, output):
        data, x0, gains, gammas, options, *weights = inputs
        ctx.mark_non_differentiable(*output[3:])
        ctx.set_materialize_grads(False)
        ctx.options, ctx.kernels = options, pointwise.for_tensor(data)
        ctx.save_for_backward(data, x0, gains, gammas, *output[3:], *weights)

    @staticmethod
    @_first_order_only
    def backward(ctx, grad_x, grad_y, grad_sum, *_):
        substeps, h = ctx.options
        data, x0, gains, gammas, xs_all, ys_all, syn_all, step_gain, decay, *weights = ctx.saved_tensors
        kernels = _backward_kernels(ctx, grad_x, grad_y, grad_sum)
        layers, steps = xs_all.shape[:2]
        gxf, gyf = _state_grads(grad_x, x0), _state_grads(grad_y, x0)
        g_weights, g_above = [None] * (3 * layers), _last_layer_grads(grad_sum, syn_all[-1, :, 0])
        g_state_all = torch.empty_like(xs_all)
        signal0 = _signal0(data, substeps)
        for l in range(layers - 1, -1, -1):
            w_ext, _, w_int = weights[3 * l : 3 * l + 3]
            gx, gy = gxf[l : l + 1], gyf[l : l + 1]
            if g_above is not None:
                gy[0] += g_above[steps - 1]
            dsyn, g_state, ys = torch.empty_like(syn_all[l]), g_state_all[l], ys_all[l]
            sg, dec = step_gain[l : l + 1], decay[l : l + 1]
            if in_c(kernels, data):
                sequences.run("ctrnn_backward_seq", w_int=w_int.contiguous(), gx=gx[0], gy=gy[0], ys=ys[:, 0],
                              step_gain=sg, decay=dec, g_state=g_state[:, 0], dsyn=dsyn[:, 0], g_above=g_above)
            else:
                for k in range(steps - 1, -1, -1):
                    kernels.ctrnn_backward(0, 0, k > steps - 3, back=None, gx=gx, gy=gy, y=ys[k + 1], step_gain=sg,
                                           decay=dec, g_state=g_state[k], dsyn_out=dsyn[k])
                    gy[0].addmm_(dsyn[k, 0], w_int)
                    if g_above is not None and k > 0:
                        gy[0] += g_above[k - 1]
            gx[0] += gy[0] * (1.0 - torch.tanh(x0[l]) ** 2)  # y0 = tanh x0
            signal = signal0 if l == 0 else ys_all[l - 1, 1:, 0]
            pass_down = l > 0 or ctx.needs_input_grad[0]
            g_ext, g_bias, g_int, g_above = _layer_grads(dsyn, signal, ys[:-1], w_ext, w_int, pass_down)
            g_weights[3 * l : 3 * l + 3] = [g_ext, g_bias, g_int]
        g_gains = g_gammas = None
        if ctx.needs_input_grad[2] or ctx.needs_input_grad[3]:
            x_prev = torch.cat([x0.unsqueeze(1), xs_all[:, :-1, 0]], dim=1)  # [L, steps, B, N]
            g_gains, g_gammas = ctrnn_constant_grads(ctx.needs_input_grad[2:4], g_state_all[:, :, 0],
                                                     syn_all[:, :, 0], x_prev, gains, gammas, decay, h)
        return (_data_grad(g_above, data, substeps) if ctx.needs_input_grad[0] else None,
                gxf if ctx.needs_input_grad[1] else None, g_gains, g_gammas, None, *g_weights)
