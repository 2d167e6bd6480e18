/* Pointwise kernels of the fused sequence path (snnspin/fused.py), one call per diagonal.
 *
 * Same equations, in nearly the same order of operations, as the torch backend (TorchKernels
 * in snnspin/pointwise.py, built on snnspin/functional); the tests hold the two to 1e-13 in
 * float64. The body is written once, in kernels_body.h, and included for double and float.
 *
 * Layout: C-contiguous state, drive and gradient arrays [L, B, N]; the layer inputs z and
 * back-propagated inputs [L, B, P + N] (P signal columns, then N recurrent ones);
 * per-neuron values [L, N]; per-layer gains [L]. The L layers are those of L / depth networks of
 * depth layers each, network by network (an ensemble; depth = L for one network): layer l is
 * layer l % depth of its network, and only its network's next layer reads its output. Layers
 * outside [lo, hi] (counted within their network) are inactive on the diagonal: they keep
 * their state and pass no gradient to their drive.
 *
 * Speed (why this file exists: the torch backend launches ~20-30 small kernels per diagonal):
 * - transcendentals are declared "omp declare simd", so with -fopenmp-simd gcc calls glibc's
 *   vector math library (libmvec, <= 4 ulp) on whole SIMD registers; only exp and tanh are
 *   needed: F(w) = (e^w - 1)/w comes from e^w or its series, not from a second expm1;
 * - flush-to-zero / denormals-are-zero during each kernel, and subnormal outputs flushed:
 *   an oscillator at its floor x = tiny, and gradients decaying through BPTT, otherwise
 *   make subnormal operands, each ~100 times slower. Results change below 1e-38 (float32)
 *   or 1e-308 (float64) only;
 * - with -fopenmp, the (layer, batch) rows are split over threads. torch's CPU wheels ship
 *   libgomp.so.1, which this library then shares: torch.set_num_threads applies here too.
 *
 * Built at first use with the system C compiler by snnspin/native/__init__.py.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#pragma omp declare simd notinbranch
double exp(double);
#pragma omp declare simd notinbranch
double tanh(double);
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
float tanhf(float);

#if defined(__SSE__)
#include <xmmintrin.h>
#define ENTER_FTZ unsigned int saved_csr = _mm_getcsr(); _mm_setcsr(saved_csr | 0x8040u);
#define LEAVE_FTZ _mm_setcsr(saved_csr);
#else
#define ENTER_FTZ
#define LEAVE_FTZ
#endif

/* Rows of at least this many elements in all are split over threads. */
#define PARALLEL_MIN 8192
/* Rows of one layer updated together (see osc_forward_rows): enough independent dependency chains
 * per SIMD lane to hide the latency of exp and the divisions, few enough that their values stay in
 * registers (the backward keeps about twice as many values live per element). Chosen from the C loops
 * of one training step (3 layers, batch 120, T = 64, AVX-512, one thread): forward 8 rows of <= 32
 * neurons (2 vectors a row), else 4; backward 2 rows up to 64 neurons, else 1. Eight rows everywhere,
 * as before, spilled registers: backward 7.1 -> 2.7 ms per layer at 128 neurons, 24.5 -> 10.7 at 512. */
#define FORWARD_ROWS(N) ((N) <= 32 ? 8 : 4)
#define BACKWARD_ROWS(N) ((N) <= 64 ? 2 : 1)
/* The blocks of R rows a layer of B rows has (its last one may be short). */
#define BLOCKS(B, R) (((B) + (R) - 1) / (R))

/* The constants shared with the Python side come from it, as -D flags at build time
 * (snnspin/native/__init__.py: CONSTANTS), so that the two cannot drift apart; they are
 * exported back below and a test compares them. */
#if !defined(MIN_EXPONENT) || !defined(SERIES_BELOW) || !defined(RATIO_SERIES_BELOW)
#error "build through snnspin.native, which passes the shared constants as -D flags"
#endif

/* In CONSTANTS' order: read back by the tests to check that the build used the Python values. */
const double snnspin_constants[3] = {MIN_EXPONENT, SERIES_BELOW, RATIO_SERIES_BELOW};

/* F(w) = sum_k w^k / (k+1)!, k = 0..14 (float; k = 0..7, RATIO_TERMS below): truncation < 5e-17
 * for |w| < 0.5. Above, F is
 * (e^w - 1)/w, with e^w <= 0.61 so that e^w - 1 does not cancel (<= 2 ulp). */
static const double RATIO_COEFFS[15] = {
    1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320, 1.0 / 362880,
    1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800, 1.0 / 87178291200,
    1.0 / 1307674368000};
/* F'(w) = sum_k k w^(k-1) / (k+1)!, k = 1..7: _DCOEFFS in functional/exponential.py (exported; a test compares). */
const double DERIVATIVE_COEFFS[7] = {1.0 / 2, 2.0 / 6, 3.0 / 24, 4.0 / 120, 5.0 / 720,
                                            6.0 / 5040, 7.0 / 40320};

#define FLUSH(v, tiny) (((v) < (tiny) && (v) > -(tiny)) ? 0 : (v))
#define JOIN2(a, b) a##_##b
#define JOIN(a, b) JOIN2(a, b)

#define T double
#define SUFFIX f64
#define EXP exp
#define TANH tanh
#define SQRT sqrt
#define TINY 2.2250738585072014e-308
#define RATIO_TERMS 15
#define DERIVATIVE_TERMS 7
#include "kernels_body.h"
#include "sequence_body.h"
#undef T
#undef SUFFIX
#undef EXP
#undef TANH
#undef SQRT
#undef TINY
#undef RATIO_TERMS
#undef DERIVATIVE_TERMS

#define T float
#define SUFFIX f32
#define EXP expf
#define TANH tanhf
#define SQRT sqrtf
#define TINY 1.17549435e-38f
/* float: shorter series, truncated below half an ulp (2^-24 relative): F by 8 terms for |w| < 0.5
 * (next term 0.5^8/9! = 1.1e-8, F >= 0.79), F' by 5 for |w| < SERIES_BELOW = 0.05 (next 3.7e-10, F' >= 0.48) */
#define RATIO_TERMS 8
#define DERIVATIVE_TERMS 5
#include "kernels_body.h"
#include "sequence_body.h"
