/* The kernels for one floating-point type T (included by kernels.c with T = double, float).
 * Each public kernel processes one diagonal; its (layer, batch) rows are independent. */

static inline T JOIN(horner, SUFFIX)(const double *c, int n, T w) {
    T out = (T)c[n - 1];
    for (int k = n - 2; k >= 0; k--) out = out * w + (T)c[k];
    return out;
}

/* Row (l, b) of y⁺ into the next diagonal's inputs: this layer's recurrent columns and, as its
 * signal, the first columns of layer l + 1 (has_up: l is not its network's last layer). */
static inline void JOIN(write_next_inputs, SUFFIX)(T *z_next, const T *y_row, int64_t l, int64_t b, int has_up,
                                                   int64_t B, int64_t N, int64_t P) {
    T *own = z_next + (l * B + b) * (P + N) + P;
    for (int64_t j = 0; j < N; j++) own[j] = y_row[j];
    if (has_up) {
        T *up = z_next + ((l + 1) * B + b) * (P + N);
        for (int64_t j = 0; j < N; j++) up[j] = y_row[j];
    }
}

/* Row (l, b) of dL/dy += what diagonal d+1 passed back: this layer's recurrent columns of back,
 * then the signal columns of layer l + 1 (the reverse of write_next_inputs). */
static inline void JOIN(add_back, SUFFIX)(T *gy_row, const T *back, int64_t l, int64_t b, int has_up, int64_t B,
                                          int64_t N, int64_t P) {
    const T *own = back + (l * B + b) * (P + N) + P;
    for (int64_t j = 0; j < N; j++) gy_row[j] += own[j];
    if (has_up) {
        const T *up = back + ((l + 1) * B + b) * (P + N);
        for (int64_t j = 0; j < N; j++) gy_row[j] += up[j];
    }
}

/* The exact step of one oscillator (_exact_parts in functional/oscillator.py): growth rate a,
 * c = γ(1 + Q); returns x⁺ and sets e = e^w, F(w), D. Shared by the forward and the backward,
 * which recomputes it rather than storing three more arrays per diagonal (layer by layer, the
 * forward may keep the step's derivatives instead: osc_forward_keep). */
static inline T JOIN(exact_step, SUFFIX)(T xv, T a, T c, T h, T *e_out, T *f_out, T *den_out, T *inv_w_out,
                                         T *inv_den_out) {
    const T tiny = TINY, min_w = (T)MIN_EXPONENT;
    const int grow = a >= 0;
    const T w = (grow ? -a : a) * h; /* -|a| h <= 0 */
    const T e = EXP(w < min_w ? min_w : w);
    const int near = w > -(T)RATIO_SERIES_BELOW;
    /* divisions are the slowest vector operations here: one reciprocal each of w and D, shared
     * by the forward and the backward's quotients (each then off by an ulp at most) */
    const T inv_w = (T)1 / (w > -(T)SERIES_BELOW ? (T)1 : w); /* 1/w wherever either series does not apply */
    const T f = near ? JOIN(horner, SUFFIX)(RATIO_COEFFS, RATIO_TERMS, w) : (e - (T)1) * inv_w;
    const T hf = h * f, bb = a + c;
    /* (b h F) x rather than b (x h F): for a state at its floor x = tiny, x h F can be subnormal
     * (flushed here). On this branch b h F = (b/a)(1 - e) >= 1 - e, so where the term matters
     * against e (small e, down to e^-80) the product stays normal. */
    const T den = grow ? e + (bb * hf) * xv : ((T)1 - xv) + xv * e + c * (xv * hf);
    const T inv_den = (T)1 / den;
    const T m = grow ? (T)1 : e;
    const T xn = xv * m * inv_den;
    *e_out = e;
    *f_out = f;
    *den_out = den;
    *inv_w_out = inv_w;
    *inv_den_out = inv_den;
    return xn < tiny ? tiny : xn;
}

/* ∂x⁺/∂a, ∂x⁺/∂b and ∂x⁺/∂x of the exact step (exact_derivatives in functional/oscillator.py), from
 * exact_step's by-products; xn: its (clamped) result. */
