/* Whole-sequence loops of one layer (snnspin/fused_layerwise.py), for one floating-point type T
 * (included by kernels.c after kernels_body.h, with the same T and SUFFIX).
 *
 * The layer-by-layer path runs, per solver step k, one recurrent product and one pointwise
 * update. Driven from Python that is two calls per step, and at widths of 48-256 their overhead
 * (argument marshalling, views, dispatch) costs as much as the work. These loops run every step
 * of one layer in one call: the product through the BLAS GEMM that torch itself links (its
 * Fortran symbol, looked up by snnspin/native/__init__.py and passed in as `gemm`), the update
 * through the per-diagonal kernels above on one layer ([1, B, N], P = N). Same operations in the
 * same order, with the same BLAS, as the Python loop: the same results to rounding.
 *
 * Layout: C-contiguous [steps, B, N] arrays (one layer's buffers), [B, N] states and running
 * gradients, the recurrent weights W [N, N] row-major (out × in), per-neuron constants [1, N].
 * In column-major terms a row-major [B, N] array is its transpose, so syn(k) += y(k) Wᵀ is
 * GEMM("T", "N") of W and y, and dL/dy(k) += dsyn(k) W is GEMM("N", "N").
 */

/* The GEMM's integers are passed as 64-bit slots holding values below 2^31: a 32-bit-integer BLAS
 * (LP64, torch's own) reads their low half, which on a little-endian machine is the value, and a
 * 64-bit one (ILP64) the whole. The Python side checks one product against torch before use. */
#ifndef BLAS_INT_DEFINED
#define BLAS_INT_DEFINED
typedef int64_t blas_int;
#endif

typedef void (*JOIN(gemm_fn, SUFFIX))(const char *, const char *, const blas_int *, const blas_int *,
                                       const blas_int *, const T *, const T *, const blas_int *, const T *,
                                       const blas_int *, const T *, T *, const blas_int *);

/* c [B, N] += a [B, N] Wᵀ (transposed = 1) or a W (transposed = 0), W [N, N] row-major. */
static inline void JOIN(gemm_rows, SUFFIX)(void *gemm, int transposed, int64_t B, int64_t N, const T *w, const T *a,
                                           T *c) {
    const blas_int n = N, b = B;
    const T one = (T)1;
    ((JOIN(gemm_fn, SUFFIX))gemm)(transposed ? "T" : "N", "N", &n, &b, &n, &one, w, &n, a, &n, &one, c, &n);
}

/* Oscillator + high-pass forward over every step of one layer. On entry syn [steps, B, N] holds
 * the drive W_ext s(k) + b, ys[0] the output before the first step; on return syn holds the
 * synaptic sums, xs [steps, B, N] the states after each step, ys[k + 1] the outputs. The draws of
 * step k (noise != NULL) start at noise + k · noise_stride. Argument order: SEQUENCES["osc_forward_seq"]. */
void JOIN(osc_forward_seq, SUFFIX)(int64_t steps, int64_t B, int64_t N, void *gemm, const T *w_int, T *syn,
                                   const T *x0, T *ys, T *xs, const T *gain, const T *gamma, const T *bias_fixed,
                                   const T *sigma, const T *q, const T *e_hp, const T *k_hp, const T *x_min,
                                   const T *kick, const T *noise, int64_t noise_stride, double h) {
    const int64_t size = B * N;
    for (int64_t k = 0; k < steps; k++) {
        JOIN(gemm_rows, SUFFIX)(gemm, 1, B, N, w_int, ys + k * size, syn + k * size);
        JOIN(osc_forward, SUFFIX)(1, B, N, N, 1, 0, 0, syn + k * size, k ? xs + (k - 1) * size : x0, ys + k * size,
                                  gain, gamma, bias_fixed, sigma, q, e_hp, k_hp, x_min, kick,
                                  noise ? noise + k * noise_stride : NULL, h, xs + k * size, ys + (k + 1) * size, NULL);
    }
}

/* gy [B, N] += g_above[k - 1] (the layer above's gradient of its signal at step k - 1), if any. */
static inline void JOIN(add_above, SUFFIX)(T *gy, const T *g_above, int64_t k, int64_t size) {
    if (!g_above || k == 0) return;
    const T *from = g_above + (k - 1) * size;
#pragma omp simd
    for (int64_t i = 0; i < size; i++) gy[i] += from[i];
}

