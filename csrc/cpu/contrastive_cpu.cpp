// Streaming contrastive losses on the CPU (SupCon / NT-Xent) and a fused VICReg.
//
// SupCon / NT-Xent.  Rows z_i (M x D) are normalised once and packed twice: row-major with the
// feature dimension padded to the SIMD width W of the level in use (zp, M_pad x dp: rows
// broadcast into the similarity micro-kernel and columns of the gradient product), and
// transposed per block of kCB candidate columns (zt[blk][k][jj], so a vector of consecutive
// candidates needs one contiguous load).  Anchor rows are split into blocks of kRB rows, the
// OpenMP work items (dynamic schedule; each row is computed by one thread in a fixed order, so
// results do not depend on the thread count).  For each block of rows the candidate blocks are
// visited in order and a kRB x kCB tile of S = Z Z^T / tau is computed in a register-blocked
// micro-kernel into thread-local scratch; the self-similarity and the padding columns are set
// to -inf.
//   * forward: an online log-sum-exp per row (tile max, rescale of the running sum, vectorised
//     exp_nonpos) and the sum of the positives' similarities (label compare in SIMD lanes);
//     writes lse (M) and the per-row loss (M).
//   * backward: recomputes the same tiles, turns each into the symmetric gradient tile
//     h_ik = w_i e^{s_ik - L_i} + w_k e^{s_ik - L_k} - (c_i + c_k)[y_k = y_i] (row and column
//     contributions of dL/ds; s is symmetric so no transposed pass or scatter is needed), and
//     accumulates H_tile @ Z_block into a kRB x dp accumulator; then applies the gradient of
//     the normalisation row by row.
// Scratch is O(M D + threads * kRB * (kCB + dp)); the M x M matrix never exists.
//
// VICReg.  Each view is transposed and centred in float64 (D x N); the upper triangle of the
// covariance comes in 4 x 4 blocks of dot products (16 accumulators per micro-kernel, blocks in
// parallel); the forward pass hands the views' means and G = dL/dC (symmetric) to the backward
// pass, which forms the gradient 2/(N-1) Zc G row by row with kGV vectors of output features in
// registers.
//
// Hot functions are templates on the vector width, compiled per instruction-set level
// (AVX-512 / AVX2 / baseline) with CX_ISA_KERNEL; each driver reads the active level once and
// uses its width for the kernels and for the width-dependent layouts (isa.hpp).  Results are
// bitwise reproducible for a given level; levels differ in the last bits.
#include "contrastive_cpu.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
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
using detail::thread_id;

constexpr i64 kRB = 32;   // anchor rows per work item
constexpr i64 kCB = 128;  // candidate columns per tile
constexpr int kMR = 4;    // rows of the similarity micro-kernel
constexpr int kG = 2;     // SIMD vectors of candidates in the similarity micro-kernel
constexpr int kMR2 = 8;   // rows of the gradient micro-kernel
constexpr int kE = 4;     // SIMD vectors per exp_nonpos call

// The widest vectors (64 bytes); narrower widths divide them.
static_assert(kCB % (kG * kWidth<float, 64>) == 0 && kCB % (kG * kWidth<double, 64>) == 0, "kCB");
static_assert(kCB % (kE * kWidth<float, 64>) == 0 && kCB % (kE * kWidth<double, 64>) == 0, "kCB");
static_assert(kRB % kMR2 == 0 && kMR2 % kMR == 0, "kRB");

// Labels are compared in integer lanes of the same width as T.  A 64-bit lane holds the label in
// both 32-bit halves (lab_value), so that 32-bit compares give the same lane mask: baseline x86
// (SSE2) has no 64-bit integer compare, which GCC would otherwise expand lane by lane.
template <typename T>
struct LabelLane;
template <>
struct LabelLane<double> {
    using type = std::uint64_t;
};
template <>
struct LabelLane<float> {
    using type = std::uint32_t;
};
template <typename T>
using Lab = typename LabelLane<T>::type;

template <typename T>
Lab<T> lab_value(i64 label) {  // label in [0, 2^31)
    const Lab<T> l = static_cast<Lab<T>>(label);
    if constexpr (sizeof(Lab<T>) == 8) return l | (l << 32);
    else return l;
}
template <typename T>
constexpr Lab<T> kLabSentinel = ~Lab<T>(0);  // no row's label

template <typename T, int VB>
using Mask = decltype(Vec<T, VB>{} < Vec<T, VB>{});