static inline void JOIN(step_derivatives, SUFFIX)(T xv, T a, T c, T h, T xn, T e, T f, T inv_w, T inv_den, T *d_a,
                                                  T *d_b, T *d_x) {
    const T bb = a + c;
    const int grow = a >= 0;
    const T w = (grow ? -a : a) * h;
    const T s = grow ? (T)-1 : (T)1;
    const T de_da = e * s * h;
    const int small = w < (T)SERIES_BELOW && w > -(T)SERIES_BELOW;
    /* inv_w from exact_step is 1/w wherever this branch divides (w <= -SERIES_BELOW) */
    const T dfw = small ? JOIN(horner, SUFFIX)(DERIVATIVE_COEFFS, DERIVATIVE_TERMS, w) : (e - f) * inv_w;
    const T dg_da = (h * h) * dfw * s;
    const T ratio = xn * inv_den;
    *d_a = (xv * inv_den) * (grow ? (T)0 : de_da) - ratio * ((grow ? de_da : (T)0) + bb * xv * dg_da);
    *d_b = -ratio * xv * (h * f);
    *d_x = (e * inv_den) * inv_den;
}

/* The thermal kick (kicked_power in functional/oscillator.py): min((√x_d + a ξ₁)² + (a ξ₂)², 1). */
static inline T JOIN(kicked_power, SUFFIX)(T xd, T a, T xi1, T xi2) {
    const T r = SQRT(xd < (T)0 ? (T)0 : xd) + a * xi1, s = a * xi2;
    const T out = r * r + s * s;
    return out > (T)1 ? (T)1 : out;
}

/* Rows (l, b) .. (l, b + R - 1) of the oscillator + high-pass forward: drive, exact step (eq. 2),
 * filter (eq. 5). Per-neuron constants of layer l: gain S, γ, b_fixed, σ, Q, and the filter's
 * E = e^{-ω_c h'}, K = F(-ω_c h'). R rows of one layer at a time (R a constant): their R
 * independent dependency chains per SIMD lane hide the latency of exp, the series and the
 * divisions, which one row of N = 32 neurons (two vectors) leaves exposed. keep (a constant too):
 * also write the step's derivatives c into c_out and d into d_out (osc_forward_keep, below). */
static inline __attribute__((always_inline)) void JOIN(osc_forward_rows, SUFFIX)(
                                                 int noisy, int keep, int R, int64_t l, int64_t b, int has_up, int64_t B,
                                                 int64_t N, int64_t P, int active, const T *syn, const T *x, const T *y,
                                                 const T *gain, const T *gam, const T *bfix, const T *sigma, const T *q,
                                                 const T *e_hp, const T *k_hp, const T *xmin, const T *kick,
                                                 const T *noise, T h, T *x_out, T *y_out, T *z_next, T *c_out,
                                                 T *d_out) {
    const T tiny = TINY;
    const int64_t o = (l * B + b) * N;
    const T *xi1 = noise ? noise + (2 * l * B + b) * N : NULL, *xi2 = noise ? xi1 + B * N : NULL;
#pragma omp simd
    for (int64_t j = 0; j < N; j++) {
        const T g = gam[j], c = g * ((T)1 + q[j]), sg = sigma[j], gn = gain[j], bf = bfix[j];
        const T floor_ = xmin[j], eh = e_hp[j], kh = k_hp[j];
#pragma GCC unroll 8
        for (int k = 0; k < R; k++) {
            const int64_t i = o + k * N + j;
            const T xv = x[i];
            const T a = sg * (gn * syn[i] + bf) - g;
            T e, f, den, inv_w, inv_den;
            const T raw = JOIN(exact_step, SUFFIX)(xv, a, c, h, &e, &f, &den, &inv_w, &inv_den);
            const T kicked = noisy ? JOIN(kicked_power, SUFFIX)(raw, kick[j], xi1[k * N + j], xi2[k * N + j]) : raw;
            const T xn = kicked < floor_ ? floor_ : kicked; /* the floor x_min (0: none) */
            if (keep) { /* c (over syn, read above) and d; 0 where the floor holds x (osc_forward_keep) */
                T d_a, d_b, d_x;
                JOIN(step_derivatives, SUFFIX)(xv, a, c, h, raw, e, f, inv_w, inv_den, &d_a, &d_b, &d_x);
                const T passed = kicked >= floor_ ? (T)1 : (T)0;
                c_out[i] = (gn * sg) * (d_a + d_b) * passed;
                d_out[i] = d_x * passed;
            }
            x_out[i] = xn;
            y_out[i] = FLUSH(eh * y[i] + kh * (xn - xv), tiny);
        }
    }
    for (int k = 0; k < R; k++) {
        const int64_t ok = o + k * N;
        if (!active)
            for (int64_t j = 0; j < N; j++) {
                x_out[ok + j] = x[ok + j];
                y_out[ok + j] = y[ok + j];
            }
        if (z_next) JOIN(write_next_inputs, SUFFIX)(z_next, y_out + ok, l, b + k, has_up, B, N, P);
    }
}