/* Oscillator + high-pass backward over every step of one layer, from the last step to the first
 * (the step recomputed from xs and syn, as osc_backward does). gx, gy [B, N]: on entry dL/d(x, y)
 * after the last step (with the layer above's part for the last step already added), on return
 * before the first. Writes dsyn [steps, B, N]; accumulates g_gain, g_a_sum, g_b_sum [B, N]; adds the
 * recurrent product and g_above [steps, B, N] (NULL for the top layer) as the Python loop does.
 * Argument order: SEQUENCES["osc_backward_seq"]. */
void JOIN(osc_backward_seq, SUFFIX)(int64_t steps, int64_t B, int64_t N, void *gemm, const T *w_int, T *gx, T *gy,
                                    const T *x0, const T *xs, const T *syn, const T *gain, const T *gamma,
                                    const T *bias_fixed, const T *sigma, const T *q, const T *e_hp, const T *k_hp,
                                    const T *x_min, const T *kick, const T *noise, int64_t noise_stride, double h,
                                    T *dsyn, T *g_gain, T *g_a_sum, T *g_b_sum, const T *g_above) {
    const int64_t size = B * N;
    for (int64_t k = steps - 1; k >= 0; k--) {
        JOIN(osc_backward, SUFFIX)(1, B, N, N, 1, 0, 0, NULL, gx, gy, k ? xs + (k - 1) * size : x0, syn + k * size,
                                   gain, gamma, bias_fixed, sigma, q, e_hp, k_hp, x_min, kick,
                                   noise ? noise + k * noise_stride : NULL, h, dsyn + k * size, g_gain, g_a_sum,
                                   g_b_sum);
        JOIN(gemm_rows, SUFFIX)(gemm, 0, B, N, w_int, dsyn + k * size, gy);
        JOIN(add_above, SUFFIX)(gy, g_above, k, size);
    }
}

/* Oscillator + high-pass forward over every step of one layer that keeps each step's derivatives
 * (osc_forward_keep in kernels_body.h): syn as in osc_forward_seq on entry, c = ∂x⁺/∂syn on return;
 * ds [steps, B, N] gets d = ∂x⁺/∂x; the states alternate in x_pair [2, B, N] (the last one in
 * x_pair[(steps - 1) % 2]), so that no state is kept per step. Argument order:
 * SEQUENCES["osc_forward_keep_seq"]. */
void JOIN(osc_forward_keep_seq, SUFFIX)(int64_t steps, int64_t B, int64_t N, void *gemm, const T *w_int, T *syn,
                                        const T *x0, T *ys, T *ds, T *x_pair, const T *gain, const T *gamma,
                                        const T *bias_fixed, const T *sigma, const T *q, const T *e_hp,
                                        const T *k_hp, const T *x_min, const T *kick, const T *noise,
                                        int64_t noise_stride, double h) {
    const int64_t size = B * N;
    for (int64_t k = 0; k < steps; k++) {
        JOIN(gemm_rows, SUFFIX)(gemm, 1, B, N, w_int, ys + k * size, syn + k * size);
        JOIN(osc_forward_keep, SUFFIX)(B, N, syn + k * size, k ? x_pair + ((k - 1) % 2) * size : x0, ys + k * size,
                                       gain, gamma, bias_fixed, sigma, q, e_hp, k_hp, x_min, kick,
                                       noise ? noise + k * noise_stride : NULL, (T)h, x_pair + (k % 2) * size,
                                       ys + (k + 1) * size, ds + k * size);
    }
}

/* Its backward, from the last step to the first (gx, gy, dsyn, g_above as in osc_backward_seq; cs, ds:
 * what osc_forward_keep_seq left in syn and ds). Argument order: SEQUENCES["osc_backward_kept_seq"]. */