// Lanes of p[0 : W] equal to yi (yi: one stored label in every lane).
template <int VB, typename T>
CX_ALWAYS_INLINE Mask<T, VB> label_eq(const Lab<T>* p, UVec<T, VB> yi) {
    const UVec<T, VB> l = load_vec<UVec<T, VB>>(p);
    if constexpr (sizeof(T) == 8 && VB == 16) {
        using U32 = UVec<float, VB>;
        return (Mask<T, VB>)((U32)l == (U32)yi);
    } else {
        return (Mask<T, VB>)(l == yi);
    }
}

template <typename V>
CX_ALWAYS_INLINE VecElem<V> hmax(V v) {
    using T = VecElem<V>;
    T buf[kLanes<V>];
    store(buf, v);
    T r = buf[0];
    for (int i = 1; i < kLanes<V>; ++i) r = buf[i] > r ? buf[i] : r;
    return r;
}

// ---------------------------------------------------------------------------------------------
// SupCon / NT-Xent
// ---------------------------------------------------------------------------------------------

// Read-only data shared by all threads.
template <typename T>
struct Packed {
    i64 m, d, dp, m_pad;  // dp: d rounded up to the SIMD width of the kernels that read it
    const T* zp;        // m_pad x dp
    const T* zt;        // (m_pad / kCB) x d x kCB
    const Lab<T>* lab;  // m_pad (padding: a sentinel no row has)
    const T* colw;      // m_pad, w (padding 0)
    const T* colc;      // m_pad, c (padding 0)
    const T* coll;      // m_pad, lse (padding +inf); backward only
    T inv_tau;
};

// S (rows_mr x kCB, ld kCB) = inv_tau * Z[rows] (rows_mr x dp) @ Z[block]^T (zt: d x kCB).
template <int VB, typename T>
CX_ALWAYS_INLINE void sim_tile(const T* zrows, i64 dp, i64 d, i64 rows_mr, const T* zt, T inv_tau,
                               T* S) {
    constexpr int W = kWidth<T, VB>;
    for (i64 r0 = 0; r0 < rows_mr; r0 += kMR) {
        const T* a = zrows + r0 * dp;
        for (i64 j0 = 0; j0 < kCB; j0 += kG * W) {
            Vec<T, VB> acc[kMR][kG] = {};
            for (i64 k = 0; k < d; ++k) {
                Vec<T, VB> b[kG];
                for (int g = 0; g < kG; ++g) b[g] = load<VB>(zt + k * kCB + j0 + g * W);
                for (int r = 0; r < kMR; ++r) {
                    const T ar = a[r * dp + k];
                    for (int g = 0; g < kG; ++g) acc[r][g] += ar * b[g];
                }
            }
            for (int r = 0; r < kMR; ++r)
                for (int g = 0; g < kG; ++g)
                    store(S + (r0 + r) * kCB + j0 + g * W, acc[r][g] * inv_tau);
        }
    }
}

// Mask the self-similarity and the padding columns of row i (global) in tile row s.
template <typename T>
CX_ALWAYS_INLINE void mask_row(T* s, i64 i, i64 c0, i64 m) {
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    if (i >= c0 && i < c0 + kCB) s[i - c0] = ninf;
    for (i64 jj = std::max<i64>(m - c0, 0); jj < kCB; ++jj) s[jj] = ninf;
}

