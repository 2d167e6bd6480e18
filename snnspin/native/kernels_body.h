/* The kernels for one floating-point type T (included by kernels.c with T = double, float).
 * Each public kernel processes one diagonal; its (layer, batch) rows are independent. */

static inline T JOIN(horner, SUFFIX)(const double *c, int n, T w) {
    T out = (T)c[n - 1];
    for (int k = n - 2; k >= 0; k--) out = out * w + (T)c[k];
    return out;
}

/* Row (l, b) of y⁺ into the next diagonal's inputs: this layer's recurrent columns and, as its
 * signal, the first columns of layer l + 1. */
static inline void JOIN(write_next_inputs, SUFFIX)(T *z_next, const T *y_row, int64_t l, int64_t b, int64_t L, int64_t B,
                                                   int64_t N, int64_t P) {
    T *own = z_next + (l * B + b) * (P + N) + P;
    for (int64_t j = 0; j < N; j++) own[j] = y_row[j];
    if (l + 1 < L) {
        T *up = z_next + ((l + 1) * B + b) * (P + N);
        for (int64_t j = 0; j < N; j++) up[j] = y_row[j];
    }
}

/* Row (l, b) of dL/dy += what diagonal d+1 passed back: this layer's recurrent columns of back,
 * then the signal columns of layer l + 1 (the reverse of write_next_inputs). */
static inline void JOIN(add_back, SUFFIX)(T *gy_row, const T *back, int64_t l, int64_t b, int64_t L, int64_t B, int64_t N,
                                          int64_t P) {
    const T *own = back + (l * B + b) * (P + N) + P;
    for (int64_t j = 0; j < N; j++) gy_row[j] += own[j];
    if (l + 1 < L) {
        const T *up = back + ((l + 1) * B + b) * (P + N);
        for (int64_t j = 0; j < N; j++) gy_row[j] += up[j];
    }
}

/* The exact step of one oscillator (_exact_parts in functional/oscillator.py): growth rate a,
 * c = γ(1 + Q); returns x⁺ and sets e = e^w, F(w), D. Shared by the forward and the backward,
 * which recomputes it rather than storing three more arrays per diagonal. */
static inline T JOIN(exact_step, SUFFIX)(T xv, T a, T c, T h, T *e_out, T *f_out, T *den_out) {
    const T tiny = TINY, min_w = (T)MIN_EXPONENT;
    const int grow = a >= 0;
    const T w = (grow ? -a : a) * h; /* -|a| h <= 0 */
    const T e = EXP(w < min_w ? min_w : w);
    const int near = w > -(T)RATIO_SERIES_BELOW;
    const T w_safe = near ? (T)1 : w;
    const T f = near ? JOIN(horner, SUFFIX)(RATIO_COEFFS, 15, w) : (e - (T)1) / w_safe;
    const T hf = h * f, bb = a + c;
    /* (b h F) x rather than b (x h F): for a state at its floor x = tiny, x h F can be subnormal
     * (flushed here). On this branch b h F = (b/a)(1 - e) >= 1 - e, so where the term matters
     * against e (small e, down to e^-80) the product stays normal. */
    const T den = grow ? e + (bb * hf) * xv : ((T)1 - xv) + xv * e + c * (xv * hf);
    const T m = grow ? (T)1 : e;
    const T xn = xv * m / den;
    *e_out = e;
    *f_out = f;
    *den_out = den;
    return xn < tiny ? tiny : xn;
}

/* The thermal kick (kicked_power in functional/oscillator.py): min((√x_d + a ξ₁)² + (a ξ₂)², 1). */
static inline T JOIN(kicked_power, SUFFIX)(T xd, T a, T xi1, T xi2) {
    const T r = SQRT(xd < (T)0 ? (T)0 : xd) + a * xi1, s = a * xi2;
    const T out = r * r + s * s;
    return out > (T)1 ? (T)1 : out;
}

/* Row (l, b) of the oscillator + high-pass forward: drive, exact step (eq. 2), filter (eq. 5).
 * Per-neuron constants of layer l: gain S, γ, b_fixed, σ, Q, and the filter's E = e^{-ω_c h'}, K = F(-ω_c h'). */
