// Gram products of row selections of one stored matrix (see selected_gram_cpu.hpp).
//
// Work layout.  The right-hand sides are split between the threads in contiguous ranges of
// about equal selected-row counts; every thread walks the rows of z in chunks of kChunk rows
// and, for each of its right-hand sides j, takes the rows of S_j inside the chunk (a cursor
// into the sorted row list advances chunk by chunk):
//   1. y_k = z_k . v_j for those rows, four rows at a time against one vector of v_j;
//   2. out_j += sum_k y_k z_k, kU vectors of out_j held in registers over the rows.
// A chunk's rows are read from memory once and then reused from cache by every right-hand
// side that selects them (each row is selected by a fraction f of them), so the cost is the
// 4 m |S_j| flops of the selected rows, against 4 m n for the dense masked product Z^T (W o
// (Z V)).  Sums run in float64 in a fixed order (row order for out_j; a fixed lane split and
// hsum for the dot products), independent of the thread count and of the other columns.
#include "selected_gram_cpu.hpp"

#include <algorithm>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "aligned_buffer.hpp"
#include "isa.hpp"
#include "parallel.hpp"
#include "simd.hpp"

namespace contrastx::cpu {
namespace {

using i64 = std::int64_t;
using i32 = std::int32_t;
using detail::Buffer;
using detail::resolve_threads;
using detail::team_size;
using detail::thread_id;

constexpr i64 kChunk = 128;  // rows of z per chunk (~kChunk * f rows per right-hand side)
constexpr int kR = 8;        // rows per dot-product group in step 1
constexpr int kU = 8;        // vectors of out_j accumulated together in step 2

// W consecutive entries of a row as float64 (W = doubles per vector).
template <int VB>
CX_ALWAYS_INLINE Vec<double, VB> loadz(const double* p) {
    return load<VB>(p);
}
template <int VB>
CX_ALWAYS_INLINE Vec<double, VB> loadz(const float* p) {
    return __builtin_convertvector(load_vec<Vec<float, VB / 2>>(p), Vec<double, VB>);
}
// int16 rows (scaled per row by the caller): as many int16 lanes as doubles per vector.
// Converted in two steps (sign extension to int32, then int32 to double: one instruction
// each); GCC scalarises the direct int16 -> double vector conversion.
template <int VB>
struct IntVecs {
    typedef std::int16_t i16 __attribute__((vector_size(VB / 4)));
    typedef std::int32_t i32 __attribute__((vector_size(VB / 2)));
};
template <int VB>
CX_ALWAYS_INLINE Vec<double, VB> loadz(const std::int16_t* p) {
    using V = IntVecs<VB>;
    const auto wide = __builtin_convertvector(load_vec<typename V::i16>(p), typename V::i32);
    return __builtin_convertvector(wide, Vec<double, VB>);
}

// y[q] = z[rows[q]] . v for q < cnt (v has m entries; z rows have m entries, stride m).
// kR rows at a time against each vector of v (kR independent accumulation chains, kR row
// streams in flight); the remainder one row at a time with two chains.
template <int VB, typename TZ>
CX_ALWAYS_INLINE void dots_impl(const TZ* z, i64 m, const i32* rows, i64 cnt, const double* v,
                                double* y) {
    using V = Vec<double, VB>;
    constexpr int W = kWidth<double, VB>;
    const i64 mv = m / W * W;
    i64 q = 0;
    for (; q + kR <= cnt; q += kR) {
        const TZ* r[kR];
        for (int u = 0; u < kR; ++u) r[u] = z + i64(rows[q + u]) * m;
        V a[kR] = {};
        for (i64 c = 0; c < mv; c += W) {
            const V vc = load<VB>(v + c);
            for (int u = 0; u < kR; ++u) a[u] += loadz<VB>(r[u] + c) * vc;
        }
        for (int u = 0; u < kR; ++u) {
            double s = hsum(a[u]);
            for (i64 t = mv; t < m; ++t) s += double(r[u][t]) * v[t];
            y[q + u] = s;
        }
    }
    for (; q < cnt; ++q) {
        const TZ* r = z + i64(rows[q]) * m;
        V a = {};
        for (i64 c = 0; c < mv; c += W) a += loadz<VB>(r + c) * load<VB>(v + c);
        double s = hsum(a);
        for (i64 t = mv; t < m; ++t) s += double(r[t]) * v[t];
        y[q] = s;
    }
}

// out += sum_q y[q] z[rows[q]] (y == nullptr: weights 1), summed in row order per entry.
template <int VB, typename TZ>
CX_ALWAYS_INLINE void axpys_impl(const TZ* z, i64 m, const i32* rows, i64 cnt, const double* y,
                                 double* out) {
    using V = Vec<double, VB>;
    constexpr int W = kWidth<double, VB>;
    const i64 mv = m / W * W;
    i64 c = 0;
    for (; c + kU * W <= mv; c += kU * W) {
        V acc[kU];
        for (int u = 0; u < kU; ++u) acc[u] = load<VB>(out + c + u * W);
        for (i64 q = 0; q < cnt; ++q) {
            const TZ* r = z + i64(rows[q]) * m + c;
            if (y) {
                const V yq = splat<VB>(y[q]);
                for (int u = 0; u < kU; ++u) acc[u] += yq * loadz<VB>(r + u * W);
            } else {
                for (int u = 0; u < kU; ++u) acc[u] += loadz<VB>(r + u * W);
            }
        }
        for (int u = 0; u < kU; ++u) store(out + c + u * W, acc[u]);
    }
    for (; c < mv; c += W) {
        V acc = load<VB>(out + c);
        for (i64 q = 0; q < cnt; ++q) {
            const V zq = loadz<VB>(z + i64(rows[q]) * m + c);
            acc = y ? acc + splat<VB>(y[q]) * zq : acc + zq;
        }
        store(out + c, acc);
    }
    for (; c < m; ++c) {
        double acc = out[c];
        for (i64 q = 0; q < cnt; ++q) {
            const double zq = double(z[i64(rows[q]) * m + c]);
            acc = y ? acc + y[q] * zq : acc + zq;
        }
        out[c] = acc;
    }
}

// One chunk for one right-hand side: dots (if v) then the weighted row sum.  With per-row
// scales s (z_i = s_i q_i for stored rows q_i), the weights become s_i^2 (q_i . v) for the
// Gram product and s_i for the row sums (y must then have room for cnt entries either way).
template <int VB, typename TZ>
CX_ALWAYS_INLINE void chunk_impl(const TZ* z, i64 m, const i32* rows, i64 cnt, const double* v,
                                 const double* scale, double* y, double* out) {
    if (v) dots_impl<VB>(z, m, rows, cnt, v, y);
    if (scale) {
        for (i64 q = 0; q < cnt; ++q) {
            const double sq = scale[rows[q]];
            y[q] = v ? sq * sq * y[q] : sq;
        }
    }
    axpys_impl<VB>(z, m, rows, cnt, (v || scale) ? static_cast<const double*>(y) : nullptr, out);
}

CX_ISA_KERNEL(chunk, chunk_impl)

// dst[0 .. m) = src[0 .. m) as float64 (exact for float32 and int16).
template <int VB, typename TZ>
CX_ALWAYS_INLINE void widen_row_impl(const TZ* src, i64 m, double* dst) {
    constexpr int W = kWidth<double, VB>;
    i64 c = 0;
    for (; c + W <= m; c += W) store(dst + c, loadz<VB>(src + c));
    for (; c < m; ++c) dst[c] = double(src[c]);
}

CX_ISA_KERNEL(widen_row, widen_row_impl)

void check_selection(i64 n, i64 m, const i64* ptr, const i32* rows, i64 n_sel, const i64* cols,
                     i64 b) {
    if (n < 0 || m < 0 || n_sel < 0 || b < 0) throw std::invalid_argument("negative size");
    if (ptr[0] != 0) throw std::invalid_argument("selection ptr[0] must be 0");
    for (i64 s = 0; s < n_sel; ++s) {
        if (ptr[s + 1] < ptr[s]) throw std::invalid_argument("selection ptr must be non-decreasing");
        for (i64 k = ptr[s]; k < ptr[s + 1]; ++k) {
            if (rows[k] < 0 || rows[k] >= n)
                throw std::invalid_argument("selection row index out of range");
            if (k > ptr[s] && rows[k] <= rows[k - 1])
                throw std::invalid_argument("selection rows must be strictly increasing");
        }
    }
    for (i64 j = 0; j < b; ++j)
        if (cols[j] < 0 || cols[j] >= n_sel)
            throw std::invalid_argument("selection column index out of range");
}

template <int VB, typename TZ>
void run_vb(const TZ* z, const double* scale, i64 n, i64 m, const i64* ptr, const i32* rows,
            const i64* cols, i64 b, const double* v, double* out, int num_threads) {
    std::fill(out, out + b * m, 0.0);
    // Contiguous ranges of right-hand sides with about equal selected-row counts.
    i64 total = 0;
    for (i64 j = 0; j < b; ++j) total += ptr[cols[j] + 1] - ptr[cols[j]];
    const int nt = resolve_threads(num_threads, std::min<i64>(b, 1 + total / (4 * kChunk)));
    std::vector<i64> first(nt + 1, b);
    first[0] = 0;
    {
        i64 acc = 0;
        int t = 1;
        for (i64 j = 0; j < b && t < nt; ++j) {
            acc += ptr[cols[j] + 1] - ptr[cols[j]];
            while (t < nt && acc * nt >= total * t) first[t++] = j + 1;
        }
    }
    // float32 and int16 rows: each chunk's selected rows can be widened to float64 once, into
    // a per-thread buffer that every right-hand side of the thread then reads -- the values
    // the direct path converts on every load, so the same results bitwise (sums keep row
    // order whatever the chunking), for one conversion per row and chunk instead of two per
    // selection.  It pays when the thread's right-hand sides select each row several times
    // and the buffer stays in L2 (measured at m = 1000 with 10 % selections: 1.4x at 200
    // right-hand sides, 0.96x at 32; at m = 4000 slower at any count).
    constexpr i64 kWidenBytes = i64(1) << 20;
    constexpr double kWidenMinUses = 2.5;
    const double uses = double(total) / (double(std::max<i64>(n, 1)) * nt);
    const bool widen = !std::is_same_v<TZ, double> && m * kChunk * i64(sizeof(double)) <=
                                                          kWidenBytes && uses >= kWidenMinUses;
    const i64 zbuf_rows = widen ? kChunk : 0;
    Buffer<double> ybuf(kChunk * nt);  // allocated here: nothing may throw inside the region
    Buffer<double> zbuf(zbuf_rows * m * nt);
    Buffer<i32> lrows(kChunk * nt);
    Buffer<unsigned char> need(kChunk * nt);
    Buffer<i64> cursor(b);
    Buffer<i64> span_end(b);
    for (i64 j = 0; j < b; ++j) cursor.get()[j] = ptr[cols[j]];
    double* yp = ybuf.get();
    double* zbp = zbuf.get();
    i32* lrp = lrows.get();
    unsigned char* needp = need.get();
    i64* cur = cursor.get();
    i64* send = span_end.get();
    const i64 n_chunks = (n + kChunk - 1) / kChunk;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        const int t = thread_id();
        double* y = yp + i64(t) * kChunk;
        double* zb = zbp + i64(t) * zbuf_rows * m;
        i32* lr = lrp + i64(t) * kChunk;
        unsigned char* nd = needp + i64(t) * kChunk;
        // Ranges t, t + team, ...: all of them even if OpenMP started fewer threads than nt.
        for (int part = t; part < nt; part += team_size())
            for (i64 ch = 0; ch < n_chunks; ++ch) {
                const i64 lo = ch * kChunk;
                const i32 hi = static_cast<i32>(std::min(n, lo + kChunk));
                for (i64 j = first[part]; j < first[part + 1]; ++j) {
                    const i64 end = ptr[cols[j] + 1];
                    i64 hi_k = cur[j];
                    while (hi_k < end && rows[hi_k] < hi) ++hi_k;
                    send[j] = hi_k;
                    if (widen)
                        for (i64 k = cur[j]; k < hi_k; ++k) nd[rows[k] - lo] = 1;
                }
                if (widen)
                    for (i64 r = 0; r < hi - lo; ++r)
                        if (nd[r]) {
                            widen_row<VB>(z + (lo + r) * m, m, zb + r * m);
                            nd[r] = 0;
                        }
                for (i64 j = first[part]; j < first[part + 1]; ++j) {
                    const i64 lo_k = cur[j], hi_k = send[j];
                    if (hi_k == lo_k) continue;
                    const double* vj = v ? v + j * m : nullptr;
                    if (widen) {
                        for (i64 k = lo_k; k < hi_k; ++k) lr[k - lo_k] = rows[k] - i32(lo);
                        chunk<VB>(static_cast<const double*>(zb), m, lr, hi_k - lo_k, vj,
                                  scale ? scale + lo : nullptr, y, out + j * m);
                    } else {
                        chunk<VB>(z, m, rows + lo_k, hi_k - lo_k, vj, scale, y, out + j * m);
                    }
                    cur[j] = hi_k;
                }
            }
    }
}

template <typename TZ>
void run(const TZ* z, const double* scale, i64 n, i64 m, const i64* ptr, const i32* rows,
         i64 n_sel, const i64* cols, i64 b, const double* v, double* out, int num_threads) {
    check_selection(n, m, ptr, rows, n_sel, cols, b);
    if (b == 0 || m == 0) return;
    with_vector_bytes(active_isa(), [&](auto vb) {
        run_vb<decltype(vb)::value>(z, scale, n, m, ptr, rows, cols, b, v, out, num_threads);
    });
}

}  // namespace