// Forward over one block of anchor rows [r0, r0 + rows).
template <int VB, typename T>
CX_ALWAYS_INLINE void forward_block_impl(const Packed<T>& P, i64 r0, i64 rows, T* S, T* lse,
                                         T* row_loss) {
    using V = Vec<T, VB>;
    using U = UVec<T, VB>;
    constexpr int W = kWidth<T, VB>;
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    const i64 rows_mr = round_up(rows, kMR2);
    T mx[kRB], sum[kRB], pos[kRB];
    for (i64 r = 0; r < kRB; ++r) mx[r] = ninf, sum[r] = T(0), pos[r] = T(0);
    const V vninf = splat<VB>(ninf);
    for (i64 c0 = 0; c0 < P.m_pad; c0 += kCB) {
        sim_tile<VB>(P.zp + r0 * P.dp, P.dp, P.d, rows_mr, P.zt + c0 * P.d, P.inv_tau, S);
        for (i64 r = 0; r < rows; ++r) {
            const i64 i = r0 + r;
            if (P.colw[i] == T(0)) continue;  // no positive: its loss term is not needed
            T* s = S + r * kCB;
            mask_row(s, i, c0, P.m);
            V vm = vninf;
            for (i64 j = 0; j < kCB; j += W) {
                const V v = load<VB>(s + j);
                vm = v > vm ? v : vm;
            }
            const T tmax = hmax(vm);
            if (tmax == ninf) continue;  // nothing valid in this tile
            const T mnew = std::max(mx[r], tmax);
            const T scale = std::exp(mx[r] - mnew);  // 0 on the first valid tile
            const V vmn = splat<VB>(mnew);
            const U yi = U{} + P.lab[i];
            V vs = V{}, vp = V{};
            for (i64 j0 = 0; j0 < kCB; j0 += kE * W) {
                V e[kE], sv[kE];
                for (int g = 0; g < kE; ++g) {
                    sv[g] = load<VB>(s + j0 + g * W);
                    e[g] = sv[g] - vmn;
                }
                exp_nonpos<kE>(e);
                // Bit masks rather than selects: GCC 12 expands a select on the combination of a
                // floating-point and an integer compare lane by lane with AVX-512, and a select
                // on a 64-bit lane mask lane by lane on the baseline.
                for (int g = 0; g < kE; ++g) {
                    const U valid = (U)(sv[g] != vninf);
                    const U same = (U)label_eq<VB, T>(P.lab + c0 + j0 + g * W, yi);
                    vs += (V)((U)e[g] & valid);
                    vp += (V)((U)sv[g] & (valid & same));
                }
            }
            sum[r] = sum[r] * scale + hsum(vs);
            pos[r] += hsum(vp);
            mx[r] = mnew;
        }
    }
    for (i64 r = 0; r < rows; ++r) {
        const i64 i = r0 + r;
        if (P.colw[i] == T(0)) {
            lse[i] = std::numeric_limits<T>::infinity();
            row_loss[i] = T(0);
        } else {
            const T l = mx[r] + std::log(sum[r]);
            lse[i] = l;
            row_loss[i] = P.colw[i] * l - P.colc[i] * pos[r];
        }
    }
}

// Backward over one block of anchor rows.  acc: kRB x dp scratch.
template <int VB, typename T>
CX_ALWAYS_INLINE void backward_block_impl(const Packed<T>& P, i64 r0, i64 rows, T* S, T* acc,
                                          const unsigned char* proj, const double* inv,
                                          double gscale, T* grad) {
    using V = Vec<T, VB>;
    using U = UVec<T, VB>;
    constexpr int W = kWidth<T, VB>;
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    const i64 rows_mr = round_up(rows, kMR2);
    const i64 dp = P.dp;
    const V vninf = splat<VB>(ninf);
    for (i64 e = 0; e < kRB * dp; ++e) acc[e] = T(0);
    for (i64 c0 = 0; c0 < P.m_pad; c0 += kCB) {
        sim_tile<VB>(P.zp + r0 * dp, dp, P.d, rows_mr, P.zt + c0 * P.d, P.inv_tau, S);
        for (i64 r = 0; r < rows; ++r) {
            const i64 i = r0 + r;
            T* s = S + r * kCB;
            mask_row(s, i, c0, P.m);
            const V li = splat<VB>(P.coll[i]);
            const T wi = P.colw[i], ci = P.colc[i];
            const U yi = U{} + P.lab[i];
            for (i64 j0 = 0; j0 < kCB; j0 += kE * W) {
                V e[2 * kE], sv[kE];
                for (int g = 0; g < kE; ++g) {
                    sv[g] = load<VB>(s + j0 + g * W);
                    e[g] = sv[g] - li;  // row term: softmax of anchor i
                    e[kE + g] = sv[g] - load<VB>(P.coll + c0 + j0 + g * W);  // column term
                }
                exp_nonpos<2 * kE>(e);
                for (int g = 0; g < kE; ++g) {  // bit masks, as in the forward
                    const i64 j = c0 + j0 + g * W;
                    const U valid = (U)(sv[g] != vninf);
                    const U same = (U)label_eq<VB, T>(P.lab + j, yi);
                    const V cpos = ci + load<VB>(P.colc + j);
                    V h = wi * e[g] + load<VB>(P.colw + j) * e[kE + g];
                    h -= (V)((U)cpos & same);
                    store(s + j0 + g * W, (V)((U)h & valid));
                }
            }
        }
        // acc (rows_mr x dp) += H (rows_mr x kCB) @ Z[c0 : c0 + kCB] (kCB x dp).
        const T* zb = P.zp + c0 * dp;
        for (i64 q0 = 0; q0 < rows_mr; q0 += kMR2) {
            for (i64 d0 = 0; d0 < dp; d0 += W) {
                V a[kMR2];
                for (int r = 0; r < kMR2; ++r) a[r] = load<VB>(acc + (q0 + r) * dp + d0);
                for (i64 j = 0; j < kCB; ++j) {
                    const V b = load<VB>(zb + j * dp + d0);
                    for (int r = 0; r < kMR2; ++r) a[r] += S[(q0 + r) * kCB + j] * b;
                }
                for (int r = 0; r < kMR2; ++r) store(acc + (q0 + r) * dp + d0, a[r]);
            }
        }
    }
    // dL/dz_i = acc_i / tau; then through z_i = x_i / max(|x_i|, eps).
    const double f = gscale * static_cast<double>(P.inv_tau);
    for (i64 r = 0; r < rows; ++r) {
        const i64 i = r0 + r;
        const T* g = acc + r * dp;
        const T* z = P.zp + i * dp;
        T* out = grad + i * P.d;
        double dot = 0.0;
        if (proj[i])
            for (i64 k = 0; k < P.d; ++k) dot += double(z[k]) * (f * double(g[k]));
        for (i64 k = 0; k < P.d; ++k)
            out[k] = static_cast<T>((f * double(g[k]) - double(z[k]) * dot) * inv[i]);
    }
}