/* Oscillator + high-pass forward, one diagonal: x⁺ and y⁺ from the synaptic sums syn; when
 * z_next is given, y⁺ also into the next diagonal's inputs. With noise ([L, 2, B, N]: ξ₁, ξ₂
 * of each layer's step on this diagonal; NULL: none), the thermal kick of amplitude kick [L, N]
 * follows the deterministic step, before the floor. Argument order: KERNELS["osc_forward"]
 * in snnspin/native/__init__.py (the one table the Python side builds its calls from). */
void JOIN(osc_forward, SUFFIX)(int64_t L, int64_t B, int64_t N, int64_t P, int64_t depth, int64_t lo, int64_t hi, const T *syn,
                               const T *x, const T *y, const T *gain, const T *gamma, const T *bias_fixed,
                               const T *sigma, const T *q, const T *e_hp, const T *k_hp, const T *x_min,
                               const T *kick, const T *noise, double h, T *x_out, T *y_out, T *z_next) {
    const int64_t rows = FORWARD_ROWS(N);
#pragma omp parallel if (L * B * N >= PARALLEL_MIN)
    {
        ENTER_FTZ
#pragma omp for schedule(static)
        for (int64_t r = 0; r < L * BLOCKS(B, rows); r++) {
            const int64_t l = r / BLOCKS(B, rows), b = (r % BLOCKS(B, rows)) * rows, k = l * N, li = l % depth;
            const int active = li >= lo && li <= hi, has_up = li + 1 < depth;
            /* noisy and the block's rows as constants: each call is its own inlined copy, vectorised
             * without the kick's branch; a layer's last rows, fewer than a block, one at a time */
#define OSC_FORWARD(NOISY, R, B0) JOIN(osc_forward_rows, SUFFIX)(NOISY, 0, R, l, B0, has_up, B, N, P, active, syn, x, \
                y, gain + k, gamma + k, bias_fixed + k, sigma + k, q + k, e_hp + k, k_hp + k, x_min + k, kick + k, \
                NOISY ? noise : NULL, (T)h, x_out, y_out, z_next, NULL, NULL)
            if (b + rows <= B && rows == 8) {
                if (noise) OSC_FORWARD(1, 8, b); else OSC_FORWARD(0, 8, b);
            } else if (b + rows <= B) {
                if (noise) OSC_FORWARD(1, 4, b); else OSC_FORWARD(0, 4, b);
            } else
                for (int64_t bb = b; bb < b + rows && bb < B; bb++) {
                    if (noise) OSC_FORWARD(1, 1, bb); else OSC_FORWARD(0, 1, bb);
                }
#undef OSC_FORWARD
        }
        LEAVE_FTZ
    }
}

/* Rows (l, b) .. (l, b + R - 1) of the oscillator backward (R a constant, as in osc_forward_rows):
 * ∂x⁺/∂(x, a, b) as exact_derivatives in functional/oscillator.py. */