static inline __attribute__((always_inline)) void JOIN(osc_forward_row, SUFFIX)(
                                                 int noisy, int64_t l, int64_t b, int64_t L, int64_t B, int64_t N,
                                                 int64_t P, int active, const T *syn, const T *x, const T *y, const T *gain,
                                                 const T *gam, const T *bfix, const T *sigma, const T *q,
                                                 const T *e_hp, const T *k_hp, const T *xmin, const T *kick,
                                                 const T *noise, T h, T *x_out, T *y_out, T *z_next) {
    const T tiny = TINY;
    const int64_t o = (l * B + b) * N;
    const T *xi1 = noise ? noise + (2 * l * B + b) * N : NULL, *xi2 = noise ? xi1 + B * N : NULL;
#pragma omp simd
    for (int64_t j = 0; j < N; j++) {
        const T g = gam[j], xv = x[o + j];
        const T a = sigma[j] * (gain[j] * syn[o + j] + bfix[j]) - g;
        T e, f, den;
        const T raw = JOIN(exact_step, SUFFIX)(xv, a, g * ((T)1 + q[j]), h, &e, &f, &den);
        const T kicked = noisy ? JOIN(kicked_power, SUFFIX)(raw, kick[j], xi1[j], xi2[j]) : raw;
        const T xn = kicked < xmin[j] ? xmin[j] : kicked; /* the floor x_min (0: none) */
        x_out[o + j] = xn;
        y_out[o + j] = FLUSH(e_hp[j] * y[o + j] + k_hp[j] * (xn - xv), tiny);
    }
    if (!active)
        for (int64_t j = 0; j < N; j++) {
            x_out[o + j] = x[o + j];
            y_out[o + j] = y[o + j];
        }
    if (z_next) JOIN(write_next_inputs, SUFFIX)(z_next, y_out + o, l, b, L, B, N, P);
}

/* Oscillator + high-pass forward, one diagonal: x⁺ and y⁺ from the synaptic sums syn; when
 * z_next is given, y⁺ also into the next diagonal's inputs. With noise ([L, 2, B, N]: ξ₁, ξ₂
 * of each layer's step on this diagonal; NULL: none), the thermal kick of amplitude kick [L, N]
 * follows the deterministic step, before the floor. Argument order: KERNELS["osc_forward"]
 * in snnspin/native/__init__.py (the one table the Python side builds its calls from). */
void JOIN(osc_forward, SUFFIX)(int64_t L, int64_t B, int64_t N, int64_t P, int64_t lo, int64_t hi, const T *syn,
                               const T *x, const T *y, const T *gain, const T *gamma, const T *bias_fixed,
                               const T *sigma, const T *q, const T *e_hp, const T *k_hp, const T *x_min,
                               const T *kick, const T *noise, double h, T *x_out, T *y_out, T *z_next) {
#pragma omp parallel if (L * B * N >= PARALLEL_MIN)
    {
        ENTER_FTZ
#pragma omp for schedule(static)
        for (int64_t r = 0; r < L * B; r++) {
            const int64_t l = r / B, b = r % B, k = l * N;
            /* noisy as a constant: each call is its own inlined copy, vectorised without the kick's branch */
            if (noise)
                JOIN(osc_forward_row, SUFFIX)(1, l, b, L, B, N, P, l >= lo && l <= hi, syn, x, y, gain + k, gamma + k,
                                              bias_fixed + k, sigma + k, q + k, e_hp + k, k_hp + k, x_min + k,
                                              kick + k, noise, (T)h, x_out, y_out, z_next);
            else
                JOIN(osc_forward_row, SUFFIX)(0, l, b, L, B, N, P, l >= lo && l <= hi, syn, x, y, gain + k, gamma + k,
                                              bias_fixed + k, sigma + k, q + k, e_hp + k, k_hp + k, x_min + k,
                                              kick + k, NULL, (T)h, x_out, y_out, z_next);
        }
        LEAVE_FTZ
    }
}