CX_ISA_KERNEL(forward_block, forward_block_impl)
CX_ISA_KERNEL(backward_block, backward_block_impl)

void check_supcon_args(i64 m, i64 d, double tau, double eps) {
    if (m < 0 || d < 0) throw std::invalid_argument("negative size");
    if (!(tau > 0.0) || !std::isfinite(tau)) throw std::invalid_argument("tau must be > 0");
    if (!(eps > 0.0) || !std::isfinite(eps)) throw std::invalid_argument("eps must be > 0");
    if (m >= (i64(1) << 31)) throw std::invalid_argument("too many rows");
}

// Owns the packed copies of Z and the per-column data; the feature dimension is padded to a
// multiple of `width` elements (the SIMD width of the kernels that will read it).
template <typename T>
struct Workspace {
    Buffer<T> zp, zt, colw, colc, coll;
    Buffer<Lab<T>> lab;
    std::vector<double> inv;
    std::vector<unsigned char> proj;
    Packed<T> P{};

    Workspace(const T* x, const i64* labels, const T* w, const T* c, const T* lse, i64 m, i64 d,
              double tau, bool normalize, double eps, i64 width)
        : zp(round_up(m, kCB) * round_up(d, width)),
          zt(round_up(m, kCB) * d),
          colw(round_up(m, kCB)),
          colc(round_up(m, kCB)),
          coll(lse ? round_up(m, kCB) : 1),
          lab(round_up(m, kCB)),
          inv(static_cast<std::size_t>(m), 1.0),
          proj(static_cast<std::size_t>(m), 0) {
        const i64 dp = round_up(d, width), m_pad = round_up(m, kCB);
        for (i64 i = 0; i < m; ++i) {
            if (labels[i] < 0 || labels[i] >= m)
                throw std::invalid_argument("labels must be class ids in [0, M)");
            const T* xi = x + i * d;
            if (normalize) {
                double nn = 0.0;
                for (i64 k = 0; k < d; ++k) nn += double(xi[k]) * double(xi[k]);
                nn = std::sqrt(nn);
                proj[i] = nn >= eps;
                inv[i] = 1.0 / std::max(nn, eps);
            }
            T* zi = zp.get() + i * dp;
            T* ti = zt.get() + (i / kCB) * kCB * d + (i % kCB);
            for (i64 k = 0; k < d; ++k) {
                const T zk = normalize ? static_cast<T>(double(xi[k]) * inv[i]) : xi[k];
                zi[k] = zk;
                ti[k * kCB] = zk;
            }
            lab.get()[i] = lab_value<T>(labels[i]);
            colw.get()[i] = w[i];
            colc.get()[i] = c[i];
            if (lse) coll.get()[i] = lse[i];
        }
        for (i64 i = m; i < m_pad; ++i) {
            lab.get()[i] = kLabSentinel<T>;
            if (lse) coll.get()[i] = std::numeric_limits<T>::infinity();
        }
        P.m = m, P.d = d, P.dp = dp, P.m_pad = m_pad;
        P.zp = zp.get(), P.zt = zt.get(), P.lab = lab.get();
        P.colw = colw.get(), P.colc = colc.get(), P.coll = coll.get();
        P.inv_tau = static_cast<T>(1.0 / tau);
    }
};