static inline __attribute__((always_inline)) void JOIN(osc_backward_rows, SUFFIX)(
                                                  int noisy, int R, int64_t l, int64_t b, int has_up, int64_t B, int64_t N,
                                                  int64_t P, int active, const T *back, T *gx, T *gy, const T *x_old,
                                                  const T *syn, const T *gain, const T *gam, const T *bfix,
                                                  const T *sigma, const T *q, const T *e_hp, const T *k_hp,
                                                  const T *xmin, const T *kick, const T *noise, T h, T *dsyn_out,
                                                  T *g_gain, T *g_a_sum, T *g_b_sum) {
    const T tiny = TINY;
    const int64_t o = (l * B + b) * N;
    const T *xi1 = noise ? noise + (2 * l * B + b) * N : NULL, *xi2 = noise ? xi1 + B * N : NULL;
    if (back)
        for (int k = 0; k < R; k++) JOIN(add_back, SUFFIX)(gy + o + k * N, back, l, b + k, has_up, B, N, P);
    if (!active) { /* the forward kept (x, y): their gradients pass unchanged, none to the drive */
        for (int64_t j = 0; j < R * N; j++) dsyn_out[o + j] = 0;
        return;
    }
#pragma omp simd
    for (int64_t j = 0; j < N; j++) {
        const T g = gam[j], sg = sigma[j], kh = k_hp[j], gn = gain[j], bf = bfix[j], eh = e_hp[j];
        const T c = g * ((T)1 + q[j]), floor_ = xmin[j];
#pragma GCC unroll 8
        for (int k = 0; k < R; k++) {
            const int64_t i = o + k * N + j;
            const T xv = x_old[i], gyv = gy[i], sv = syn[i];
            const T a = sg * (gn * sv + bf) - g;
            T e, f, den, inv_w, inv_den, d_a, d_b, d_x;
            const T xn = JOIN(exact_step, SUFFIX)(xv, a, c, h, &e, &f, &den, &inv_w, &inv_den);
            JOIN(step_derivatives, SUFFIX)(xv, a, c, h, xn, e, f, inv_w, inv_den, &d_a, &d_b, &d_x);
            /* the kick passes the gradient straight through; the floor passes none where it holds x */
            const T kicked = noisy ? JOIN(kicked_power, SUFFIX)(xn, kick[j], xi1[k * N + j], xi2[k * N + j]) : xn;
            const T passed = kicked >= floor_ ? (T)1 : (T)0;
            const T g_xn = (gx[i] + kh * gyv) * passed;
            const T g_a = g_xn * d_a, g_b = g_xn * d_b;
            const T g_drive = sg * (g_a + g_b);
            g_gain[i] += g_drive * sv;
            g_a_sum[i] += g_a;
            g_b_sum[i] += g_b;
            dsyn_out[i] = FLUSH(gn * g_drive, tiny);
            gx[i] = FLUSH(d_x * g_xn - kh * gyv, tiny);
            gy[i] = FLUSH(eh * gyv, tiny);
        }
    }
}

/* Oscillator + high-pass backward, one diagonal, from the state before it (x_old) and its
 * synaptic sums (the step itself is recomputed). On entry gy holds what later diagonals passed
 * down without the matmul part, which back = dsyn(d+1) · [W_ext | W_int] supplies (NULL on
 * the last diagonal); on return gx, gy hold the same for diagonal d-1, dsyn_out dL/dsyn(d).
 * Accumulates dL/d(gain) (times syn, per element), dL/da and dL/db over the diagonals.
 * Argument order: KERNELS["osc_backward"] in snnspin/native/__init__.py. */