void selected_gram_matvec(const double* z, i64 n, i64 m, const i64* ptr, const i32* rows,
                          i64 n_sel, const i64* cols, i64 b, const double* v, double* out,
                          int num_threads) {
    run<double>(z, nullptr, n, m, ptr, rows, n_sel, cols, b, v, out, num_threads);
}
void selected_gram_matvec(const float* z, i64 n, i64 m, const i64* ptr, const i32* rows,
                          i64 n_sel, const i64* cols, i64 b, const double* v, double* out,
                          int num_threads) {
    run<float>(z, nullptr, n, m, ptr, rows, n_sel, cols, b, v, out, num_threads);
}
void selected_gram_matvec(const std::int16_t* z, const double* row_scale, i64 n, i64 m,
                          const i64* ptr, const i32* rows, i64 n_sel, const i64* cols, i64 b,
                          const double* v, double* out, int num_threads) {
    if (!row_scale) throw std::invalid_argument("int16 rows need their row scales");
    run<std::int16_t>(z, row_scale, n, m, ptr, rows, n_sel, cols, b, v, out, num_threads);
}
void selected_row_sums(const double* z, i64 n, i64 m, const i64* ptr, const i32* rows, i64 n_sel,
                       const i64* cols, i64 b, double* out, int num_threads) {
    run<double>(z, nullptr, n, m, ptr, rows, n_sel, cols, b, nullptr, out, num_threads);
}
void selected_row_sums(const float* z, i64 n, i64 m, const i64* ptr, const i32* rows, i64 n_sel,
                       const i64* cols, i64 b, double* out, int num_threads) {
    run<float>(z, nullptr, n, m, ptr, rows, n_sel, cols, b, nullptr, out, num_threads);
}
void selected_row_sums(const std::int16_t* z, const double* row_scale, i64 n, i64 m,
                       const i64* ptr, const i32* rows, i64 n_sel, const i64* cols, i64 b,
                       double* out, int num_threads) {
    if (!row_scale) throw std::invalid_argument("int16 rows need their row scales");
    run<std::int16_t>(z, row_scale, n, m, ptr, rows, n_sel, cols, b, nullptr, out, num_threads);
}

}  // namespace contrastx::cpu