/* Row (l, b) of the oscillator backward: ∂x⁺/∂(x, a, b) as exact_derivatives in functional/oscillator.py. */
static inline __attribute__((always_inline)) void JOIN(osc_backward_row, SUFFIX)(
                                                  int noisy, int64_t l, int64_t b, int64_t L, int64_t B, int64_t N,
                                                  int64_t P, T activity, const T *back, T *gx, T *gy, const T *x_old,
                                                  const T *syn, const T *gain, const T *gam, const T *bfix,
                                                  const T *sigma, const T *q, const T *e_hp, const T *k_hp,
                                                  const T *xmin, const T *kick, const T *noise, T h, T *dsyn_out,
                                                  T *g_gain, T *g_a_sum, T *g_b_sum) {
    const T tiny = TINY;
    const int64_t o = (l * B + b) * N;
    const T *xi1 = noise ? noise + (2 * l * B + b) * N : NULL, *xi2 = noise ? xi1 + B * N : NULL;
    if (back) JOIN(add_back, SUFFIX)(gy + o, back, l, b, L, B, N, P);
    if (activity == (T)0) { /* the forward kept (x, y): their gradients pass unchanged, none to the drive */
        for (int64_t j = 0; j < N; j++) dsyn_out[o + j] = 0;
        return;
    }
#pragma omp simd
    for (int64_t j = 0; j < N; j++) {
        const T g = gam[j], xv = x_old[o + j], gyv = gy[o + j], sg = sigma[j], kh = k_hp[j];
        const T a = sg * (gain[j] * syn[o + j] + bfix[j]) - g, c = g * ((T)1 + q[j]);
        T e, f, den;
        const T xn = JOIN(exact_step, SUFFIX)(xv, a, c, h, &e, &f, &den);
        const T bb = a + c;
        const int grow = a >= 0;
        const T w = (grow ? -a : a) * h;
        const T s = grow ? (T)-1 : (T)1;
        const T de_da = e * s * h;
        const int small = w < (T)SERIES_BELOW && w > -(T)SERIES_BELOW;
        const T w_safe = small ? (T)1 : w;
        const T dfw = small ? JOIN(horner, SUFFIX)(DERIVATIVE_COEFFS, 7, w) : (e - f) / w_safe;
        const T dg_da = (h * h) * dfw * s;
        const T ratio = xn / den;
        const T d_a = (xv / den) * (grow ? (T)0 : de_da) - ratio * ((grow ? de_da : (T)0) + bb * xv * dg_da);
        const T d_b = -ratio * xv * (h * f);
        const T d_x = (e / den) / den;
        /* the kick passes the gradient straight through; the floor passes none where it holds x */
        const T kicked = noisy ? JOIN(kicked_power, SUFFIX)(xn, kick[j], xi1[j], xi2[j]) : xn;
        const T passed = kicked >= xmin[j] ? (T)1 : (T)0;
        const T g_xn = (gx[o + j] + kh * gyv) * passed;
        const T g_a = g_xn * d_a, g_b = g_xn * d_b;
        const T g_drive = sg * (g_a + g_b);
        g_gain[o + j] += g_drive * syn[o + j];
        g_a_sum[o + j] += g_a;
        g_b_sum[o + j] += g_b;
        dsyn_out[o + j] = FLUSH(gain[j] * g_drive, tiny);
        gx[o + j] = FLUSH(d_x * g_xn - kh * gyv, tiny);
        gy[o + j] = FLUSH(e_hp[j] * gyv, tiny);
    }
}

/* Oscillator + high-pass backward, one diagonal, from the state before it (x_old) and its
 * synaptic sums (the step itself is recomputed). On entry gy holds what later diagonals passed
 * down without the matmul part, which back = dsyn(d+1) · [W_ext | W_int] supplies (NULL on
 * the last diagonal); on return gx, gy hold the same for diagonal d-1, dsyn_out dL/dsyn(d).
 * Accumulates dL/d(gain) (times syn, per element), dL/da and dL/db over the diagonals.
 * Argument order: KERNELS["osc_backward"] in snnspin/native/__init__.py. */