void JOIN(osc_backward, SUFFIX)(int64_t L, int64_t B, int64_t N, int64_t P, int64_t depth, int64_t lo, int64_t hi, const T *back,
                                T *gx, T *gy, const T *x_old, const T *syn, const T *gain, const T *gamma,
                                const T *bias_fixed, const T *sigma, const T *q, const T *e_hp, const T *k_hp,
                                const T *x_min, const T *kick, const T *noise, double h, T *dsyn_out, T *g_gain,
                                T *g_a_sum, T *g_b_sum) {
    const int64_t rows = BACKWARD_ROWS(N);
#pragma omp parallel if (L * B * N >= PARALLEL_MIN)
    {
        ENTER_FTZ
#pragma omp for schedule(static)
        for (int64_t r = 0; r < L * BLOCKS(B, rows); r++) {
            const int64_t l = r / BLOCKS(B, rows), b = (r % BLOCKS(B, rows)) * rows, k = l * N, li = l % depth;
            const int active = li >= lo && li <= hi, has_up = li + 1 < depth;
#define OSC_BACKWARD(NOISY, R, B0) JOIN(osc_backward_rows, SUFFIX)(NOISY, R, l, B0, has_up, B, N, P, active, back, gx, \
                gy, x_old, syn, gain + k, gamma + k, bias_fixed + k, sigma + k, q + k, e_hp + k, k_hp + k, x_min + k, \
                kick + k, NOISY ? noise : NULL, (T)h, dsyn_out, g_gain, g_a_sum, g_b_sum)
            if (b + rows <= B && rows == 2) {
                if (noise) OSC_BACKWARD(1, 2, b); else OSC_BACKWARD(0, 2, b);
            } else /* one row a block, or a layer's last rows */
                for (int64_t bb = b; bb < b + rows && bb < B; bb++) {
                    if (noise) OSC_BACKWARD(1, 1, bb); else OSC_BACKWARD(0, 1, bb);
                }
#undef OSC_BACKWARD
        }
        LEAVE_FTZ
    }
}

/* ---- One layer's step that keeps its derivatives (the *_keep_seq / *_kept_seq loops of sequence_body.h). ----
 * Where nothing upstream of the drive but the weights needs a gradient (S, γ and b_fixed fixed), the
 * backward of a step needs only two numbers per neuron and sample: c = ∂x⁺/∂syn = S σ (∂x⁺/∂a +
 * ∂x⁺/∂b) and d = ∂x⁺/∂x, both 0 where the floor holds x. The forward computes them beside the
 * step, which it has just done anyway, and the backward is then a few multiply-adds instead of the
 * step recomputed. c is written over syn (read just before), d where the states would go. */

/* One step of one layer [B, N]: x⁺, y⁺ as osc_forward (one layer, always active), and c over syn, d into d_out. */
static void JOIN(osc_forward_keep, SUFFIX)(int64_t B, int64_t N, T *syn, const T *x, const T *y, const T *gain,
                                           const T *gamma, const T *bias_fixed, const T *sigma, const T *q,
                                           const T *e_hp, const T *k_hp, const T *x_min, const T *kick,
                                           const T *noise, T h, T *x_out, T *y_out, T *d_out) {
    const int64_t rows = FORWARD_ROWS(N);
#pragma omp parallel if (B * N >= PARALLEL_MIN)
    {
        ENTER_FTZ
#pragma omp for schedule(static)
        for (int64_t r = 0; r < BLOCKS(B, rows); r++) {
            const int64_t b = r * rows;
#define OSC_KEEP(NOISY, R, B0) JOIN(osc_forward_rows, SUFFIX)(NOISY, 1, R, 0, B0, 0, B, N, N, 1, syn, x, y, gain, \
                gamma, bias_fixed, sigma, q, e_hp, k_hp, x_min, kick, NOISY ? noise : NULL, h, x_out, y_out, NULL, syn, \
                d_out)
            if (b + rows <= B && rows == 8) {
                if (noise) OSC_KEEP(1, 8, b); else OSC_KEEP(0, 8, b);
            } else if (b + rows <= B) {
                if (noise) OSC_KEEP(1, 4, b); else OSC_KEEP(0, 4, b);
            } else
                for (int64_t bb = b; bb < B; bb++) {
                    if (noise) OSC_KEEP(1, 1, bb); else OSC_KEEP(0, 1, bb);
                }
#undef OSC_KEEP
        }
        LEAVE_FTZ
    }
}

/* The backward of one such step: with g = dL/dx⁺ + K dL/dy⁺, dL/dsyn = c g, dL/dx = d g - K dL/dy⁺,
 * dL/dy = E dL/dy⁺ (osc_backward's result, the step not recomputed). */