void JOIN(osc_backward_kept_seq, SUFFIX)(int64_t steps, int64_t B, int64_t N, void *gemm, const T *w_int, T *gx,
                                         T *gy, const T *cs, const T *ds, const T *e_hp, const T *k_hp, T *dsyn,
                                         const T *g_above) {
    const int64_t size = B * N;
    for (int64_t k = steps - 1; k >= 0; k--) {
        JOIN(osc_backward_kept, SUFFIX)(B, N, cs + k * size, ds + k * size, e_hp, k_hp, gx, gy, dsyn + k * size);
        JOIN(gemm_rows, SUFFIX)(gemm, 0, B, N, w_int, dsyn + k * size, gy);
        JOIN(add_above, SUFFIX)(gy, g_above, k, size);
    }
}

/* CTRNN forward over every step of one layer (syn, ys and xs as in osc_forward_seq; ys[0] = tanh x0).
 * Argument order: SEQUENCES["ctrnn_forward_seq"]. */
void JOIN(ctrnn_forward_seq, SUFFIX)(int64_t steps, int64_t B, int64_t N, void *gemm, const T *w_int, T *syn,
                                     const T *x0, T *ys, T *xs, const T *step_gain, const T *decay) {
    const int64_t size = B * N;
    for (int64_t k = 0; k < steps; k++) {
        JOIN(gemm_rows, SUFFIX)(gemm, 1, B, N, w_int, ys + k * size, syn + k * size);
        JOIN(ctrnn_forward, SUFFIX)(1, B, N, N, 1, 0, 0, syn + k * size, k ? xs + (k - 1) * size : x0, step_gain,
                                    decay, xs + k * size, ys + (k + 1) * size, NULL);
    }
}

/* CTRNN backward over every step of one layer (gx, gy, dsyn, g_above as in osc_backward_seq);
 * writes g_state [steps, B, N] = dL/dx after each step. Argument order: SEQUENCES["ctrnn_backward_seq"]. */
void JOIN(ctrnn_backward_seq, SUFFIX)(int64_t steps, int64_t B, int64_t N, void *gemm, const T *w_int, T *gx, T *gy,
                                      const T *ys, const T *step_gain, const T *decay, T *g_state, T *dsyn,
                                      const T *g_above) {
    const int64_t size = B * N;
    for (int64_t k = steps - 1; k >= 0; k--) {
        JOIN(ctrnn_backward, SUFFIX)(1, B, N, N, 1, 0, 0, NULL, gx, gy, ys + (k + 1) * size, step_gain, decay,
                                     g_state + k * size, dsyn + k * size);
        JOIN(gemm_rows, SUFFIX)(gemm, 0, B, N, w_int, dsyn + k * size, gy);
        JOIN(add_above, SUFFIX)(gy, g_above, k, size);
    }
}

/* ---- The diagonal scheme (snnspin/fused.py): every layer advanced together, diagonal by diagonal. ----
 * Layout as in kernels_body.h: L layers (M networks of depth layers, network by network), inputs
 * z [D, L, B, P + N] per diagonal, weights W [L, N, P + N] ([W_ext | W_int], row-major), biases
 * [L, N], states and sums [D, L, B, N]. Layer l takes a step on diagonal d when 0 <= d - l % depth
 * < steps; the kernels keep the others as they are. */

/* c = alpha op(a) op(b) + beta c in column-major terms (the Fortran GEMM's arguments, by value). */
static inline void JOIN(gemm_full, SUFFIX)(void *gemm, const char *ta, const char *tb, int64_t m, int64_t n, int64_t k,
                                           const T *a, int64_t lda, const T *b, int64_t ldb, T beta, T *c,
                                           int64_t ldc) {
    const blas_int mi = m, ni = n, ki = k, la = lda, lb = ldb, lc = ldc;
    const T one = (T)1;
    ((JOIN(gemm_fn, SUFFIX))gemm)(ta, tb, &mi, &ni, &ki, &one, a, &la, b, &lb, &beta, c, &lc);
}

/* syn [L, B, N] = b + z W_lᵀ for every layer of one diagonal (z [L, B, P + N]). */
static void JOIN(diagonal_sums, SUFFIX)(void *gemm, int64_t L, int64_t B, int64_t N, int64_t P, const T *w,
                                        const T *bias, const T *z, T *syn) {
    const int64_t K = P + N;
    for (int64_t l = 0; l < L; l++) {
        T *rows = syn + l * B * N;
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < N; j++) rows[b * N + j] = bias[l * N + j];
        JOIN(gemm_full, SUFFIX)(gemm, "T", "N", N, B, K, w + l * N * K, K, z + l * B * K, K, (T)1, rows, N);
    }
}