void JOIN(osc_backward, SUFFIX)(int64_t L, int64_t B, int64_t N, int64_t P, int64_t lo, int64_t hi, const T *back,
                                T *gx, T *gy, const T *x_old, const T *syn, const T *gain, const T *gamma,
                                const T *bias_fixed, const T *sigma, const T *q, const T *e_hp, const T *k_hp,
                                const T *x_min, const T *kick, const T *noise, double h, T *dsyn_out, T *g_gain,
                                T *g_a_sum, T *g_b_sum) {
#pragma omp parallel if (L * B * N >= PARALLEL_MIN)
    {
        ENTER_FTZ
#pragma omp for schedule(static)
        for (int64_t r = 0; r < L * B; r++) {
            const int64_t l = r / B, b = r % B, k = l * N;
            const T activity = (l >= lo && l <= hi) ? (T)1 : (T)0;
            if (noise)
                JOIN(osc_backward_row, SUFFIX)(1, l, b, L, B, N, P, activity, back, gx, gy, x_old, syn, gain + k,
                                               gamma + k, bias_fixed + k, sigma + k, q + k, e_hp + k, k_hp + k,
                                               x_min + k, kick + k, noise, (T)h, dsyn_out, g_gain, g_a_sum, g_b_sum);
            else
                JOIN(osc_backward_row, SUFFIX)(0, l, b, L, B, N, P, activity, back, gx, gy, x_old, syn, gain + k,
                                               gamma + k, bias_fixed + k, sigma + k, q + k, e_hp + k, k_hp + k,
                                               x_min + k, kick + k, NULL, (T)h, dsyn_out, g_gain, g_a_sum, g_b_sum);
        }
        LEAVE_FTZ
    }
}

/* CTRNN forward, one diagonal (eq. 6-8): x⁺ = S syn h F(-γh) + x e^{-γh}, y⁺ = tanh(x⁺).
 * Argument order: KERNELS["ctrnn_forward"] in snnspin/native/__init__.py. */
void JOIN(ctrnn_forward, SUFFIX)(int64_t L, int64_t B, int64_t N, int64_t P, int64_t lo, int64_t hi, const T *syn, const T *x,
                                 const T *step_gain, const T *decay, T *x_out, T *y_out, T *z_next) {
#pragma omp parallel if (L * B * N >= PARALLEL_MIN)
    {
        ENTER_FTZ
        const T tiny = TINY;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < L * B; r++) {
            const int64_t l = r / B, b = r % B, o = r * N;
            const int active = l >= lo && l <= hi;
            const T *sg = step_gain + l * N, *dec = decay + l * N;
#pragma omp simd
            for (int64_t j = 0; j < N; j++) {
                const T xn = active ? FLUSH(syn[o + j] * sg[j] + x[o + j] * dec[j], tiny) : x[o + j];
                x_out[o + j] = xn;
                y_out[o + j] = TANH(xn);
            }
            if (z_next) JOIN(write_next_inputs, SUFFIX)(z_next, y_out + o, l, b, L, B, N, P);
        }
        LEAVE_FTZ
    }
}

/* CTRNN backward, one diagonal: gy (zero on entry but for the output gradient) gets back's part;
 * writes dL/dx (g_state) and dL/dsyn; leaves gx = dL/dx · e^{-γh} and gy = 0.
 * Argument order: KERNELS["ctrnn_backward"] in snnspin/native/__init__.py. */
void JOIN(ctrnn_backward, SUFFIX)(int64_t L, int64_t B, int64_t N, int64_t P, int64_t lo, int64_t hi, const T *back, T *gx, T *gy,
                                  const T *y, const T *step_gain, const T *decay, T *g_state, T *dsyn_out) {
#pragma omp parallel if (L * B * N >= PARALLEL_MIN)
    {
        ENTER_FTZ
        const T tiny = TINY;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < L * B; r++) {
            const int64_t l = r / B, b = r % B, o = r * N;
            const int active = l >= lo && l <= hi;
            const T *sg = step_gain + l * N, *dec = decay + l * N;
            if (back) JOIN(add_back, SUFFIX)(gy + o, back, l, b, L, B, N, P);
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