template <int VB, typename T>
void supcon_forward_vb(const T* x, const i64* labels, const T* w, const T* c, T* lse, T* row_loss,
                       i64 m, i64 d, double tau, bool normalize, double eps, int num_threads) {
    Workspace<T> ws(x, labels, w, c, nullptr, m, d, tau, normalize, eps, kWidth<T, VB>);
    const i64 nblocks = (m + kRB - 1) / kRB;
    const int nt = resolve_threads(num_threads, nblocks);
    Buffer<T> scratch(i64(nt) * kRB * kCB);
    const Packed<T>& P = ws.P;
    T* scr = scratch.get();
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        T* S = scr + i64(thread_id()) * kRB * kCB;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (i64 ib = 0; ib < nblocks; ++ib) {
            const i64 r0 = ib * kRB;
            forward_block<VB>(P, r0, std::min(kRB, m - r0), S, lse, row_loss);
        }
    }
}

template <typename T>
void supcon_forward_run(const T* x, const i64* labels, const T* w, const T* c, T* lse,
                        T* row_loss, i64 m, i64 d, double tau, bool normalize, double eps,
                        int num_threads) {
    check_supcon_args(m, d, tau, eps);
    if (m == 0) return;
    const Isa isa = active_isa();
    with_vector_bytes(isa, [&](auto vb) {
        supcon_forward_vb<decltype(vb)::value>(x, labels, w, c, lse, row_loss, m, d, tau,
                                               normalize, eps, num_threads);
    });
}

template <int VB, typename T>
void supcon_backward_vb(const T* x, const i64* labels, const T* w, const T* c, const T* lse,
                        T* grad_x, i64 m, i64 d, double tau, bool normalize, double eps,
                        double grad_scale, int num_threads) {
    Workspace<T> ws(x, labels, w, c, lse, m, d, tau, normalize, eps, kWidth<T, VB>);
    const i64 nblocks = (m + kRB - 1) / kRB;
    const int nt = resolve_threads(num_threads, nblocks);
    const i64 per_thread = kRB * kCB + kRB * ws.P.dp;  // multiple of 16 elements: aligned
    Buffer<T> scratch(i64(nt) * per_thread);
    const Packed<T>& P = ws.P;
    T* scr = scratch.get();
    const unsigned char* proj = ws.proj.data();
    const double* inv = ws.inv.data();
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        T* S = scr + i64(thread_id()) * per_thread;
        T* acc = S + kRB * kCB;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (i64 ib = 0; ib < nblocks; ++ib) {
            const i64 r0 = ib * kRB;
            backward_block<VB>(P, r0, std::min(kRB, m - r0), S, acc, proj, inv, grad_scale,
                               grad_x);
        }
    }
}

template <typename T>
void supcon_backward_run(const T* x, const i64* labels, const T* w, const T* c, const T* lse,
                         T* grad_x, i64 m, i64 d, double tau, bool normalize, double eps,
                         double grad_scale, int num_threads) {
    check_supcon_args(m, d, tau, eps);
    if (m == 0 || d == 0) return;
    const Isa isa = active_isa();
    with_vector_bytes(isa, [&](auto vb) {
        supcon_backward_vb<decltype(vb)::value>(x, labels, w, c, lse, grad_x, m, d, tau,
                                                normalize, eps, grad_scale, num_threads);
    });
}

// ---------------------------------------------------------------------------------------------
// VICReg (float64 internally)
// ---------------------------------------------------------------------------------------------

constexpr int kCB4 = 4;  // covariance: 4 x 4 blocks of feature pairs per micro-kernel
constexpr i64 kGB = 64;  // gradient: columns of G padded to a multiple of kGB (any level)
constexpr int kGV = 8;   // gradient: SIMD vectors of output features per register block

// A register block of the gradient (kGV vectors) is at most kGB features and divides kGB, so
// the level-independent padding of G (part of the forward-backward state) suits every level.
static_assert(kGB % (kGV * kWidth<double, 64>) == 0, "kGB");