/* After diagonal d's backward kernel: dW_l += dsyn_lᵀ z_l and, unless d = 0, back_l = dsyn_l W_l
 * (what the drives pass to the inputs they read, diagonal d - 1's outputs). */
static void JOIN(diagonal_grads, SUFFIX)(void *gemm, int64_t L, int64_t B, int64_t N, int64_t P, const T *w, const T *z,
                                         const T *dsyn, T *g_w, T *back) {
    const int64_t K = P + N;
    for (int64_t l = 0; l < L; l++) {
        JOIN(gemm_full, SUFFIX)(gemm, "N", "T", K, N, B, z + l * B * K, K, dsyn + l * B * N, N, (T)1, g_w + l * N * K, K);
        if (back)
            JOIN(gemm_full, SUFFIX)(gemm, "N", "N", K, B, N, w + l * N * K, K, dsyn + l * B * N, N, (T)0,
                                    back + l * B * K, K);
    }
}

#define DIAGONAL_BOUNDS int64_t lo = d - steps + 1 > 0 ? d - steps + 1 : 0, hi = d < depth - 1 ? d : depth - 1

/* Oscillator + high-pass forward over every diagonal. y [L, B, N]: y0 on entry, the outputs after
 * the last step on return (y_spare: a second [L, B, N] buffer). Writes syn and xs [D, L, B, N] and
 * the inputs of diagonals 1 .. D-1. noise: [D, L, 2, B, N] or NULL. Argument order:
 * SEQUENCES["osc_forward_diag"]. */
void JOIN(osc_forward_diag, SUFFIX)(int64_t D, int64_t L, int64_t B, int64_t N, int64_t P, int64_t depth,
                                    int64_t steps, void *gemm, const T *w, const T *bias, T *z, T *syn, const T *x0,
                                    T *y, T *y_spare, T *xs, const T *gain, const T *gamma, const T *bias_fixed,
                                    const T *sigma, const T *q, const T *e_hp, const T *k_hp, const T *x_min,
                                    const T *kick, const T *noise, double h) {
    const int64_t size = L * B * N, wide = L * B * (P + N);
    T *now = y, *next = y_spare;
    for (int64_t d = 0; d < D; d++) {
        DIAGONAL_BOUNDS;
        JOIN(diagonal_sums, SUFFIX)(gemm, L, B, N, P, w, bias, z + d * wide, syn + d * size);
        JOIN(osc_forward, SUFFIX)(L, B, N, P, depth, lo, hi, syn + d * size, d ? xs + (d - 1) * size : x0, now, gain,
                                  gamma, bias_fixed, sigma, q, e_hp, k_hp, x_min, kick,
                                  noise ? noise + d * 2 * size : NULL, h, xs + d * size, next,
                                  d + 1 < D ? z + (d + 1) * wide : NULL);
        T *swap = now;
        now = next;
        next = swap;
    }
    if (now != y)
        for (int64_t i = 0; i < size; i++) y[i] = now[i];
}

/* gy[l] += g_sum[l] for the layers l that take a step on this diagonal (l % depth in lo .. hi):
 * a readout of every step's output hands each step the same dL/dy (g_sum, or NULL: none). */
static void JOIN(add_to_active, SUFFIX)(int64_t L, int64_t B, int64_t N, int64_t depth, int64_t lo, int64_t hi,
                                        const T *g_sum, T *gy) {
    if (!g_sum) return;
    for (int64_t l = 0; l < L; l++) {
        const int64_t li = l % depth;
        if (li < lo || li > hi) continue;
        for (int64_t i = l * B * N; i < (l + 1) * B * N; i++) gy[i] += g_sum[i];
    }
}

/* Oscillator + high-pass backward over every diagonal, last to first (as snnspin/fused.py's loop):
 * gx, gy [L, B, N] from dL/d(final x, y) to dL/d(x0, y0)'s state part; writes dsyn; accumulates
 * g_gain, g_a_sum, g_b_sum [L, B, N] and g_w [L, N, P + N]; back: an [L, B, P + N] buffer;
 * g_sum [L, B, N] (or NULL): dL/dy of every step, added before each step's backward.
 * Argument order: SEQUENCES["osc_backward_diag"]. */
