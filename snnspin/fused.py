"""Fused sequence path: a layered network's whole time loop in one autograd node.

The per-step layers (``snnspin.nn``) build an autograd graph of dozens of tiny operations
per layer and step; at the paper's size the time goes to per-operation overhead. Here the
forward pass runs the loop without autograd and the backward pass is BPTT written out by
hand: one reverse loop carrying dL/dx and dL/dy and accumulating the weight gradients.
Narrow layers (below ``LAYERWISE_FROM`` = 48 neurons) advance together along the
diagonals (step + layer) of the time × depth grid: layer l at step k needs layer l-1 at
step k and itself at step k-1, both on the previous diagonal, so one batched operation
updates every layer (L times fewer calls than a layer-by-layer loop). Wider layers, whose
time goes to the matrix products, run one layer at a time over the whole sequence
(``snnspin.fused_layerwise``): one large product for a layer's input drive, weight gradients
and the gradient it passes down. Both schemes take and return the same things.

Several networks of one shape (an ensemble, ``snnspin.ensemble``) run in one call: their layers
are stacked network by network into one grid of M · L layers (``depth`` = L per network; the
kernels and the views below keep each network's layers apart), each network reading its own
batch of ``data [T, M, B, F]``. Nothing couples them, so each gets what it gets alone; one
network is the case M = 1.

Long sequences: with ``config.checkpoint_every`` the sequence runs in segments under
``torch.utils.checkpoint`` (``_advance``): the backward recomputes each segment from the
state at its start, so memory holds one segment, and the gradients are full BPTT's (the
Functions take the initial state and return every layer's final state, both differentiable).

The buffers are allocated once per sequence and every diagonal passes views cut the same
way, so the native kernels' argument checks run on the first two diagonals of each loop
(the others' views have the same shapes, strides and dtype by construction).

Per diagonal the forward pass is one batched matmul (``baddbmm``: the synaptic sums of all
layers) and one pointwise update, the backward one pointwise update, one ``bmm`` (what the
drives pass back) and one ``baddbmm_`` (the weight gradients, accumulated in place). The
pointwise updates come from ``snnspin.pointwise``: native C kernels on CPU (one call each,
``snnspin.native``), torch operations elsewhere (CUDA) or without a C compiler. On CPU with
the native kernels the whole diagonal loop (products through torch's own BLAS GEMM, kernels)
runs in one C call per direction (``snnspin.native.sequences``): the same operations in the
same order without a Python round trip per diagonal, which at the paper's size was about a
third of a training step; the tests hold it to the Python loop to 1e-12 in float64. Memory per
diagonal: the oscillator keeps its state and synaptic sums (the backward recomputes the
step), the inputs of every layer, and dL/dsyn in the backward pass.

Same equations as the reference path (``snnspin.functional``), solver step k, layer l:

    syn_l(k) = W_ext,l s_{l-1}(k) + W_int,l y_l(k-1) + b_l     (s_{-1}: input, s_l = y_l)
    spintronic: I = S syn + b_fixed, x⁺ = Φ_exact(x, I) (eq. 2), y⁺ = E y + K (x⁺ - x) (eq. 5)
                (with thermal noise, x⁺ gets the kick of ``thermal_kick`` and then the floor x_min;
                 the draws come from the layers' generators in the per-step path's order)
    CTRNN:      x⁺ = x e^{-γh} + S syn h F(-γh),  y⁺ = tanh(x⁺)     (eq. 6-8)

with h the solver step, E = e^{-ωh}, K = F(-ωh), F(w) = (e^w - 1)/w. Each returns the last
layer's (y, x) after the last step ``[B, N]``; the readout runs outside, under autograd. A
readout of the mean over every step (``readout_time="mean"``) needs every step's y of the last
layer and hands every step a gradient: each Function also returns the last layers' sums over
the steps, and the backward adds what comes back for them to dL/dy before every step.
The tests compare loss and every gradient with the reference path to 1e-12 in float64.

Every constant comes per layer (and per neuron) from the layers' parameter records
(``layer.physics``, ``snnspin.functional.params``): gain, τ, b_fixed, Q, σ, the reset state
and the filter's f_cut and dt. What the fused path cannot represent (another stepper, layers
with different steps, a trainable Q, σ, x0 or f_cut, torch.func transforms) is named by
``fused_reason``: ``engine="auto"`` then takes the reference path, ``engine="fused"`` raises.
Both Functions follow torch.func's form (``setup_context``), so ``torch.func.grad`` runs
through them; vmap has no rule here (the networks route every torch.func transform to the
reference path). Second derivatives are refused loudly: ``create_graph=True`` and nested
transforms raise (``_first_order_only``); the reference path (``engine="reference"``) has them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.utils.checkpoint

from . import pointwise
from .fused_layerwise import LAYERWISE_FROM, LayerwiseCTRNN, LayerwiseOscillator
from .fused_support import (_backward_kernels, _first_order_only, _state_grads, backward_follows,
                            ctrnn_constant_grads, ctrnn_step_constants, in_c, oscillator_arguments,
                            oscillator_constant_grads)
from .native import sequences
from .functional.exponential import expm1_ratio
from .functional.oscillator import kick_amplitude


def _stack_weights(weights, layers, n, width_in):
    """[L, N, P + N] weights ([W_ext padded to P columns | W_int]) and [L, 1, N] biases (L: every
    network's layers, network by network)."""
    p = max(width_in, n)
    stacked = weights[0].new_zeros(layers, n, p + n)
    for l in range(layers):
        w_ext, _, w_int = weights[3 * l : 3 * l + 3]
        stacked[l, :, : w_ext.shape[1]] = w_ext
        stacked[l, :, p:] = w_int
    biases = torch.stack([weights[3 * l + 1] for l in range(layers)]).unsqueeze(1)
    return stacked, biases, p


def _active_layers(d, steps, depth):
    """(lo, hi): the layers (of each network) that take a step on diagonal d (the others have not
    started or are done)."""
    return max(0, d - steps + 1), min(depth - 1, d)


def _by_network(t, depth, dim=0):
    """``t`` with its layer dimension ``dim`` (every network's layers) split into (network, layer): a view."""
    return t.unflatten(dim, (-1, depth))


def _layer_inputs(data, y0, depth, n, p, substeps):
    """[D, L, B, P + N] inputs per diagonal, holding the data ``[T, M, B, F]`` (each network's layer
    0 signal, repeated over sub-steps, zero-padded to P columns) and, on diagonal 0, the initial
    outputs y0 ``[L, B, N]`` (each layer's recurrent columns, and as signal of the layer above in
    its network); the kernels write the rest: recurrent columns and the upper layers' signals.
    L = M · depth: M networks of ``depth`` layers, network by network."""
    steps, batch, width_in = data.shape[0] * substeps, data.shape[2], data.shape[3]
    inputs = data.new_empty(steps + depth - 1, y0.shape[0], batch, p + n)
    inputs[0].zero_()
    inputs[0, :, :, p:] = y0
    _by_network(inputs[0], depth)[:, 1:, :, :n] = _by_network(y0, depth)[:, :-1]
    grid = _by_network(inputs, depth, 1)  # [D, M, depth, B, P + N]
    grid[:, :, 0, :, :p].zero_()
    if p > n:  # signals wider than a layer: the upper layers' padding columns (zero weights) must be 0, not NaN
        grid[:, :, 1:, :, n:p].zero_()
    grid[:steps, :, 0, :, :width_in] = data.repeat_interleave(substeps, 0) if substeps > 1 else data
    return inputs


class _Grid(NamedTuple):
    """The time × depth grid both fused passes walk: sizes, stacked weights and inputs."""

    layers: int  # every network's layers: networks × depth
    depth: int  # layers per network
    steps: int  # solver steps: input points × sub-steps
    diagonals: int
    batch: int
    n: int
    w: torch.Tensor  # [L, N, P + N]
    bias: torch.Tensor  # [L, 1, N]
    inputs: torch.Tensor  # [D, L, B, P + N], see _layer_inputs


def _grid(data, y0, weights, substeps) -> _Grid:
    """The grid of ``data`` ``[T, M, B, F]`` through M networks whose weights come network by network."""
    layers, steps = len(weights) // 3, data.shape[0] * substeps
    depth = layers // data.shape[1]
    batch, n, width_in = data.shape[2], weights[0].shape[0], data.shape[3]
    w, bias, p = _stack_weights(weights, layers, n, width_in)
    return _Grid(layers, depth, steps, steps + depth - 1, batch, n, w, bias,
                 _layer_inputs(data, y0, depth, n, p, substeps))


def _weight_and_input_grads(dsyn_all, g_w, w, data, substeps, needs_data):
    """Every (W_ext, b, W_int) gradient from the stacked one ``g_w`` [L, N, P + N] (accumulated
    diagonal by diagonal in the backward loop, dW_l = Σ_d dsyn_l(d)ᵀ z_l(d): one product per
    diagonal with an [N, P + N] result that stays in cache) and dL/dsyn at all diagonals; and
    dL/d(data) ``[T, M, B, F]`` (each network's layer 0 signal columns)."""
    layers, batch, n = dsyn_all.shape[1:]
    models, width_in, steps = data.shape[1], data.shape[3], data.shape[0] * substeps
    p, depth = w.shape[-1] - n, layers // models
    g_b = dsyn_all.sum(0).sum(1)  # [L, N]; the outer sum first: ~30 times faster than sum((0, 2))
    grads = []
    for l in range(layers):
        in_l = width_in if l % depth == 0 else n
        grads.extend([g_w[l, :, :in_l], g_b[l], g_w[l, :, p:]])
    g_data = None
    if needs_data:  # [steps, M, B, N] @ [M, N, F]
        g_steps = torch.matmul(dsyn_all[:steps, ::depth], w[::depth, :, :width_in])
        g_data = g_steps.view(data.shape[0], substeps, models, batch, width_in).sum(1)
    return grads, g_data


def _draws_per_diagonal(noise, diagonals):
    """The thermal draws of each diagonal, ``[L, 2, B, N]`` views (None throughout: no noise)."""
    return noise.unbind(0) if noise is not None else (None,) * diagonals


def _thermal_draws(model, data, steps, by_step=False):
    """The normal draws ξ₁, ξ₂ of every noisy layer's thermal kick, ``[D, L, 2, B, N]`` by diagonal
    (layer l's step k on diagonal k + l; zero where a layer has no noise or no step), or with
    ``by_step`` ``[steps, L, 2, B, N]`` by solver step (the layer-by-layer scheme's), or None when
    no layer is noisy. They are drawn in the per-step path's order (step by step, layer by layer
    within a step, ``[2, B, N]`` each) from each layer's ``generator`` (None: torch's global RNG),
    so that both engines see the same noise from the same seeds."""
    noisy = [i for i, neuron in enumerate(model.neurons) if neuron.thermal_power]
    if not noisy:
        return None
    layers, batch, n = len(model.neurons), data.shape[1], model.config.width
    noise = data.new_zeros(steps + (0 if by_step else layers - 1), layers, 2, batch, n)
    with torch.no_grad():
        for k in range(steps):
            for i in noisy:
                noise[k + (0 if by_step else i), i] = torch.randn((2, batch, n), generator=model.neurons[i].generator,
                                                                  dtype=data.dtype, device=data.device)
    return noise


def _initial_input_grads(gy, dsyn0, w, depth):
    """dL/dy0 += what diagonal 0's drives pass back to the initial outputs they read (in place)."""
    n = gy.shape[-1]
    back = torch.bmm(dsyn0, w)
    gy += back[:, :, back.shape[-1] - n :]
    _by_network(gy, depth)[:, :-1] += _by_network(back, depth)[:, 1:, :, :n]
    return gy


def _last_layers_sum(inputs, y, depth):
    """Σ over the solver steps of each network's last-layer output ``[M, B, N]``: the recurrent
    columns of diagonals depth .. D-1 hold its outputs after steps 0 .. steps-2, ``y`` ``[L, B, N]``
    the one after the last step."""
    n = y.shape[-1]
    return inputs[depth:, depth - 1 :: depth, :, -n:].sum(0) + y[depth - 1 :: depth]


def _step_grads(grad_sum, like, depth):
    """dL/dy of every step ``[L, B, N]`` from what came back for the last layers' sums over the steps
    ``[M, B, N]`` (zero for the other layers), or None when nothing came back."""
    if grad_sum is None:
        return None
    g_sum = torch.zeros_like(like)
    g_sum[depth - 1 :: depth] = grad_sum
    return g_sum


def _add_to_active(gy, g_sum, lo, hi, depth):
    """gy += g_sum on the layers that take a step on this diagonal (in place; nothing without g_sum)."""
    if g_sum is not None:
        _by_network(gy, depth)[:, lo : hi + 1] += _by_network(g_sum, depth)[:, lo : hi + 1]


class _FusedOscillator(torch.autograd.Function):
    """Oscillator + high-pass layers, advanced together along the step+layer diagonals.

    Inputs: data ``[T, M, B, F]`` (M networks of the same shape, each with its own batch: an
    ensemble; M = 1: one network); the initial state x0, y0 ``[L, B, N]`` (L = M · depth, network
    by network); per-neuron gain, γ and
    b_fixed ``[L, N]`` (all differentiable); constants (σ, Q, E, K, the floor x_min, the thermal
    kick's amplitude ``[L, N]``, the kick's normal draws ``[D, L, 2, B, N]`` or None, sub-steps,
    h, ``backward_follows()``, which this scheme does not read); the weights. Outputs: every
    layer's x and y after the last step ``[L, B, N]`` and each network's last-layer y summed over
    the solver steps ``[M, B, N]`` (for a readout of the mean; all three differentiable), then
    what the backward needs."""

    @staticmethod
    def forward(data, x0, y0, gains, gammas, bias_fixed, constants, *weights):
        per_neuron, noise, substeps = oscillator_arguments(gains, gammas, bias_fixed, constants)
        kernels, grid = pointwise.for_tensor(data), _grid(data, y0, weights, substeps)
        layers, diagonals, batch, n, w, inputs = grid.layers, grid.diagonals, grid.batch, grid.n, grid.w, grid.inputs
        w_t, depth = w.transpose(1, 2), grid.depth
        draws = _draws_per_diagonal(noise, diagonals)
        # stored for the backward: the state and the synaptic sums per diagonal (the step is recomputed)
        x_all, syn_all = data.new_empty(diagonals, layers, batch, n), data.new_empty(diagonals, layers, batch, n)
        x, y, y_next = x0.contiguous(), y0.clone(memory_format=torch.contiguous_format), data.new_empty(y0.shape)
        if in_c(kernels, data):  # the same loop in one call
            sequences.run("osc_forward_diag", depth=depth, steps=grid.steps, w=w, bias=grid.bias[:, 0].contiguous(),
                          z=inputs, syn=syn_all, x0=x, y=y, y_spare=y_next, xs=x_all, noise=noise, **per_neuron)
            return x_all[-1].clone(), y.clone(), _last_layers_sum(inputs, y, depth), w, inputs, x_all, syn_all
        z, xs, syns = inputs.unbind(0) + (None,), x_all.unbind(0), syn_all.unbind(0)  # views, made once
        for d in range(diagonals):
            torch.baddbmm(grid.bias, z[d], w_t, out=syns[d])
            lo, hi = _active_layers(d, grid.steps, depth)
            kernels.osc_forward(lo, hi, d < 2, depth, syn=syns[d], x=x, y=y, x_out=xs[d], y_out=y_next,
                                z_next=z[d + 1], noise=draws[d], **per_neuron)
            x, y, y_next = xs[d], y_next, y
        # the final states, and what the backward needs, as outputs (torch.func style)
        return x.clone(), y.clone(), _last_layers_sum(inputs, y, depth), w, inputs, x_all, syn_all

    @staticmethod
    def setup_context(ctx, inputs, output):
        data, x0, _, gains, gammas, bias_fixed, constants = inputs[:7]
        ctx.per_neuron, ctx.noise, ctx.substeps = oscillator_arguments(gains, gammas, bias_fixed, constants)
        ctx.mark_non_differentiable(*output[3:])
        ctx.set_materialize_grads(False)  # no zero gradients allocated for the large saved outputs
        ctx.save_for_backward(data, x0, *output[3:])
        ctx.kernels = pointwise.for_tensor(data)

    @staticmethod
    @_first_order_only
    def backward(ctx, grad_x, grad_y, grad_sum, *_):
        data, x0, w, inputs, x_all, syn_all = ctx.saved_tensors
        per_neuron, kernels = ctx.per_neuron, _backward_kernels(ctx, grad_x, grad_y, grad_sum)
        diagonals, layers = x_all.shape[:2]
        steps, depth = data.shape[0] * ctx.substeps, layers // data.shape[1]
        gx, gy = _state_grads(grad_x, x0), _state_grads(grad_y, x0)
        g_sum = _step_grads(grad_sum, x0, depth)
        dsyn_all = torch.empty_like(x_all)
        g_gain, g_a_sum, g_b_sum = (torch.zeros_like(gx) for _ in range(3))
        back, back_buffer = None, inputs.new_empty(inputs.shape[1:])
        xs, syns, dsyn, z = x_all.unbind(0), syn_all.unbind(0), dsyn_all.unbind(0), inputs.unbind(0)
        g_w = torch.zeros_like(w)
        if in_c(kernels, data):  # the same loop in one call
            sequences.run("osc_backward_diag", depth=depth, steps=steps, w=w, z=inputs, back=back_buffer, gx=gx,
                          gy=gy, x0=x0.contiguous(), xs=x_all, syn=syn_all, noise=ctx.noise, dsyn=dsyn_all,
                          g_gain=g_gain, g_a_sum=g_a_sum, g_b_sum=g_b_sum, g_w=g_w, g_sum=g_sum, **per_neuron)
        else:
            draws = _draws_per_diagonal(ctx.noise, diagonals)
            for d in range(diagonals - 1, -1, -1):
                lo, hi = _active_layers(d, steps, depth)
                _add_to_active(gy, g_sum, lo, hi, depth)
                kernels.osc_backward(lo, hi, d > diagonals - 3, depth, back=back, gx=gx, gy=gy,
                                     x_old=xs[d - 1] if d > 0 else x0, syn=syns[d], dsyn_out=dsyn[d],
                                     g_gain=g_gain, g_a_sum=g_a_sum, g_b_sum=g_b_sum, noise=draws[d], **per_neuron)
                g_w.baddbmm_(dsyn[d].transpose(1, 2), z[d])
                if d > 0:  # what diagonal d's drives pass to the inputs they read (diagonal d-1's y)
                    back = torch.bmm(dsyn[d], w, out=back_buffer)
        grads, g_data = _weight_and_input_grads(dsyn_all, g_w, w, data, ctx.substeps, ctx.needs_input_grad[0])
        g_y0 = _initial_input_grads(gy, dsyn[0], w, depth) if ctx.needs_input_grad[2] else None
        g_x0 = gx if ctx.needs_input_grad[1] else None
        g_constants = oscillator_constant_grads(ctx.needs_input_grad[3:6], g_gain.sum(1), g_a_sum.sum(1),
                                                g_b_sum.sum(1), per_neuron)
        return (g_data, g_x0, g_y0, *g_constants, None, *grads)


class _FusedCTRNN(torch.autograd.Function):
    """CTRNN layers advanced together along the step+layer diagonals (see ``_FusedOscillator``).

    Inputs: data ``[T, M, B, F]`` (M networks); the initial state x0 ``[L, B, N]`` (y0 = tanh x0); per-neuron gain and γ
    ``[L, N]``; (sub-steps, h); the weights. Outputs: every layer's x and y after the last step
    ``[L, B, N]``, each network's last-layer y summed over the steps ``[M, B, N]``, then what the
    backward needs."""

    @staticmethod
    def forward(data, x0, gains, gammas, options, *weights):
        substeps, h = options
        kernels, grid = pointwise.for_tensor(data), _grid(data, torch.tanh(x0), weights, substeps)
        layers, diagonals, batch, n, w, inputs = grid.layers, grid.diagonals, grid.batch, grid.n, grid.w, grid.inputs
        w_t, depth = w.transpose(1, 2), grid.depth
        step_gain, decay = ctrnn_step_constants(gains, gammas, h)
        x_all = data.new_empty(diagonals, layers, batch, n)
        y_all = data.new_empty(diagonals, layers, batch, n)
        syn = data.new_empty(layers, batch, n)
        x = x0.contiguous()
        if in_c(kernels, data):  # the same loop in one call
            sequences.run("ctrnn_forward_diag", depth=depth, steps=grid.steps, w=w,
                          bias=grid.bias[:, 0].contiguous(), z=inputs, syn=syn, x0=x, xs=x_all, ys=y_all,
                          step_gain=step_gain, decay=decay)
            return (x_all[-1].clone(), y_all[-1].clone(), y_all[depth - 1 :, depth - 1 :: depth].sum(0), w, grid.bias,
                    inputs, x_all, y_all, step_gain, decay)
        z, xs, ys = inputs.unbind(0) + (None,), x_all.unbind(0), y_all.unbind(0)
        for d in range(diagonals):
            torch.baddbmm(grid.bias, z[d], w_t, out=syn)
            lo, hi = _active_layers(d, grid.steps, depth)
            kernels.ctrnn_forward(lo, hi, d < 2, depth, syn=syn, x=x, step_gain=step_gain, decay=decay, x_out=xs[d],
                                  y_out=ys[d], z_next=z[d + 1])
            x = xs[d]
        return (x_all[-1].clone(), y_all[-1].clone(), y_all[depth - 1 :, depth - 1 :: depth].sum(0), w, grid.bias,
                inputs, x_all, y_all, step_gain, decay)

    @staticmethod
    def setup_context(ctx, inputs, output):
        data, x0, gains, gammas, options = inputs[:5]
        ctx.mark_non_differentiable(*output[3:])
        ctx.set_materialize_grads(False)
        ctx.options, ctx.kernels = options, pointwise.for_tensor(data)
        ctx.save_for_backward(data, x0, gains, gammas, *output[3:])

    @staticmethod
    @_first_order_only
    def backward(ctx, grad_x, grad_y, grad_sum, *_):
        substeps, h = ctx.options
        data, x0, gains, gammas, w, bias, inputs, x_all, y_all, step_gain, decay = ctx.saved_tensors
        kernels = _backward_kernels(ctx, grad_x, grad_y, grad_sum)
        diagonals, layers = x_all.shape[:2]
        steps, depth = data.shape[0] * substeps, layers // data.shape[1]
        gx, gy = _state_grads(grad_x, x0), _state_grads(grad_y, x0)
        g_sum = _step_grads(grad_sum, x0, depth)
        g_state, dsyn_all = torch.empty_like(x_all), torch.empty_like(x_all)  # dL/dx, dL/dsyn per diagonal
        back, back_buffer = None, inputs.new_empty(inputs.shape[1:])
        ys, g_states, dsyn, z = y_all.unbind(0), g_state.unbind(0), dsyn_all.unbind(0), inputs.unbind(0)
        g_w = torch.zeros_like(w)
        if in_c(kernels, data):  # the same loop in one call
            sequences.run("ctrnn_backward_diag", depth=depth, steps=steps, w=w, z=inputs, back=back_buffer, gx=gx,
                          gy=gy, ys=y_all, step_gain=step_gain, decay=decay, g_state=g_state, dsyn=dsyn_all, g_w=g_w,
                          g_sum=g_sum)
        else:
            for d in range(diagonals - 1, -1, -1):
                lo, hi = _active_layers(d, steps, depth)
                _add_to_active(gy, g_sum, lo, hi, depth)
                kernels.ctrnn_backward(lo, hi, d > diagonals - 3, depth, back=back, gx=gx, gy=gy, y=ys[d],
                                       step_gain=step_gain, decay=decay, g_state=g_states[d], dsyn_out=dsyn[d])
                g_w.baddbmm_(dsyn[d].transpose(1, 2), z[d])
                if d > 0:
                    back = torch.bmm(dsyn[d], w, out=back_buffer)
        grads, g_data = _weight_and_input_grads(dsyn_all, g_w, w, data, substeps, ctx.needs_input_grad[0])
        g_x0 = None
        if ctx.needs_input_grad[1]:  # y0 = tanh x0 fed diagonal 0's drives
            g_x0 = gx + _initial_input_grads(gy, dsyn[0], w, depth) * (1.0 - torch.tanh(x0) ** 2)
        g_gains = g_gammas = None
        if ctx.needs_input_grad[2] or ctx.needs_input_grad[3]:
            syn = torch.matmul(inputs, w.transpose(1, 2)) + bias  # [D, L, B, N], broadcast over diagonals
            x_prev = torch.cat([x0.unsqueeze(0), x_all[:-1]])
            by_layer = lambda t: t.transpose(0, 1)  # noqa: E731 ([D, L, ...] → [L, D, ...], a view)
            g_gains, g_gammas = ctrnn_constant_grads(ctx.needs_input_grad[2:4], by_layer(g_state), by_layer(syn),
                                                     by_layer(x_prev), gains, gammas, decay, h)
        return (g_data, g_x0, g_gains, g_gammas, None, *grads)


def _weights(model):
    out = []
    for ext, intra in zip(model.w_ext, model.w_int):
        out.extend([ext.effective_weight(), ext.bias, intra.effective_weight()])
    return out


def _per_neuron(values, n, name, like):
    """Stack one value per layer (a number or ``[N]``) into ``[L, N]`` in ``like``'s dtype; trainable
    values keep their graph (the expand's backward sums a shared value's gradient)."""
    rows = []
    for layer, value in enumerate(values):
        value = torch.as_tensor(value, dtype=like.dtype, device=like.device)  # a float is not rounded to float32 first
        if value.numel() not in (1, n):
            raise ValueError(f"layer {layer}: {name} has {value.numel()} values for {n} neurons")
        rows.append(value.reshape(-1).expand(n))
    return torch.stack(rows)


def _refuse(reason: str | None) -> None:
    """The fused path called directly on a model it cannot represent: raise what ``*_fused_reason`` says."""
    if reason is not None:
        raise ValueError(f"the fused path cannot run this model: {reason}")


def _stepper_reason(neurons) -> str | None:
    """What both networks' fused paths need of their neuron layers: the exact stepper and one step."""
    for i, neuron in enumerate(neurons):
        if neuron.method != "exact":
            return f"layer {i}: the fused path integrates with the exact stepper only (method={neuron.method!r})"
    if len({m.dt for m in neurons}) != 1:
        return f"the layers advance by different steps dt = {sorted({m.dt for m in neurons})} ns"
    return None


def _readout_reason(model) -> str | None:
    if model.config.readout_time == "mean" and model.config.readout == "x":
        return "the fused path averages y over the sequence, not x (readout_time='mean' with readout='x')"
    return None


def oscillator_fused_reason(model) -> str | None:
    """Why the fused path cannot run this ``SpintronicNetwork`` exactly as its layers say (None: it can)."""
    reason = _readout_reason(model)
    if reason is not None:
        return reason
    for i, (neuron, filt) in enumerate(zip(model.neurons, model.filters)):
        for owner, name in ((neuron, "q"), (neuron, "sigma"), (neuron, "x0"), (filt, "f_cut_mhz")):
            value = getattr(owner, name)
            if isinstance(value, torch.Tensor) and value.requires_grad:
                return f"layer {i}: a trainable {name} is not supported by the fused path"
    return _stepper_reason(model.neurons)


def ctrnn_fused_reason(model) -> str | None:
    """Why the fused path cannot run this ``CTRNNNetwork`` (None: it can)."""
    return _readout_reason(model) or _stepper_reason(model.neurons)


def _segments(steps: int, every: int) -> list[slice]:
    """The time axis in segments of ``every`` input points (0, or ≥ ``steps``: one segment).

    >>> _segments(10, 4)
    [slice(0, 4, None), slice(4, 8, None), slice(8, 10, None)]
    """
    if not every or every >= steps:
        return [slice(0, steps)]
    return [slice(t, min(t + every, steps)) for t in range(0, steps, every)]


def _advance(segment, data, state, every, draws):
    """``state = segment(data[s], draws(data[s]), *state)`` over the segments of ``every`` input
    points. With more than one segment and gradients on, each segment runs under
    ``torch.utils.checkpoint``: the backward recomputes it from the state at its start, so BPTT
    holds one segment's activations at a time, and the gradients are those of full BPTT (the
    state passes from segment to segment with its gradient). The noise is drawn before the
    checkpoint, in order, so that the recomputation sees the same draws."""
    parts = _segments(data.shape[0], every)
    checkpointed = len(parts) > 1 and torch.is_grad_enabled()
    for part in parts:
        noise = draws(data[part])
        if checkpointed:
            state = torch.utils.checkpoint.checkpoint(segment, data[part], noise, *state, use_reentrant=False)
        else:
            state = segment(data[part], noise, *state)
    return state


def ensemble_reason(models) -> str | None:
    """Why ``models`` cannot run together in one fused call (None: they can). They must be fused
    networks of one kind and shape (layers, width, inputs), with one solver step, sub-steps,
    ``checkpoint_every`` and readout, thermal noise in all or none, and their parameters on one
    device in one dtype. What may differ: seeds (weights, masks, chips) and the per-neuron
    constants (τ, S, b_fixed, σ, Q, f_cut, x_min), which the kernels take per layer and neuron.

    >>> from snnspin.config import TrainConfig
    >>> from snnspin.models import build_model
    >>> ensemble_reason([build_model(TrainConfig(), seed) for seed in range(3)]) is None
    True
    >>> ensemble_reason([build_model(TrainConfig()), build_model(TrainConfig(width=8))])
    'the networks differ in width (32, 8)'
    """
    first = models[0]
    if len({type(m) for m in models}) > 1:
        return f"the networks are of different kinds ({', '.join(sorted({type(m).__name__ for m in models}))})"
    if getattr(type(first), "ensemble_reason", None) is not ensemble_reason:
        return f"{type(first).__name__} has no call here (only the oscillators and the CTRNN)"
    shapes = {"layers": lambda m: len(m.neurons), "width": lambda m: m.config.width,
              "n_inputs": lambda m: m.n_inputs, "dt": lambda m: m.neurons[0].dt,
              "substeps": lambda m: m.config.substeps, "checkpoint_every": lambda m: m.config.checkpoint_every,
              "readout": lambda m: m.config.readout, "readout_time": lambda m: m.config.readout_time,
              "thermal noise": lambda m: any(getattr(n, "thermal_power", 0) for n in m.neurons)}
    return networks_differ(models, shapes)


def networks_differ(models, shared: dict, more=()) -> str | None:
    """The first reason found why ``models`` cannot share one fused call: one's own ``fused_reason``,
    a value of ``shared`` (name → function of a model) that differs between them, what a check of
    ``more`` (functions of the models) says, or parameters on several devices or dtypes. Shared by
    ``ensemble_reason`` and ``snnspin.spiking_loop.spiking_ensemble_reason``."""
    for m in models:
        reason = m.fused_reason()
        if reason is not None:
            return reason
    for name, value in shared.items():
        values = [value(m) for m in models]
        if len(set(values)) > 1:
            return f"the networks differ in {name} ({', '.join(map(str, dict.fromkeys(values)))})"
    for check in more:
        reason = check(models)
        if reason is not None:
            return reason
    like = next(models[0].parameters())
    if any(p.device != like.device or p.dtype != like.dtype for m in models for p in m.parameters()):
        return "the networks' parameters are not all on one device in one dtype"
    return None


def _check_networks_data(models, data) -> None:
    """Refuse data that are not ``[T, M, B, F]`` for these M networks (one line)."""
    if data.dim() != 4 or data.shape[1] != len(models):
        raise ValueError(f"data for {len(models)} network(s) must be [T, M = {len(models)}, B, F], "
                         f"got shape {tuple(data.shape)}")


def _stacked(values, n, name, like):
    """Every network's per-layer values stacked ``[M · L, N]`` (``_per_neuron`` per network)."""
    return torch.cat([_per_neuron(v, n, name, like) for v in values])


def _network_outputs(state, models, steps):
    """Per network, from the state after the last segment: the last layer's (y, x) ``[B, N]`` and
    every layer's x ``[L, B, N]`` (detached). With a readout of the mean the state carries the
    running sum of the last layers' y ``[M, B, N]``, and y is that sum over the ``steps`` solver steps."""
    x, y, *total = state
    depth = x.shape[0] // models
    x, y = _by_network(x, depth), _by_network(y, depth)
    return [(total[0][m] / steps if total else y[m, -1], x[m, -1], x[m].detach()) for m in range(models)]


def _segment_state(out, total):
    """A fused Function's outputs ``out`` → the state passed to the next segment: the final (x, y),
    and with a readout of the mean (``total``: the running sum ``[M, B, N]``, empty otherwise) the
    sum grown by this segment's (the Function's third output)."""
    return (out[0], out[1], total[0] + out[2]) if total else out[:2]


def fused_oscillator_sequences(models, data):
    """Run M ``SpintronicNetwork``s of one shape (``ensemble_reason``) over ``data`` ``[T, M, B, F]``
    (network m reads ``data[:, m]``) in one fused call: every network's layers advance on the same
    diagonals, the matrix products are batched over the networks' layers, and each kernel call
    updates them all. Return per network the last layer's (y, x) ``[B, N]`` after the last step,
    differentiable w.r.t. its parameters, and every layer's x ``[L, B, N]`` (detached, for
    monitoring). The networks share no parameter: each one's gradients are those it gets alone.

    Every constant is read per layer from ``model.neurons[i].physics`` and
    ``model.filters[i].physics``; the sub-steps per input point from the config, and
    ``config.checkpoint_every`` (recomputed segments, see ``_advance``). One network of width ≥
    ``LAYERWISE_FROM`` runs layer by layer (``snnspin.fused_layerwise``). With
    ``readout_time="mean"`` the returned y is the last layer's y averaged over every solver step
    (the running sum passes from segment to segment like the state)."""
    _refuse(ensemble_reason(models))
    _check_networks_data(models, data)
    first, count = models[0], len(models)
    n, h, substeps = first.config.width, first.neurons[0].dt, first.config.substeps
    layers, batch = len(first.neurons), data.shape[2]
    neurons = [[m.physics for m in model.neurons] for model in models]
    filters = [[f.physics for f in model.filters] for model in models]
    gains = _stacked([[p.gain for p in ps] for ps in neurons], n, "gain", data)
    gammas = _stacked([[p.gamma for p in ps] for ps in neurons], n, "tau", data)
    with torch.no_grad():
        omega_h = _stacked([[f.omega_c() * f.dt for f in fs] for fs in filters], n, "f_cut", data)
        thermal = torch.tensor([[p.thermal_power] for ps in neurons for p in ps], dtype=data.dtype,
                               device=data.device)
        per = lambda name, attribute: _stacked([[getattr(p, attribute) for p in ps] for ps in neurons], n,  # noqa: E731
                                               name, data).contiguous()
        constants = (per("sigma", "sigma"), per("q", "q"), torch.exp(-omega_h).contiguous(),
                     expm1_ratio(-omega_h).contiguous(), per("x_min", "x_min"),
                     kick_amplitude(gammas.detach(), thermal, h).contiguous())
        rest = _stacked([[p.rest() for p in ps] for ps in neurons], n, "x0", data)
    bias_fixed = _stacked([[p.fixed_bias() for p in ps] for ps in neurons], n, "bias_fixed", data)
    weights = [w for model in models for w in _weights(model)]
    mean = first.config.readout_time == "mean"  # every step's y of the last layer is read
    layerwise = count == 1 and n >= LAYERWISE_FROM  # wide layers: one layer at a time (snnspin.fused_layerwise)

    def segment(part, noise, x, y, *total):
        out = (LayerwiseOscillator if layerwise else _FusedOscillator).apply(
            part[:, 0] if layerwise else part, x, y, gains, gammas, bias_fixed,
            (*constants, noise, substeps, h, backward_follows()),
            *weights)
        return _segment_state(out, total)

    def draws(part):
        per_model = [_thermal_draws(model, part[:, m], part.shape[0] * substeps, by_step=layerwise)
                     for m, model in enumerate(models)]
        return None if per_model[0] is None else torch.cat(per_model, 1)

    x0 = rest.unsqueeze(1).expand(count * layers, batch, n).contiguous()
    state = (x0, torch.zeros_like(x0)) + ((x0.new_zeros(count, batch, n),) if mean else ())
    state = _advance(segment, data, state, first.config.checkpoint_every, draws)
    return _network_outputs(state, count, data.shape[0] * substeps)


def fused_oscillator_sequence(model, data):
    """Run one ``SpintronicNetwork``'s layers over ``data`` ``[T, B, F]``; return the last
    layer's (y, x) ``[B, N]`` after the last step (y averaged over every step with
    ``readout_time="mean"``), differentiable w.r.t. every parameter, and
    every layer's x ``[L, B, N]`` after the last step (detached). ``fused_oscillator_sequences``
    with one network."""
    return fused_oscillator_sequences([model], data.unsqueeze(1))[0]


def fused_ctrnn_sequences(models, data):
    """Run M ``CTRNNNetwork``s of one shape over ``data`` ``[T, M, B, F]`` in one fused call (as
    ``fused_oscillator_sequences``); per network the last layer's (y, x) ``[B, N]`` and every
    layer's x ``[L, B, N]`` (detached). Gain, τ and dt are read per layer from
    ``model.neurons[i].physics``; ``config.checkpoint_every`` as for the oscillators."""
    _refuse(ensemble_reason(models))
    _check_networks_data(models, data)
    first, count = models[0], len(models)
    n, layers = first.config.width, len(first.neurons)
    options = (first.config.substeps, first.neurons[0].dt)
    gains = _stacked([[m.physics.gain for m in model.neurons] for model in models], n, "gain", data)
    gammas = _stacked([[m.physics.gamma for m in model.neurons] for model in models], n, "tau", data)
    weights = [w for model in models for w in _weights(model)]
    mean = first.config.readout_time == "mean"  # as for the oscillators
    layerwise = count == 1 and n >= LAYERWISE_FROM  # wide layers: one layer at a time

    def segment(part, _noise, x, _y, *total):  # y = tanh x: the state is x alone
        out = (LayerwiseCTRNN if layerwise else _FusedCTRNN).apply(part[:, 0] if layerwise else part, x, gains, gammas,
                                                                   options, *weights)
        return _segment_state(out, total)

    x0 = data.new_zeros(count * layers, data.shape[2], n)
    state = (x0, x0) + ((x0.new_zeros(count, data.shape[2], n),) if mean else ())
    state = _advance(segment, data, state, first.config.checkpoint_every, lambda part: None)
    return _network_outputs(state, count, data.shape[0] * options[0])


def fused_ctrnn_sequence(model, data):
    """Run one ``CTRNNNetwork``'s layers over ``data`` ``[T, B, F]``: ``fused_ctrnn_sequences`` with one network."""
    return fused_ctrnn_sequences([model], data.unsqueeze(1))[0]