static void JOIN(osc_backward_kept, SUFFIX)(int64_t B, int64_t N, const T *c, const T *d, const T *e_hp, const T *k_hp,
                                            T *gx, T *gy, T *dsyn) {
#pragma omp parallel if (B * N >= PARALLEL_MIN)
    {
        ENTER_FTZ
        const T tiny = TINY;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; b++) {
            const int64_t o = b * N;
#pragma omp simd
            for (int64_t j = 0; j < N; j++) {
                const T gyv = gy[o + j], kh = k_hp[j];
                const T g = gx[o + j] + kh * gyv;
                dsyn[o + j] = FLUSH(c[o + j] * g, tiny);
                gx[o + j] = FLUSH(d[o + j] * g - kh * gyv, tiny);
                gy[o + j] = FLUSH(e_hp[j] * gyv, tiny);
            }
        }
        LEAVE_FTZ
    }
}

/* CTRNN forward, one diagonal (eq. 6-8): x⁺ = S syn h F(-γh) + x e^{-γh}, y⁺ = tanh(x⁺).
 * Argument order: KERNELS["ctrnn_forward"] in snnspin/native/__init__.py. */
void JOIN(ctrnn_forward, SUFFIX)(int64_t L, int64_t B, int64_t N, int64_t P, int64_t depth, int64_t lo, int64_t hi, const T *syn, const T *x,
                                 const T *step_gain, const T *decay, T *x_out, T *y_out, T *z_next) {
#pragma omp parallel if (L * B * N >= PARALLEL_MIN)
    {
        ENTER_FTZ
        const T tiny = TINY;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < L * B; r++) {
            const int64_t l = r / B, b = r % B, o = r * N, li = l % depth;
            const int active = li >= lo && li <= hi, has_up = li + 1 < depth;
            const T *sg = step_gain + l * N, *dec = decay + l * N;
#pragma omp simd
            for (int64_t j = 0; j < N; j++) {
                const T xn = active ? FLUSH(syn[o + j] * sg[j] + x[o + j] * dec[j], tiny) : x[o + j];
                x_out[o + j] = xn;
                y_out[o + j] = TANH(xn);
            }
            if (z_next) JOIN(write_next_inputs, SUFFIX)(z_next, y_out + o, l, b, has_up, B, N, P);
        }
        LEAVE_FTZ
    }
}

/* CTRNN backward, one diagonal: gy (zero on entry but for the output gradient) gets back's part;
 * writes dL/dx (g_state) and dL/dsyn; leaves gx = dL/dx · e^{-γh} and gy = 0.
 * Argument order: KERNELS["ctrnn_backward"] in snnspin/native/__init__.py. */
void JOIN(ctrnn_backward, SUFFIX)(int64_t L, int64_t B, int64_t N, int64_t P, int64_t depth, int64_t lo, int64_t hi, const T *back, T *gx, T *gy,
                                  const T *y, const T *step_gain, const T *decay, T *g_state, T *dsyn_out) {
#pragma omp parallel if (L * B * N >= PARALLEL_MIN)
    {
        ENTER_FTZ
        const T tiny = TINY;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < L * B; r++) {
            const int64_t l = r / B, b = r % B, o = r * N, li = l % depth;
            const int active = li >= lo && li <= hi, has_up = li + 1 < depth;
            const T *sg = step_gain + l * N, *dec = decay + l * N;
            if (back) JOIN(add_back, SUFFIX)(gy + o, back, l, b, has_up, B, N, P);
            /* inactive: x⁺ = x, y⁺ = tanh x: dL/dx = dL/dx⁺ + dL/dy⁺ (1 - y²), nothing to the drive */
            const T keep = active ? (T)0 : (T)1, pass = active ? (T)1 : (T)0;
#pragma omp simd
            for (int64_t j = 0; j < N; j++) {
                const T yv = y[o + j];
                const T g_x = FLUSH(gx[o + j] + gy[o + j] * ((T)1 - yv * yv), tiny);
                g_state[o + j] = g_x * pass;
                dsyn_out[o + j] = FLUSH(g_x * sg[j], tiny) * pass;
                gx[o + j] = FLUSH(g_x * dec[j], tiny) * pass + g_x * keep;
                gy[o + j] = 0;
            }
        }
        LEAVE_FTZ
    }
}