void JOIN(osc_backward_diag, SUFFIX)(int64_t D, int64_t L, int64_t B, int64_t N, int64_t P, int64_t depth,
                                     int64_t steps, void *gemm, const T *w, const T *z, T *back, T *gx, T *gy,
                                     const T *x0, const T *xs, const T *syn, const T *gain, const T *gamma,
                                     const T *bias_fixed, const T *sigma, const T *q, const T *e_hp, const T *k_hp,
                                     const T *x_min, const T *kick, const T *noise, double h, T *dsyn, T *g_gain,
                                     T *g_a_sum, T *g_b_sum, T *g_w, const T *g_sum) {
    const int64_t size = L * B * N, wide = L * B * (P + N);
    for (int64_t d = D - 1; d >= 0; d--) {
        DIAGONAL_BOUNDS;
        JOIN(add_to_active, SUFFIX)(L, B, N, depth, lo, hi, g_sum, gy);
        JOIN(osc_backward, SUFFIX)(L, B, N, P, depth, lo, hi, d == D - 1 ? NULL : back, gx, gy,
                                   d ? xs + (d - 1) * size : x0, syn + d * size, gain, gamma, bias_fixed, sigma, q,
                                   e_hp, k_hp, x_min, kick, noise ? noise + d * 2 * size : NULL, h, dsyn + d * size,
                                   g_gain, g_a_sum, g_b_sum);
        JOIN(diagonal_grads, SUFFIX)(gemm, L, B, N, P, w, z + d * wide, dsyn + d * size, g_w, d ? back : NULL);
    }
}

/* CTRNN forward over every diagonal: writes xs, ys [D, L, B, N] and the inputs of diagonals 1 .. D-1;
 * syn: an [L, B, N] buffer. Argument order: SEQUENCES["ctrnn_forward_diag"]. */
void JOIN(ctrnn_forward_diag, SUFFIX)(int64_t D, int64_t L, int64_t B, int64_t N, int64_t P, int64_t depth,
                                      int64_t steps, void *gemm, const T *w, const T *bias, T *z, T *syn, const T *x0,
                                      T *xs, T *ys, const T *step_gain, const T *decay) {
    const int64_t size = L * B * N, wide = L * B * (P + N);
    for (int64_t d = 0; d < D; d++) {
        DIAGONAL_BOUNDS;
        JOIN(diagonal_sums, SUFFIX)(gemm, L, B, N, P, w, bias, z + d * wide, syn);
        JOIN(ctrnn_forward, SUFFIX)(L, B, N, P, depth, lo, hi, syn, d ? xs + (d - 1) * size : x0, step_gain, decay,
                                    xs + d * size, ys + d * size, d + 1 < D ? z + (d + 1) * wide : NULL);
    }
}

/* CTRNN backward over every diagonal, last to first: gx, gy, g_sum as in osc_backward_diag; writes
 * g_state and dsyn [D, L, B, N]; accumulates g_w. Argument order: SEQUENCES["ctrnn_backward_diag"]. */
void JOIN(ctrnn_backward_diag, SUFFIX)(int64_t D, int64_t L, int64_t B, int64_t N, int64_t P, int64_t depth,
                                       int64_t steps, void *gemm, const T *w, const T *z, T *back, T *gx, T *gy,
                                       const T *ys, const T *step_gain, const T *decay, T *g_state, T *dsyn,
                                       T *g_w, const T *g_sum) {
    const int64_t size = L * B * N, wide = L * B * (P + N);
    for (int64_t d = D - 1; d >= 0; d--) {
        DIAGONAL_BOUNDS;
        JOIN(add_to_active, SUFFIX)(L, B, N, depth, lo, hi, g_sum, gy);
        JOIN(ctrnn_backward, SUFFIX)(L, B, N, P, depth, lo, hi, d == D - 1 ? NULL : back, gx, gy, ys + d * size,
                                     step_gain, decay, g_state + d * size, dsyn + d * size);
        JOIN(diagonal_grads, SUFFIX)(gemm, L, B, N, P, w, z + d * wide, dsyn + d * size, g_w, d ? back : NULL);
    }
}

#undef DIAGONAL_BOUNDS