// Centred, transposed copy of one view: zt (d4 x n_pad, float64, zero padding), mean (d).
template <typename TI>
void centre_transpose(const TI* z, i64 n, i64 d, i64 n_pad, int nt, double* zt, double* mean) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
    for (i64 a = 0; a < d; ++a) {
        double* row = zt + a * n_pad;
        double sum = 0.0;
        for (i64 i = 0; i < n; ++i) sum += (row[i] = static_cast<double>(z[i * d + a]));
        const double mu = sum / double(n);
        mean[a] = mu;
        for (i64 i = 0; i < n; ++i) row[i] -= mu;
    }
}

// cov[a][b] for a in [a0, a0+4), b in [b0, b0+4): 16 dot products of zt rows, W lanes each
// (n_pad: a multiple of W).
template <int VB>
CX_ALWAYS_INLINE void cov_block_impl(const double* zt, i64 n_pad, i64 a0, i64 b0, double f,
                                     double* out16) {
    using V = Vec<double, VB>;
    constexpr int W = kWidth<double, VB>;
    V acc[kCB4][kCB4] = {};
    const double* ra[kCB4];
    const double* rb[kCB4];
    for (int q = 0; q < kCB4; ++q) {
        ra[q] = zt + (a0 + q) * n_pad;
        rb[q] = zt + (b0 + q) * n_pad;
    }
    for (i64 i = 0; i < n_pad; i += W) {
        V va[kCB4], vb[kCB4];
        for (int q = 0; q < kCB4; ++q) {
            va[q] = load<VB>(ra[q] + i);
            vb[q] = load<VB>(rb[q] + i);
        }
        for (int qa = 0; qa < kCB4; ++qa)
            for (int qb = 0; qb < kCB4; ++qb) acc[qa][qb] += va[qa] * vb[qb];
    }
    for (int qa = 0; qa < kCB4; ++qa)
        for (int qb = 0; qb < kCB4; ++qb) out16[qa * kCB4 + qb] = hsum(acc[qa][qb]) * f;
}

CX_ISA_KERNEL(cov_block, cov_block_impl)

// Covariance (d x d, row-major) of a centred transposed view, upper 4 x 4 blocks in parallel
// (n_pad: a multiple of kWidth<double, VB>).
template <int VB>
void view_covariance(const double* zt, i64 n, i64 n_pad, i64 d, int nt, double* cov) {
    const i64 nb = (d + kCB4 - 1) / kCB4;
    const i64 pairs = nb * (nb + 1) / 2;
    const double f = 1.0 / double(n - 1);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
#endif
    for (i64 k = 0; k < pairs; ++k) {
        i64 ab = 0, rest = k;  // k -> (ab, bb) with bb >= ab
        while (rest >= nb - ab) rest -= nb - ab++;
        const i64 bb = ab + rest;
        double blk[kCB4 * kCB4];
        cov_block<VB>(zt, n_pad, ab * kCB4, bb * kCB4, f, blk);
        for (int qa = 0; qa < kCB4; ++qa)
            for (int qb = 0; qb < kCB4; ++qb) {
                const i64 a = ab * kCB4 + qa, b = bb * kCB4 + qb;
                if (a < d && b < d) cov[a * d + b] = cov[b * d + a] = blk[qa * kCB4 + qb];
            }
    }
}

// g_i = fc * ((z_i - mean) @ G) + sgn * fi * (z1_i - z2_i) for rows [r0, r1) of one view;
// G is d x gp (gp = d rounded up to kGB, zero padding), kept in registers kGV vectors (kGV W
// columns) at a time.
template <int VB, typename TI>
CX_ALWAYS_INLINE void grad_rows_impl(const TI* z, const TI* z1, const TI* z2, const double* mean,
                                     const double* G, i64 d, i64 gp, i64 r0, i64 r1, double fc,
                                     double sfi, double* zc, TI* g) {
    using V = Vec<double, VB>;
    constexpr int W = kWidth<double, VB>;
    constexpr i64 NB = i64(kGV) * W;  // columns per register block; divides gp
    for (i64 i = r0; i < r1; ++i) {
        for (i64 a = 0; a < d; ++a) zc[a] = static_cast<double>(z[i * d + a]) - mean[a];
        for (i64 b0 = 0; b0 < d; b0 += NB) {  // blocks past d are padding only
            V acc[kGV] = {};
            for (i64 a = 0; a < d; ++a) {
                const V s = splat<VB>(zc[a]);
                const double* ga = G + a * gp + b0;
                for (int k = 0; k < kGV; ++k) acc[k] += s * load<VB>(ga + k * W);
            }
            double row[NB];
            for (int k = 0; k < kGV; ++k) store(row + k * W, acc[k]);
            const i64 bend = b0 + NB < d ? b0 + NB : d;
            for (i64 b = b0; b < bend; ++b) {
                const double diff = double(z1[i * d + b]) - double(z2[i * d + b]);
                g[i * d + b] = static_cast<TI>(fc * row[b - b0] + sfi * diff);
            }
        }
    }
}

