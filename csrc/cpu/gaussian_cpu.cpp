// Fused Gaussian kernel products on the CPU: out = K(X, C) @ V and out = K(X, C)^T diag(w) U,
// K never materialised (the transposed product is described above run_t).
//
// Work layout: rows of X are split into blocks of kRB rows, the OpenMP work items (dynamic
// schedule; every row is computed by one thread in a fixed order, so results are bitwise
// independent of the thread count).  The centres are packed once, transposed per block of kMB
// centres (d x kMB), so that the squared distances from one row to a vector of consecutive
// centres need only contiguous loads.
// Distances use direct differences sum_k (x_k - c_k)^2 (no cancellation, never negative),
// accumulated in registers over the features, scaled by -log2(e) / (2 sigma^2); the kernel
// value is the vectorised exp2_nonpos of that (simd.hpp).
//   * b == 1: the products K_ij v_j are accumulated in registers as the kernel values are
//     produced (kG SIMD vectors of centres at a time);
//   * b > 1: work items of kRBM rows; a kRBM x kMB tile of K is written to a thread-local
//     buffer, then multiplied by packed kMB x W panels of V in a register-blocked micro-kernel
//     of kMRM rows x kNV panels (W = SIMD width), each accumulator summing over the centres
//     in order.
// Hot functions are templates on the vector width, compiled per instruction-set level
// (AVX-512 / AVX2 / baseline) with CX_ISA_KERNEL; each driver reads the active level once
// (isa.hpp), so wheels stay portable.
#include "gaussian_cpu.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

#include "aligned_buffer.hpp"
#include "isa.hpp"
#include "parallel.hpp"
#include "simd.hpp"