CX_ISA_KERNEL(grad_rows, grad_rows_impl)

struct VicregParams {
    double lam, mu, nu, gamma, eps;
};

void check_vicreg_args(i64 n, i64 d, double eps) {
    if (n < 2) throw std::invalid_argument("VICReg needs at least 2 rows");
    if (d < 1) throw std::invalid_argument("VICReg needs at least 1 feature");
    if (!(eps > 0.0)) throw std::invalid_argument("eps must be > 0");
}

// O(N D^2) work: below ~2^20 multiply-adds per thread, fewer threads are faster than paying
// for OpenMP barriers.
int vicreg_threads(int requested, i64 n, i64 d) {
    constexpr i64 kMinWorkPerThread = i64(1) << 20;
    return resolve_threads(requested, std::max<i64>(1, n * d * d / kMinWorkPerThread));
}

i64 vicreg_grad_pad(i64 d) { return round_up(d, kGB); }

template <int VB, typename TI>
void vicreg_forward_vb(const TI* z1, const TI* z2, TI* out, double* state, i64 n, i64 d,
                       const VicregParams& p, int num_threads) {
    const int nt = vicreg_threads(num_threads, n, d);
    const i64 n_pad = round_up(n, kWidth<double, VB>), d4 = round_up(d, kCB4);
    const i64 gp = vicreg_grad_pad(d);
    Buffer<double> zt(d4 * n_pad);  // zero padding rows / columns
    std::vector<double> cov(d * d);
    double var = 0.0, covt = 0.0;
    for (int v = 0; v < 2; ++v) {
        double* mean = state + v * d;
        double* G = state + 2 * d + v * d * gp;  // dL/dC of this view, d x gp
        centre_transpose(v == 0 ? z1 : z2, n, d, n_pad, nt, zt.get(), mean);
        view_covariance<VB>(zt.get(), n, n_pad, d, nt, cov.data());
        double vs = 0.0, cs = 0.0;
        for (i64 a = 0; a < d; ++a) {
            const double sd = std::sqrt(cov[a * d + a] + p.eps);
            vs += std::max(0.0, p.gamma - sd);
            for (i64 b = 0; b < gp; ++b) {
                double gab = 0.0;
                if (b < d && b != a) {
                    cs += cov[a * d + b] * cov[a * d + b];
                    gab = 2.0 * p.nu * cov[a * d + b] / double(d);
                } else if (b == a) {
                    gab = p.gamma - sd > 0.0 ? -p.mu / (2.0 * double(d) * sd) : 0.0;
                }
                G[a * gp + b] = gab;
            }
        }
        var += vs / double(d);
        covt += cs / double(d);
    }
    double inv = 0.0;
    for (i64 e = 0; e < n * d; ++e) {
        const double df = double(z1[e]) - double(z2[e]);
        inv += df * df;
    }
    inv /= double(n * d);
    out[0] = static_cast<TI>(p.lam * inv + p.mu * var + p.nu * covt);
    out[1] = static_cast<TI>(inv);
    out[2] = static_cast<TI>(var);
    out[3] = static_cast<TI>(covt);
}

template <typename TI>
void vicreg_forward_run(const TI* z1, const TI* z2, TI* out, double* state, i64 n, i64 d,
                        const VicregParams& p, int num_threads) {
    check_vicreg_args(n, d, p.eps);
    const Isa isa = active_isa();
    with_vector_bytes(isa, [&](auto vb) {
        vicreg_forward_vb<decltype(vb)::value>(z1, z2, out, state, n, d, p, num_threads);
    });
}