namespace contrastx::cpu {
namespace {

using i64 = std::int64_t;
using detail::Buffer;
using detail::resolve_threads;
using detail::round_up;
using detail::team_size;
using detail::thread_id;

constexpr i64 kMB = 128;  // centres per packed block
constexpr i64 kRB = 32;   // rows of X per work item
constexpr int kMR = 4;    // rows of the micro-kernel
// SIMD vectors of centres evaluated together: 8 with AVX-512's 32 registers, 4 with AVX2's 16.
template <int VB>
constexpr int kG = VB == 64 ? 8 : 4;

static_assert(kMB % (kG<64> * kWidth<float, 64>) == 0 && kMB % (kG<32> * kWidth<float, 32>) == 0,
              "kMB must hold whole groups of SIMD vectors");
static_assert(kRB % kMR == 0, "kRB must be a multiple of kMR");

// Kernel values of row xr against the kG * W centres of a packed block (d x kMB) starting at
// column j: e[g] = 2^(neg_gamma * |xr - c|^2) = exp(-|xr - c|^2 / (2 sigma^2)) for the g-th
// vector of centres (neg_gamma = -log2(e) / (2 sigma^2), see kernel_scale).
template <int VB, typename T>
CX_ALWAYS_INLINE void kernel_group(const T* xr, i64 d, const T* cblock, i64 j,
                                   Vec<T, VB> neg_gamma, Vec<T, VB> (&e)[kG<VB>]) {
    constexpr int W = kWidth<T, VB>;
    for (int g = 0; g < kG<VB>; ++g) e[g] = Vec<T, VB>{};
    for (i64 k = 0; k < d; ++k) {
        const Vec<T, VB> xk = splat<VB>(xr[k]);
        const T* ck = cblock + k * kMB + j;
        for (int g = 0; g < kG<VB>; ++g) {
            const Vec<T, VB> diff = xk - load<VB>(ck + g * W);
            e[g] += diff * diff;
        }
    }
    for (int g = 0; g < kG<VB>; ++g) e[g] *= neg_gamma;
    exp2_nonpos(e);
}

// b == 1: out[r] = sum_j K(x_r, c_j) v_j for the rows of one block.
template <int VB, typename TI, typename T>
CX_ALWAYS_INLINE void block_b1_impl(const TI* x, i64 rows, i64 d, const T* ct, const T* vv,
                                    i64 m_pad, T neg_gamma_s, T* xbuf, TI* out) {
    constexpr int W = kWidth<T, VB>;
    const Vec<T, VB> neg_gamma = splat<VB>(neg_gamma_s);
    for (i64 r = 0; r < rows; ++r) {
        for (i64 k = 0; k < d; ++k) xbuf[k] = static_cast<T>(x[r * d + k]);
        Vec<T, VB> part[kG<VB>] = {};
        for (i64 blk = 0; blk < m_pad; blk += kMB) {
            const T* cblock = ct + blk * d;
            const T* vb = vv + blk;
            for (i64 j = 0; j < kMB; j += kG<VB> * W) {
                Vec<T, VB> e[kG<VB>];
                kernel_group<VB>(xbuf, d, cblock, j, neg_gamma, e);
                for (int g = 0; g < kG<VB>; ++g) part[g] += e[g] * load<VB>(vb + j + g * W);
            }
        }
        for (int g = 1; g < kG<VB>; ++g) part[0] += part[g];
        out[r] = static_cast<TI>(hsum(part[0]));
    }
}

// Register block of the b > 1 product: kMRM rows x kNV SIMD vectors of columns (24
// accumulators of AVX-512's 32 registers, 8 of AVX2's 16).  Measured with AVX-512 at
// m = 1000, b = 64 .. 500: 4 x 6 runs 1.1x 8 x 3, and 1.2-1.4x the previous 4 x 1.
constexpr int kMRM = 4;
template <int VB>
constexpr int kNV = VB == 64 ? 6 : 2;
constexpr i64 kRBM = 128;  // rows of X per work item of the b > 1 product
static_assert(kRBM % kMRM == 0, "kRBM must hold whole row blocks");

// acc (MR x NV*W, leading dimension ldacc) += ktile (MR x kMB, ld kMB) @ [NV panels of V]
// (kMB x W each, panel p at vpanel + p * pstride).  Each accumulator sums over j in order.
template <int VB, int MR, int NV, typename T>
CX_ALWAYS_INLINE void micro_kernel(const T* ktile, const T* vpanel, i64 pstride, T* acc,
                                   i64 ldacc) {
    constexpr int W = kWidth<T, VB>;
    Vec<T, VB> a[MR][NV];
    for (int r = 0; r < MR; ++r)
        for (int p = 0; p < NV; ++p) a[r][p] = load<VB>(acc + r * ldacc + p * W);
    for (i64 j = 0; j < kMB; ++j) {
        Vec<T, VB> vj[NV];
        for (int p = 0; p < NV; ++p) vj[p] = load<VB>(vpanel + p * pstride + j * W);
        for (int r = 0; r < MR; ++r) {
            const Vec<T, VB> k = splat<VB>(ktile[r * kMB + j]);
            for (int p = 0; p < NV; ++p) a[r][p] += k * vj[p];
        }
    }
    for (int r = 0; r < MR; ++r)
        for (int p = 0; p < NV; ++p) store(acc + r * ldacc + p * W, a[r][p]);
}

// acc (rows_mr x b_pad) += ktile (rows_mr x kMB) @ the kMB rows of the V panels that vp
// points at (panel p at vp + p * pstride), in register blocks of MR rows x NV panels (the
// last panels in narrower blocks).
template <int VB, int MR, int NV, typename T>
CX_ALWAYS_INLINE void tile_times_panels(const T* ktile, const T* vp, i64 pstride, i64 panels,
                                        i64 rows_mr, i64 b_pad, T* acc) {
    constexpr int W = kWidth<T, VB>;
    i64 p = 0;
    for (; p + NV <= panels; p += NV)
        for (i64 r0 = 0; r0 < rows_mr; r0 += MR)
            micro_kernel<VB, MR, NV>(ktile + r0 * kMB, vp + p * pstride, pstride,
                                     acc + r0 * b_pad + p * W, b_pad);
    if constexpr (NV > 1) {
        if (p < panels)
            tile_times_panels<VB, MR, NV - 1>(ktile, vp + p * pstride, pstride, panels - p,
                                              rows_mr, b_pad, acc + p * W);
    }
}

// b > 1: the rows of one block.  xbuf: kRBM x d, ktile: kRBM x kMB, acc: kRBM x b_pad.
template <int VB, typename TI, typename T>
CX_ALWAYS_INLINE void block_multi_impl(const TI* x, i64 rows, i64 d, const T* ct, const T* vp,
                                       i64 m_pad, i64 b, i64 b_pad, T neg_gamma_s, T* xbuf,
                                       T* ktile, T* acc, TI* out, T* exp_sums) {
    constexpr int W = kWidth<T, VB>;
    const Vec<T, VB> neg_gamma = splat<VB>(neg_gamma_s);
    for (i64 i = 0; i < rows * d; ++i) xbuf[i] = static_cast<T>(x[i]);
    const i64 rows_mr = round_up(rows, kMRM);
    for (i64 i = 0; i < rows_mr * b_pad; ++i) acc[i] = T(0);
    for (i64 i = rows * kMB; i < rows_mr * kMB; ++i) ktile[i] = T(0);  // rows past the end
    for (i64 blk = 0; blk < m_pad; blk += kMB) {
        const T* cblock = ct + blk * d;
        for (i64 r = 0; r < rows; ++r) {
            for (i64 j = 0; j < kMB; j += kG<VB> * W) {
                Vec<T, VB> e[kG<VB>];
                kernel_group<VB>(xbuf + r * d, d, cblock, j, neg_gamma, e);
                for (int g = 0; g < kG<VB>; ++g) store(ktile + r * kMB + j + g * W, e[g]);
            }
        }
        tile_times_panels<VB, kMRM, kNV<VB>>(ktile, vp + blk * W, m_pad * W, b_pad / W, rows_mr,
                                             b_pad, acc);
    }
    if (exp_sums) {  // exp_sums[c] = sum over the rows, in order, of e^acc[r][c]
        for (i64 p = 0; p < b_pad; p += W) {
            Vec<T, VB> sum = {};
            for (i64 r = 0; r < rows; ++r) {
                Vec<T, VB> e[1] = {load<VB>(acc + r * b_pad + p)};
                exp_any<1>(e);
                sum += e[0];
            }
            store(exp_sums + p, sum);
        }
        return;
    }
    for (i64 r = 0; r < rows; ++r)
        for (i64 c = 0; c < b; ++c) out[r * b + c] = static_cast<TI>(acc[r * b_pad + c]);
}

CX_ISA_KERNEL(block_b1, block_b1_impl)
CX_ISA_KERNEL(block_multi, block_multi_impl)

// The factor of |x - c|^2 in the exponent of 2: exp(-t / (2 sigma^2)) = 2^(t * kernel_scale).
inline double kernel_scale(double sigma) { return -kLog2e<double> / (2.0 * sigma * sigma); }

// Centres transposed per block of kMB, ct[blk][k][jj] (m rounded up to kMB; padding is 0).
template <typename TI, typename T>
Buffer<T> pack_centres(const TI* c, i64 m, i64 d) {
    Buffer<T> ct(round_up(m, kMB) * d);
    for (i64 j = 0; j < m; ++j) {
        T* dst = ct.get() + (j / kMB) * kMB * d + (j % kMB);
        for (i64 k = 0; k < d; ++k) dst[k * kMB] = static_cast<T>(c[j * d + k]);
    }
    return ct;
}

// exp_sums (b entries) non-null: instead of out, exp_sums[c] = sum_i e^(K(X, C) V)_{ic}, the
// rows' exponentials summed per work item in row order and the items' sums in item order.
template <int VB, typename TI, typename T>
void run_vb(const TI* x, const TI* c, const TI* v, TI* out, i64 n, i64 m, i64 d, i64 b,
            double sigma, int num_threads, TI* exp_sums = nullptr) {
    constexpr int W = kWidth<T, VB>;
    const T neg_gamma = static_cast<T>(kernel_scale(sigma));
    const i64 m_pad = round_up(m, kMB);
    const bool multi = b > 1 || exp_sums;  // the b > 1 path (exp sums need its tiles)
    const i64 b_pad = multi ? round_up(b, W) : 1;

    // Padding centres are 0 and their rows of V are 0, so they add exact zeros.
    const Buffer<T> ct = pack_centres<TI, T>(c, m, d);
    // V: a plain vector for b == 1, else W-column panels vp[p][j][cc].
    Buffer<T> vp(m_pad * b_pad);
    if (!multi) {
        for (i64 j = 0; j < m; ++j) vp.get()[j] = static_cast<T>(v[j]);
    } else {
        for (i64 j = 0; j < m; ++j)
            for (i64 cc = 0; cc < b; ++cc)
                vp.get()[(cc / W) * m_pad * W + j * W + (cc % W)] = static_cast<T>(v[j * b + cc]);
    }

    const i64 rb = multi ? kRBM : kRB;  // rows per work item
    const i64 nblocks = (n + rb - 1) / rb;
    const int nt = resolve_threads(num_threads, nblocks);
    const i64 xbuf_sz = round_up(rb * std::max<i64>(d, 1), 16);
    const i64 ktile_sz = multi ? rb * kMB : 0;
    const i64 acc_sz = multi ? rb * b_pad : 0;
    const i64 per_thread = xbuf_sz + ktile_sz + acc_sz;  // multiple of 16 elements: aligned
    Buffer<T> scratch(per_thread * nt);  // allocated here: nothing may throw inside the region
    Buffer<T> partial(exp_sums ? nblocks * b_pad : 0);  // per work item

    const T* ctp = ct.get();
    const T* vpp = vp.get();
    T* scr = scratch.get();
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        const i64 tid = thread_id();
        T* xbuf = scr + tid * per_thread;
        T* ktile = xbuf + xbuf_sz;
        T* acc = ktile + ktile_sz;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 4)
#endif
        for (i64 ib = 0; ib < nblocks; ++ib) {
            const i64 r0 = ib * rb;
            const i64 rows = std::min(rb, n - r0);
            if (!multi)
                block_b1<VB>(x + r0 * d, rows, d, ctp, vpp, m_pad, neg_gamma, xbuf, out + r0);
            else
                block_multi<VB>(x + r0 * d, rows, d, ctp, vpp, m_pad, b, b_pad, neg_gamma, xbuf,
                                ktile, acc, exp_sums ? nullptr : out + r0 * b,
                                exp_sums ? partial.get() + ib * b_pad : nullptr);
        }
    }
    if (exp_sums) {
        for (i64 cc = 0; cc < b; ++cc) {
            double sum = 0.0;
            for (i64 ib = 0; ib < nblocks; ++ib) sum += double(partial.get()[ib * b_pad + cc]);
            exp_sums[cc] = static_cast<TI>(sum);
        }
    }
}