// The state's layout (gp) does not depend on the level: forward and backward may run at
// different levels.
template <int VB, typename TI>
void vicreg_backward_vb(const TI* z1, const TI* z2, const double* state, TI* g1, TI* g2, i64 n,
                        i64 d, double lam, double grad_scale, int num_threads) {
    const int nt = vicreg_threads(num_threads, n, d);
    const i64 gp = vicreg_grad_pad(d);
    const double fc = grad_scale * 2.0 / double(n - 1);
    const double fi = grad_scale * 2.0 * lam / double(n * d);
    Buffer<double> zc(i64(nt) * round_up(d, 8));  // nothing throws inside the region
    double* zcp = zc.get();
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        double* zrow = zcp + i64(thread_id()) * round_up(d, 8);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (i64 blk = 0; blk < (n + 63) / 64; ++blk) {
            const i64 r0 = blk * 64, r1 = std::min(n, r0 + 64);
            for (int v = 0; v < 2; ++v)
                grad_rows<VB>(v == 0 ? z1 : z2, z1, z2, state + v * d, state + 2 * d + v * d * gp,
                              d, gp, r0, r1, fc, v == 0 ? fi : -fi, zrow, v == 0 ? g1 : g2);
        }
    }
}

template <typename TI>
void vicreg_backward_run(const TI* z1, const TI* z2, const double* state, TI* g1, TI* g2, i64 n,
                         i64 d, double lam, double grad_scale, int num_threads) {
    check_vicreg_args(n, d, 1.0);
    const Isa isa = active_isa();
    with_vector_bytes(isa, [&](auto vb) {
        vicreg_backward_vb<decltype(vb)::value>(z1, z2, state, g1, g2, n, d, lam, grad_scale,
                                                num_threads);
    });
}

}  // namespace

void supcon_forward(const double* x, const i64* labels, const double* w, const double* c,
                    double* lse, double* row_loss, i64 m, i64 d, double tau, bool normalize,
                    double eps, int num_threads) {
    supcon_forward_run<double>(x, labels, w, c, lse, row_loss, m, d, tau, normalize, eps,
                               num_threads);
}
void supcon_forward(const float* x, const i64* labels, const float* w, const float* c, float* lse,
                    float* row_loss, i64 m, i64 d, double tau, bool normalize, double eps,
                    int num_threads) {
    supcon_forward_run<float>(x, labels, w, c, lse, row_loss, m, d, tau, normalize, eps,
                              num_threads);
}
void supcon_backward(const double* x, const i64* labels, const double* w, const double* c,
                     const double* lse, double* grad_x, i64 m, i64 d, double tau, bool normalize,
                     double eps, double grad_scale, int num_threads) {
    supcon_backward_run<double>(x, labels, w, c, lse, grad_x, m, d, tau, normalize, eps,
                                grad_scale, num_threads);
}
void supcon_backward(const float* x, const i64* labels, const float* w, const float* c,
                     const float* lse, float* grad_x, i64 m, i64 d, double tau, bool normalize,
                     double eps, double grad_scale, int num_threads) {
    supcon_backward_run<float>(x, labels, w, c, lse, grad_x, m, d, tau, normalize, eps,
                               grad_scale, num_threads);
}

i64 vicreg_state_size(i64 d) { return 2 * d + 2 * d * vicreg_grad_pad(d); }

void vicreg_forward(const double* z1, const double* z2, double* out, double* state, i64 n, i64 d,
                    double lam, double mu, double nu, double gamma, double eps, int num_threads) {
    vicreg_forward_run<double>(z1, z2, out, state, n, d, {lam, mu, nu, gamma, eps}, num_threads);
}
void vicreg_forward(const float* z1, const float* z2, float* out, double* state, i64 n, i64 d,
                    double lam, double mu, double nu, double gamma, double eps, int num_threads) {
    vicreg_forward_run<float>(z1, z2, out, state, n, d, {lam, mu, nu, gamma, eps}, num_threads);
}
void vicreg_backward(const double* z1, const double* z2, const double* state, double* g1,
                     double* g2, i64 n, i64 d, double lam, double grad_scale, int num_threads) {
    vicreg_backward_run<double>(z1, z2, state, g1, g2, n, d, lam, grad_scale, num_threads);
}
void vicreg_backward(const float* z1, const float* z2, const double* state, float* g1, float* g2,
                     i64 n, i64 d, double lam, double grad_scale, int num_threads) {
    vicreg_backward_run<float>(z1, z2, state, g1, g2, n, d, lam, grad_scale, num_threads);
}

}  // namespace contrastx::cpu