template <typename TI, typename T>
void run(const TI* x, const TI* c, const TI* v, TI* out, i64 n, i64 m, i64 d, i64 b, double sigma,
         int num_threads) {
    if (n < 0 || m < 0 || d < 0 || b < 0) throw std::invalid_argument("negative size");
    if (!(sigma > 0.0)) throw std::invalid_argument("sigma must be > 0");
    if (n == 0 || b == 0) return;
    if (m == 0) {
        std::fill(out, out + n * b, TI(0));
        return;
    }
    with_vector_bytes(active_isa(), [&](auto vb) {
        run_vb<decltype(vb)::value, TI, T>(x, c, v, out, n, m, d, b, sigma, num_threads);
    });
}


// ---------------------------------------------------------------------------------------------
// Dense kernel block out = K(X, C), (n, m): the same kernel values as the products above
// (direct differences, exp2_nonpos), written row by row.  Work items are blocks of kRB rows;
// every value depends on its row and centre only (bitwise independent of the thread count).
// ---------------------------------------------------------------------------------------------
template <int VB, typename TI, typename T>
CX_ALWAYS_INLINE void tile_block_impl(const TI* x, i64 rows, i64 d, const T* ct, i64 m,
                                      T neg_gamma_s, T* xbuf, T* kbuf, TI* out) {
    constexpr int W = kWidth<T, VB>;
    const Vec<T, VB> neg_gamma = splat<VB>(neg_gamma_s);
    for (i64 i = 0; i < rows * d; ++i) xbuf[i] = static_cast<T>(x[i]);
    for (i64 r = 0; r < rows; ++r) {
        TI* orow = out + r * m;
        for (i64 blk = 0; blk < m; blk += kMB) {
            const T* cblock = ct + blk * d;
            for (i64 j = 0; j < kMB; j += kG<VB> * W) {
                Vec<T, VB> e[kG<VB>];
                kernel_group<VB>(xbuf + r * d, d, cblock, j, neg_gamma, e);
                for (int g = 0; g < kG<VB>; ++g) store(kbuf + j + g * W, e[g]);
            }
            const i64 cols = std::min(kMB, m - blk);
            for (i64 j = 0; j < cols; ++j) orow[blk + j] = static_cast<TI>(kbuf[j]);
        }
    }
}

CX_ISA_KERNEL(tile_block, tile_block_impl)

template <typename TI, typename T>
void run_tile(const TI* x, const TI* c, TI* out, i64 n, i64 m, i64 d, double sigma,
              int num_threads) {
    if (n < 0 || m < 0 || d < 0) throw std::invalid_argument("negative size");
    if (!(sigma > 0.0)) throw std::invalid_argument("sigma must be > 0");
    if (n == 0 || m == 0) return;
    const T neg_gamma = static_cast<T>(kernel_scale(sigma));
    const Buffer<T> ct = pack_centres<TI, T>(c, m, d);
    const i64 nblocks = (n + kRB - 1) / kRB;
    const int nt = resolve_threads(num_threads, nblocks);
    const i64 xbuf_sz = round_up(kRB * std::max<i64>(d, 1), 16);
    const i64 per_thread = xbuf_sz + kMB;  // multiple of 16 elements: aligned
    Buffer<T> scratch(per_thread * nt);   // allocated here: nothing may throw inside the region
    const T* ctp = ct.get();
    T* scr = scratch.get();
    with_vector_bytes(active_isa(), [&](auto vb) {
        constexpr int VB = decltype(vb)::value;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
        {
            T* xbuf = scr + i64(thread_id()) * per_thread;
            T* kbuf = xbuf + xbuf_sz;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 4)
#endif
            for (i64 ib = 0; ib < nblocks; ++ib) {
                const i64 r0 = ib * kRB;
                tile_block<VB>(x + r0 * d, std::min(kRB, n - r0), d, ctp, m, neg_gamma, xbuf,
                               kbuf, out + r0 * m);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Transposed product out = K(X, C)^T diag(w) U, (m, b).
//
// Work items are (block of kMB centres, segment of rows).  Segments have a fixed length that
// depends on n only (at least kSegMin rows, at most kMaxSeg segments), each item accumulates
// its rows in order into its own slice of a partial buffer (segments x m_pad x b_pad), and the
// slices are summed in segment order: results are bitwise independent of the thread count.
// Inside an item, rows go in blocks of kRB: the block's rows are converted to T and their
// weights w_i u_i formed; then
//   * b == 1: kG vectors of centres at a time accumulate e_ij * (w_i u_i) in registers;
//   * b > 1: the kRB x kMB kernel tile is written to scratch and acc (kMB x b_pad) +=
//     tile^T @ (w o U_block) in a kMR x W register-blocked micro-kernel.
// ---------------------------------------------------------------------------------------------
constexpr i64 kSegMin = 4096;
constexpr i64 kMaxSeg = 32;

template <int VB, typename TI, typename T>
CX_ALWAYS_INLINE void tblock_b1_impl(const TI* x, const TI* u, const TI* w, i64 rows, i64 d,
                                     const T* cblock, T neg_gamma_s, T* xbuf, T* wu, T* acc) {
    constexpr int W = kWidth<T, VB>;
    const Vec<T, VB> neg_gamma = splat<VB>(neg_gamma_s);
    for (i64 i = 0; i < rows * d; ++i) xbuf[i] = static_cast<T>(x[i]);
    for (i64 r = 0; r < rows; ++r)
        wu[r] = w ? static_cast<T>(w[r]) * static_cast<T>(u[r]) : static_cast<T>(u[r]);
    for (i64 j = 0; j < kMB; j += kG<VB> * W) {
        Vec<T, VB> a[kG<VB>];
        for (int g = 0; g < kG<VB>; ++g) a[g] = load<VB>(acc + j + g * W);
        for (i64 r = 0; r < rows; ++r) {
            Vec<T, VB> e[kG<VB>];
            kernel_group<VB>(xbuf + r * d, d, cblock, j, neg_gamma, e);
            const Vec<T, VB> s = splat<VB>(wu[r]);
            for (int g = 0; g < kG<VB>; ++g) a[g] += e[g] * s;
        }
        for (int g = 0; g < kG<VB>; ++g) store(acc + j + g * W, a[g]);
    }
}

template <int VB, typename TI, typename T>
CX_ALWAYS_INLINE void tblock_multi_impl(const TI* x, const TI* u, const TI* w, i64 rows, i64 d,
                                        const T* cblock, i64 b, i64 b_pad, T neg_gamma_s, T* xbuf,
                                        T* ktile, T* up, T* acc) {
    constexpr int W = kWidth<T, VB>;
    const Vec<T, VB> neg_gamma = splat<VB>(neg_gamma_s);
    for (i64 i = 0; i < rows * d; ++i) xbuf[i] = static_cast<T>(x[i]);
    // up: rows x b_pad, the weighted right-hand sides of the block (padding columns 0).
    for (i64 r = 0; r < rows; ++r) {
        const T wr = w ? static_cast<T>(w[r]) : T(1);
        for (i64 cc = 0; cc < b; ++cc) up[r * b_pad + cc] = wr * static_cast<T>(u[r * b + cc]);
        for (i64 cc = b; cc < b_pad; ++cc) up[r * b_pad + cc] = T(0);
    }
    for (i64 r = 0; r < rows; ++r)
        for (i64 j = 0; j < kMB; j += kG<VB> * W) {
            Vec<T, VB> e[kG<VB>];
            kernel_group<VB>(xbuf + r * d, d, cblock, j, neg_gamma, e);
            for (int g = 0; g < kG<VB>; ++g) store(ktile + r * kMB + j + g * W, e[g]);
        }
    for (i64 p = 0; p < b_pad; p += W)
        for (i64 c0 = 0; c0 < kMB; c0 += kMR) {
            Vec<T, VB> a[kMR];
            for (int q = 0; q < kMR; ++q) a[q] = load<VB>(acc + (c0 + q) * b_pad + p);
            for (i64 r = 0; r < rows; ++r) {
                const Vec<T, VB> ur = load<VB>(up + r * b_pad + p);
                const T* kr = ktile + r * kMB + c0;
                for (int q = 0; q < kMR; ++q) a[q] += kr[q] * ur;
            }
            for (int q = 0; q < kMR; ++q) store(acc + (c0 + q) * b_pad + p, a[q]);
        }
}

CX_ISA_KERNEL(tblock_b1, tblock_b1_impl)
CX_ISA_KERNEL(tblock_multi, tblock_multi_impl)

template <int VB, typename TI, typename T>
void run_t_vb(const TI* x, const TI* c, const TI* u, const TI* w, TI* out, i64 n, i64 m, i64 d,
              i64 b, double sigma, int num_threads) {
    constexpr int W = kWidth<T, VB>;
    const T neg_gamma = static_cast<T>(kernel_scale(sigma));
    const i64 m_pad = round_up(m, kMB);
    const i64 b_pad = b == 1 ? 1 : round_up(b, W);
    const Buffer<T> ct = pack_centres<TI, T>(c, m, d);
    const i64 seg_len = std::max(kSegMin, (n + kMaxSeg - 1) / kMaxSeg);
    const i64 n_seg = (n + seg_len - 1) / seg_len;
    const i64 n_cblk = m_pad / kMB;
    const i64 slice = m_pad * b_pad;
    Buffer<T> partial(n_seg * slice);  // zero-initialised

    const i64 n_items = n_seg * n_cblk;
    const int nt = resolve_threads(num_threads, n_items);
    const i64 xbuf_sz = round_up(kRB * std::max<i64>(d, 1), 16);
    const i64 wu_sz = b == 1 ? round_up(kRB, 16) : 0;
    const i64 ktile_sz = b == 1 ? 0 : kRB * kMB;
    const i64 up_sz = b == 1 ? 0 : kRB * b_pad;
    const i64 per_thread = xbuf_sz + wu_sz + ktile_sz + up_sz;  // multiples of 16: aligned
    Buffer<T> scratch(per_thread * nt);  // allocated here: nothing may throw inside the region

    const T* ctp = ct.get();
    T* part = partial.get();
    T* scr = scratch.get();
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        T* xbuf = scr + i64(thread_id()) * per_thread;
        T* wu = xbuf + xbuf_sz;
        T* ktile = wu + wu_sz;
        T* up = ktile + ktile_sz;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (i64 it = 0; it < n_items; ++it) {
            const i64 seg = it / n_cblk, cb = it % n_cblk;
            const T* cblock = ctp + cb * kMB * d;
            T* acc = part + seg * slice + cb * kMB * b_pad;
            const i64 r_end = std::min(n, (seg + 1) * seg_len);
            for (i64 r0 = seg * seg_len; r0 < r_end; r0 += kRB) {
                const i64 rows = std::min(kRB, r_end - r0);
                const TI* wr = w ? w + r0 : nullptr;
                if (b == 1)
                    tblock_b1<VB>(x + r0 * d, u + r0, wr, rows, d, cblock, neg_gamma, xbuf, wu,
                                  acc);
                else
                    tblock_multi<VB>(x + r0 * d, u + r0 * b, wr, rows, d, cblock, b, b_pad,
                                     neg_gamma, xbuf, ktile, up, acc);
            }
        }
    }
    for (i64 j = 0; j < m; ++j)
        for (i64 cc = 0; cc < b; ++cc) {
            T s = T(0);
            for (i64 seg = 0; seg < n_seg; ++seg) s += part[seg * slice + j * b_pad + cc];
            out[j * b + cc] = static_cast<TI>(s);
        }
}

template <typename TI, typename T>
void run_t(const TI* x, const TI* c, const TI* u, const TI* w, TI* out, i64 n, i64 m, i64 d,
           i64 b, double sigma, int num_threads) {
    if (n < 0 || m < 0 || d < 0 || b < 0) throw std::invalid_argument("negative size");
    if (!(sigma > 0.0)) throw std::invalid_argument("sigma must be > 0");
    if (m == 0 || b == 0) return;
    if (n == 0) {
        std::fill(out, out + m * b, TI(0));
        return;
    }
    with_vector_bytes(active_isa(), [&](auto vb) {
        run_t_vb<decltype(vb)::value, TI, T>(x, c, u, w, out, n, m, d, b, sigma, num_threads);
    });
}


// ---------------------------------------------------------------------------------------------
// Weighted Gram matrix G = K(X, C)^T diag(w) K(X, C), (m, m), symmetric.
//
// Rows go in blocks of kGR.  For a block, the threads first evaluate its kernel rows (split by
// rows) into two packed tiles shared by all threads: Kp, column panels of kNR centres
// (Kp[panel][r][0..kNR)), and KWp = w o K in row panels of kMR2 centres (KWp[panel][r][...]);
// after a barrier every thread updates its own fixed set of kMR2 x kNR blocks of G on or above
// the diagonal, kMR2 * kNR / W accumulators in registers over the block's rows.  Every entry of
// G is summed over the rows in order by one thread at a time, so the result is bitwise
// independent of the thread count; the lower triangle is mirrored at the end.
// ---------------------------------------------------------------------------------------------
constexpr i64 kGR = 256;  // rows per block
constexpr int kMR2 = 6;   // Gram rows per micro-kernel
constexpr int kNRV = 2;   // Gram columns per micro-kernel, in SIMD vectors

template <int VB, typename T>
CX_ALWAYS_INLINE void gram_micro_impl(const T* kw, const T* kp, i64 rows, T* g, i64 ldg) {
    constexpr int W = kWidth<T, VB>;
    Vec<T, VB> a[kMR2][kNRV];
    for (int q = 0; q < kMR2; ++q)
        for (int v = 0; v < kNRV; ++v) a[q][v] = load<VB>(g + q * ldg + v * W);
    for (i64 r = 0; r < rows; ++r) {
        Vec<T, VB> b[kNRV];
        for (int v = 0; v < kNRV; ++v) b[v] = load<VB>(kp + r * kNRV * W + v * W);
        for (int q = 0; q < kMR2; ++q) {
            const Vec<T, VB> s = splat<VB>(kw[r * kMR2 + q]);
            for (int v = 0; v < kNRV; ++v) a[q][v] += s * b[v];
        }
    }
    for (int q = 0; q < kMR2; ++q)
        for (int v = 0; v < kNRV; ++v) store(g + q * ldg + v * W, a[q][v]);
}

// Kernel rows [r0, r0 + rows) of the block into the packed tiles (rows of the block: rr).
template <int VB, typename TI, typename T>
CX_ALWAYS_INLINE void gram_pack_impl(const TI* x, const TI* w, i64 r0, i64 rr0, i64 rows, i64 d,
                                     const T* ct, i64 m, i64 m_pad, i64 n_nr, T neg_gamma_s,
                                     T* xbuf, T* kp, T* kw) {
    constexpr int W = kWidth<T, VB>;
    constexpr i64 NR = kNRV * W;
    const Vec<T, VB> neg_gamma = splat<VB>(neg_gamma_s);
    for (i64 r = 0; r < rows; ++r) {
        const i64 row = r0 + r, rr = rr0 + r;
        for (i64 k = 0; k < d; ++k) xbuf[k] = static_cast<T>(x[row * d + k]);
        const T wr = w ? static_cast<T>(w[row]) : T(1);
        for (i64 blk = 0; blk < m_pad; blk += kMB) {
            for (i64 j = 0; j < kMB; j += kG<VB> * W) {
                Vec<T, VB> e[kG<VB>];
                kernel_group<VB>(xbuf, d, ct + blk * d, j, neg_gamma, e);
                T vals[kG<VB> * W];
                for (int g = 0; g < kG<VB>; ++g) store(vals + g * W, e[g]);
                for (i64 t = 0; t < kG<VB> * W; ++t) {
                    const i64 col = blk + j + t;
                    const T kv = col < m ? vals[t] : T(0);
                    if (col < n_nr * NR) kp[((col / NR) * kGR + rr) * NR + col % NR] = kv;
                    kw[((col / kMR2) * kGR + rr) * kMR2 + col % kMR2] = wr * kv;
                }
            }
        }
    }
}

CX_ISA_KERNEL(gram_pack, gram_pack_impl)
CX_ISA_KERNEL(gram_micro, gram_micro_impl)

template <int VB, typename TI, typename T>
void run_gram_vb(const TI* x, const TI* c, const TI* w, TI* out, i64 n, i64 m, i64 d,
                 double sigma, int num_threads) {
    constexpr int W = kWidth<T, VB>;
    constexpr i64 NR = kNRV * W;
    const T neg_gamma = static_cast<T>(kernel_scale(sigma));
    const i64 m_pad = round_up(m, kMB);
    const i64 n_nr = (m + NR - 1) / NR;      // column panels of G
    const i64 n_mr = (m + kMR2 - 1) / kMR2;  // row panels of G
    const i64 ldg = n_nr * NR;
    const Buffer<T> ct = pack_centres<TI, T>(c, m, d);
    // Tiles cover every padded centre the kernel groups produce (m_pad >= ldg, n_mr * kMR2).
    const i64 kw_panels = (m_pad + kMR2 - 1) / kMR2;
    Buffer<T> kp(n_nr * kGR * NR), kw(kw_panels * kGR * kMR2);
    Buffer<T> g(round_up(n_mr * kMR2, kMR2) * ldg);  // zero-initialised accumulators
    // Blocks of G on or above the diagonal: (row panel p, column panel q) with q*NR + NR > p*kMR2.
    std::vector<std::pair<i64, i64>> blocks;
    for (i64 p = 0; p < n_mr; ++p)
        for (i64 q = (p * kMR2) / NR; q < n_nr; ++q) blocks.emplace_back(p, q);
    const i64 n_blocks = static_cast<i64>(blocks.size());
    const int nt = resolve_threads(num_threads, n_blocks);
    const i64 xbuf_sz = round_up(std::max<i64>(d, 1), 16);
    Buffer<T> xbufs(xbuf_sz * nt);  // allocated here: nothing may throw inside the region
    const T* ctp = ct.get();
    T* kpp = kp.get();
    T* kwp = kw.get();
    T* gp = g.get();
    const std::pair<i64, i64>* bl = blocks.data();
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        const int t = thread_id(), team = team_size();  // team <= nt
        T* xbuf = xbufs.get() + i64(t) * xbuf_sz;
        for (i64 r0 = 0; r0 < n; r0 += kGR) {
            const i64 rows = std::min(kGR, n - r0);
            // Rows of this block split evenly between the threads.
            const i64 lo = rows * t / team, hi = rows * (t + 1) / team;
            if (hi > lo)
                gram_pack<VB>(x, w, r0 + lo, lo, hi - lo, d, ctp, m, m_pad, n_nr, neg_gamma, xbuf,
                              kpp, kwp);
#ifdef _OPENMP
#pragma omp barrier
#endif
            for (i64 k = t; k < n_blocks; k += team) {
                const i64 p = bl[k].first, q = bl[k].second;
                gram_micro<VB>(kwp + p * kGR * kMR2, kpp + q * kGR * NR, rows,
                               gp + p * kMR2 * ldg + q * NR, ldg);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
    }
    // Upper triangle (a <= b) as computed; the lower one mirrored.
    for (i64 a = 0; a < m; ++a)
        for (i64 b = 0; b < m; ++b)
            out[a * m + b] = static_cast<TI>(a <= b ? gp[a * ldg + b] : gp[b * ldg + a]);
}

template <typename TI, typename T>
void run_gram(const TI* x, const TI* c, const TI* w, TI* out, i64 n, i64 m, i64 d, double sigma,
              int num_threads) {
    if (n < 0 || m < 0 || d < 0) throw std::invalid_argument("negative size");
    if (!(sigma > 0.0)) throw std::invalid_argument("sigma must be > 0");
    if (m == 0) return;
    with_vector_bytes(active_isa(), [&](auto vb) {
        run_gram_vb<decltype(vb)::value, TI, T>(x, c, w, out, n, m, d, sigma, num_threads);
    });
}

}  // namespace

void gaussian_matvec(const double* x, const double* c, const double* v, double* out, i64 n, i64 m,
                     i64 d, i64 b, double sigma, int num_threads) {
    run<double, double>(x, c, v, out, n, m, d, b, sigma, num_threads);
}

void gaussian_matvec(const float* x, const float* c, const float* v, float* out, i64 n, i64 m,
                     i64 d, i64 b, double sigma, bool accumulate_f64, int num_threads) {
    if (accumulate_f64)
        run<float, double>(x, c, v, out, n, m, d, b, sigma, num_threads);
    else
        run<float, float>(x, c, v, out, n, m, d, b, sigma, num_threads);
}

void gaussian_matvec_exp_sum(const double* x, const double* c, const double* v, double* out,
                             i64 n, i64 m, i64 d, i64 b, double sigma, int num_threads) {
    if (n < 0 || m < 0 || d < 0 || b < 0) throw std::invalid_argument("negative size");
    if (!(sigma > 0.0)) throw std::invalid_argument("sigma must be > 0");
    if (b == 0) return;
    if (n == 0 || m == 0) {  // no rows: 0; no centres: f = 0, e^0 = 1 per row
        std::fill(out, out + b, double(n));
        return;
    }
    with_vector_bytes(active_isa(), [&](auto vb) {
        run_vb<decltype(vb)::value, double, double>(x, c, v, nullptr, n, m, d, b, sigma,
                                                    num_threads, out);
    });
}

void gaussian_tile(const double* x, const double* c, double* out, i64 n, i64 m, i64 d,
                   double sigma, int num_threads) {
    run_tile<double, double>(x, c, out, n, m, d, sigma, num_threads);
}

void gaussian_tile(const float* x, const float* c, float* out, i64 n, i64 m, i64 d, double sigma,
                   bool accumulate_f64, int num_threads) {
    if (accumulate_f64)
        run_tile<float, double>(x, c, out, n, m, d, sigma, num_threads);
    else
        run_tile<float, float>(x, c, out, n, m, d, sigma, num_threads);
}

void gaussian_t_matvec(const double* x, const double* c, const double* u, const double* w,
                       double* out, i64 n, i64 m, i64 d, i64 b, double sigma, int num_threads) {
    run_t<double, double>(x, c, u, w, out, n, m, d, b, sigma, num_threads);
}

void gaussian_t_matvec(const float* x, const float* c, const float* u, const float* w, float* out,
                       i64 n, i64 m, i64 d, i64 b, double sigma, bool accumulate_f64,
                       int num_threads) {
    if (accumulate_f64)
        run_t<float, double>(x, c, u, w, out, n, m, d, b, sigma, num_threads);
    else
        run_t<float, float>(x, c, u, w, out, n, m, d, b, sigma, num_threads);
}

void gaussian_weighted_gram(const double* x, const double* c, const double* w, double* out,
                            i64 n, i64 m, i64 d, double sigma, int num_threads) {
    run_gram<double, double>(x, c, w, out, n, m, d, sigma, num_threads);
}

void gaussian_weighted_gram(const float* x, const float* c, const float* w, float* out, i64 n,
                            i64 m, i64 d, double sigma, bool accumulate_f64, int num_threads) {
    if (accumulate_f64)
        run_gram<float, double>(x, c, w, out, n, m, d, sigma, num_threads);
    else
        run_gram<float, float>(x, c, w, out, n, m, d, sigma, num_threads);
}

bool openmp_enabled() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

int openmp_max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

}  // namespace contrastx::cpu
