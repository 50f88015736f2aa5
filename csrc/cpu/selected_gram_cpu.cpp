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
#include <cmath>
#include <limits>
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

// int16 vectors with as many lanes as TA has per vector (see loadz).
template <int VB, typename TA>
struct IntVecs {
    static constexpr int lanes = kWidth<TA, VB>;
    typedef std::int16_t i16 __attribute__((vector_size(2 * lanes)));
    typedef std::int32_t i32 __attribute__((vector_size(4 * lanes)));
};

// W consecutive entries of a row in the arithmetic type TA (W = lanes of TA per vector),
// exact for every storage type: float64 from float32 or int16, float32 from int16.  int16 is
// converted in two steps (sign extension to int32, then int32 to TA: one instruction each;
// GCC scalarises the direct int16 -> double vector conversion).
template <int VB, typename TA, typename TZ>
CX_ALWAYS_INLINE Vec<TA, VB> loadz(const TZ* p) {
    if constexpr (std::is_same_v<TZ, TA>) {
        return load<VB>(p);
    } else if constexpr (std::is_same_v<TZ, float>) {
        static_assert(std::is_same_v<TA, double>, "float32 rows are float32 or float64 vectors");
        return __builtin_convertvector(load_vec<Vec<float, VB / 2>>(p), Vec<double, VB>);
    } else {
        static_assert(std::is_same_v<TZ, std::int16_t>, "float64, float32 or int16 rows");
        using V = IntVecs<VB, TA>;
        const auto wide = __builtin_convertvector(load_vec<typename V::i16>(p), typename V::i32);
        return __builtin_convertvector(wide, Vec<TA, VB>);
    }
}

// The lanes of a vector summed in float64 in a fixed pairwise order.
template <typename V>
CX_ALWAYS_INLINE double hsum_f64(V a) {
    using T = VecElem<V>;
    if constexpr (std::is_same_v<T, double>) {
        return hsum(a);
    } else {
        T lanes[kLanes<V>];
        store(lanes, a);
        double buf[kLanes<V>];
        for (int i = 0; i < kLanes<V>; ++i) buf[i] = double(lanes[i]);
        for (int w = kLanes<V> / 2; w >= 1; w /= 2)
            for (int i = 0; i < w; ++i) buf[i] += buf[i + w];
        return buf[0];
    }
}

// y[q] = z[rows[q]] . v for q < cnt (v has m entries; z rows have m entries, stride m), in TA
// per lane and float64 across the lanes and the tail.  kR rows at a time against each vector
// of v (kR independent accumulation chains, kR row streams in flight); the remainder one row
// at a time.
template <int VB, typename TA, typename TZ>
CX_ALWAYS_INLINE void dots_impl(const TZ* z, i64 m, const i32* rows, i64 cnt, const TA* v,
                                double* y) {
    using V = Vec<TA, VB>;
    constexpr int W = kWidth<TA, VB>;
    const i64 mv = m / W * W;
    i64 q = 0;
    for (; q + kR <= cnt; q += kR) {
        const TZ* r[kR];
        for (int u = 0; u < kR; ++u) r[u] = z + i64(rows[q + u]) * m;
        V a[kR] = {};
        for (i64 c = 0; c < mv; c += W) {
            const V vc = load<VB>(v + c);
            for (int u = 0; u < kR; ++u) a[u] += loadz<VB, TA>(r[u] + c) * vc;
        }
        for (int u = 0; u < kR; ++u) {
            double s = hsum_f64(a[u]);
            for (i64 t = mv; t < m; ++t) s += double(r[u][t]) * double(v[t]);
            y[q + u] = s;
        }
    }
    for (; q < cnt; ++q) {
        const TZ* r = z + i64(rows[q]) * m;
        V a = {};
        for (i64 c = 0; c < mv; c += W) a += loadz<VB, TA>(r + c) * load<VB>(v + c);
        double s = hsum_f64(a);
        for (i64 t = mv; t < m; ++t) s += double(r[t]) * double(v[t]);
        y[q] = s;
    }
}

// out += sum_q y[q] z[rows[q]] (y == nullptr: weights 1), summed in row order per entry.
// TA = double: the sums run in out's float64 registers.  TA = float: the chunk's rows are
// summed in float32 registers (weights rounded to float32) and each chunk's sum is added to
// the float64 out, so the float32 sums span one chunk's rows only.  The entries past the
// last whole vector run in float64 either way.
template <int VB, typename TA, typename TZ>
CX_ALWAYS_INLINE void axpys_impl(const TZ* z, i64 m, const i32* rows, i64 cnt, const double* y,
                                 double* out) {
    using V = Vec<TA, VB>;
    constexpr int W = kWidth<TA, VB>;
    constexpr bool f64 = std::is_same_v<TA, double>;
    const i64 mv = m / W * W;
    // Add a float32 chunk sum to W float64 entries of out.
    auto flush = [](double* o, V acc) {
        if constexpr (!f64) {
            using H = Vec<double, VB>;
            constexpr int HW = kWidth<double, VB>;
            TA lanes[W];
            store(lanes, acc);
            for (int h = 0; h < W; h += HW)
                store(o + h, load<VB>(o + h) +
                                 __builtin_convertvector(load_vec<Vec<TA, VB / 2>>(lanes + h), H));
        }
    };
    i64 c = 0;
    for (; c + kU * W <= mv; c += kU * W) {
        V acc[kU];
        for (int u = 0; u < kU; ++u) {
            if constexpr (f64) acc[u] = load<VB>(out + c + u * W);
            else acc[u] = V{};
        }
        for (i64 q = 0; q < cnt; ++q) {
            const TZ* r = z + i64(rows[q]) * m + c;
            if (y) {
                const V yq = splat<VB>(TA(y[q]));
                for (int u = 0; u < kU; ++u) acc[u] += yq * loadz<VB, TA>(r + u * W);
            } else {
                for (int u = 0; u < kU; ++u) acc[u] += loadz<VB, TA>(r + u * W);
            }
        }
        for (int u = 0; u < kU; ++u) {
            if constexpr (f64) store(out + c + u * W, acc[u]);
            else flush(out + c + u * W, acc[u]);
        }
    }
    for (; c < mv; c += W) {
        V acc;
        if constexpr (f64) acc = load<VB>(out + c);
        else acc = V{};
        for (i64 q = 0; q < cnt; ++q) {
            const V zq = loadz<VB, TA>(z + i64(rows[q]) * m + c);
            acc = y ? acc + splat<VB>(TA(y[q])) * zq : acc + zq;
        }
        if constexpr (f64) store(out + c, acc);
        else flush(out + c, acc);
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
template <int VB, typename TA, typename TZ>
CX_ALWAYS_INLINE void chunk_impl(const TZ* z, i64 m, const i32* rows, i64 cnt, const TA* v,
                                 const double* scale, double* y, double* out) {
    if (v) dots_impl<VB, TA>(z, m, rows, cnt, v, y);
    if (scale) {
        for (i64 q = 0; q < cnt; ++q) {
            const double sq = scale[rows[q]];
            y[q] = v ? sq * sq * y[q] : sq;
        }
    }
    axpys_impl<VB, TA>(z, m, rows, cnt, (v || scale) ? static_cast<const double*>(y) : nullptr,
                       out);
}

CX_ISA_KERNEL(chunk, chunk_impl)

// dst[0 .. m) = src[0 .. m) in the arithmetic type TA (exact).
template <int VB, typename TA, typename TZ>
CX_ALWAYS_INLINE void widen_row_impl(const TZ* src, i64 m, TA* dst) {
    constexpr int W = kWidth<TA, VB>;
    i64 c = 0;
    for (; c + W <= m; c += W) store(dst + c, loadz<VB, TA>(src + c));
    for (; c < m; ++c) dst[c] = TA(src[c]);
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

template <int VB, typename TA, typename TZ>
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
    // Rows stored in another type than the arithmetic's (float32 or int16 rows, float64
    // arithmetic; int16 rows, float32 arithmetic): each chunk's selected rows can be widened
    // once, into a per-thread buffer that every right-hand side of the thread then reads --
    // the values the direct path converts on every load, so the same results bitwise (sums
    // keep row order whatever the chunking), for one conversion per row and chunk instead of
    // two per selection.  It pays when the thread's right-hand sides select each row several
    // times and the buffer stays in L2 (measured at m = 1000 with 10 % selections and float64
    // arithmetic: 1.4x at 200 right-hand sides, 0.96x at 32; at m = 4000 slower at any count).
    constexpr i64 kWidenBytes = i64(1) << 20;
    constexpr double kWidenMinUses = 2.5;
    const double uses = double(total) / (double(std::max<i64>(n, 1)) * nt);
    const bool widen = !std::is_same_v<TZ, TA> && m * kChunk * i64(sizeof(TA)) <= kWidenBytes &&
                       uses >= kWidenMinUses;
    const i64 zbuf_rows = widen ? kChunk : 0;
    // The right-hand sides in the arithmetic type (float32: rounded once here).
    const bool convert_v = v && !std::is_same_v<TA, double>;
    Buffer<TA> vbuf(convert_v ? b * m : 0);  // allocated here: nothing may throw in the region
    Buffer<double> ybuf(kChunk * nt);
    Buffer<TA> zbuf(zbuf_rows * m * nt);
    Buffer<i32> lrows(kChunk * nt);
    Buffer<unsigned char> need(kChunk * nt);
    Buffer<i64> cursor(b);
    Buffer<i64> span_end(b);
    const TA* va = nullptr;
    if constexpr (std::is_same_v<TA, double>) {
        va = v;
    } else if (v) {
        for (i64 i = 0; i < b * m; ++i) vbuf.get()[i] = TA(v[i]);
        va = vbuf.get();
    }
    for (i64 j = 0; j < b; ++j) cursor.get()[j] = ptr[cols[j]];
    double* yp = ybuf.get();
    TA* zbp = zbuf.get();
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
        TA* zb = zbp + i64(t) * zbuf_rows * m;
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
                    const TA* vj = va ? va + j * m : nullptr;
                    if (widen) {
                        for (i64 k = lo_k; k < hi_k; ++k) lr[k - lo_k] = rows[k] - i32(lo);
                        chunk<VB>(static_cast<const TA*>(zb), m, lr, hi_k - lo_k, vj,
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
         i64 n_sel, const i64* cols, i64 b, const double* v, double* out, int num_threads,
         Arithmetic arithmetic) {
    check_selection(n, m, ptr, rows, n_sel, cols, b);
    const bool f32 = arithmetic == Arithmetic::float32;  // float64 rows: float64 arithmetic
    if (b == 0 || m == 0) return;
    with_vector_bytes(active_isa(), [&](auto vb) {
        constexpr int VB = decltype(vb)::value;
        if constexpr (!std::is_same_v<TZ, double>) {
            if (f32) {
                run_vb<VB, float>(z, scale, n, m, ptr, rows, cols, b, v, out, num_threads);
                return;
            }
        }
        run_vb<VB, double>(z, scale, n, m, ptr, rows, cols, b, v, out, num_threads);
    });
}

}  // namespace

// One row of quantize_rows, in SIMD vectors: the torch reference's two divisions per entry,
// then round half to even by adding and subtracting 1.5 * 2^52 (exact for |x| < 2^51: the
// quotients are within 32767 by construction), clamped and narrowed to int16.
template <int VB>
CX_ALWAYS_INLINE void quantize_row_impl(const double* zi, i64 m, const double* col_scale,
                                        std::int16_t* qi, double* scale, bool* finite) {
    using V = Vec<double, VB>;
    using U = UVec<double, VB>;
    constexpr int W = kWidth<double, VB>;
    constexpr double kMax = 32767.0;
    constexpr double kHuge = std::numeric_limits<double>::max();
    const i64 mv = m / W * W;
    V vmax = {};
    U vbad = {};
    for (i64 j = 0; j < mv; j += W) {
        V u = load<VB>(zi + j) / load<VB>(col_scale + j);
        u = u < 0.0 ? -u : u;
        vbad |= (U)(u != u) | (U)(u > kHuge);  // NaN or inf
        vmax = u > vmax ? u : vmax;
    }
    double amax = 0.0;
    bool bad = false;
    for (int l = 0; l < W; ++l) {
        amax = vmax[l] > amax ? vmax[l] : amax;
        bad = bad || vbad[l] != 0;
    }
    for (i64 j = mv; j < m; ++j) {
        const double u = std::fabs(zi[j] / col_scale[j]);
        bad = bad || !(u <= kHuge);
        amax = u > amax ? u : amax;
    }
    const double s = amax / kMax;
    const double div = s > 0.0 ? s : 1.0;
    const double magic = 1.5 * 4503599627370496.0;  // 1.5 * 2^52
    using I32 = typename IntVecs<VB, double>::i32;
    using I16 = typename IntVecs<VB, double>::i16;
    for (i64 j = 0; j < mv; j += W) {
        V r = load<VB>(zi + j) / load<VB>(col_scale + j) / div;
        r = (r + magic) - magic;
        r = r > kMax ? splat<VB>(kMax) : r;
        r = r < -kMax ? splat<VB>(-kMax) : r;
        const I16 v16 = __builtin_convertvector(__builtin_convertvector(r, I32), I16);
        __builtin_memcpy(qi + j, &v16, sizeof(v16));
    }
    for (i64 j = mv; j < m; ++j) {
        double r = zi[j] / col_scale[j] / div;
        r = (r + magic) - magic;
        qi[j] = static_cast<std::int16_t>(r > kMax ? kMax : (r < -kMax ? -kMax : r));
    }
    *scale = s;
    *finite = !bad;
}

CX_ISA_KERNEL(quantize_row, quantize_row_impl)

bool quantize_rows(const double* z, i64 n, i64 m, const double* col_scale, std::int16_t* q,
                   double* row_scale, int num_threads) {
    if (n < 0 || m < 0) throw std::invalid_argument("negative size");
    const int nt = resolve_threads(num_threads, std::max<i64>(1, n / 64));
    bool finite = true;
    with_vector_bytes(active_isa(), [&](auto vb) {
        constexpr int VB = decltype(vb)::value;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(&& : finite)
#endif
        for (i64 i = 0; i < n; ++i) {
            bool ok = true;
            quantize_row<VB>(z + i * m, m, col_scale, q + i * m, row_scale + i, &ok);
            finite = finite && ok;
        }
    });
    return finite;
}

void selected_gram_matvec(const double* z, i64 n, i64 m, const i64* ptr, const i32* rows,
                          i64 n_sel, const i64* cols, i64 b, const double* v, double* out,
                          int num_threads, Arithmetic arithmetic) {
    run<double>(z, nullptr, n, m, ptr, rows, n_sel, cols, b, v, out, num_threads, arithmetic);
}
void selected_gram_matvec(const float* z, i64 n, i64 m, const i64* ptr, const i32* rows,
                          i64 n_sel, const i64* cols, i64 b, const double* v, double* out,
                          int num_threads, Arithmetic arithmetic) {
    run<float>(z, nullptr, n, m, ptr, rows, n_sel, cols, b, v, out, num_threads, arithmetic);
}
void selected_gram_matvec(const std::int16_t* z, const double* row_scale, i64 n, i64 m,
                          const i64* ptr, const i32* rows, i64 n_sel, const i64* cols, i64 b,
                          const double* v, double* out, int num_threads, Arithmetic arithmetic) {
    if (!row_scale) throw std::invalid_argument("int16 rows need their row scales");
    run<std::int16_t>(z, row_scale, n, m, ptr, rows, n_sel, cols, b, v, out, num_threads,
                      arithmetic);
}
void selected_row_sums(const double* z, i64 n, i64 m, const i64* ptr, const i32* rows, i64 n_sel,
                       const i64* cols, i64 b, double* out, int num_threads,
                       Arithmetic arithmetic) {
    run<double>(z, nullptr, n, m, ptr, rows, n_sel, cols, b, nullptr, out, num_threads,
                arithmetic);
}
void selected_row_sums(const float* z, i64 n, i64 m, const i64* ptr, const i32* rows, i64 n_sel,
                       const i64* cols, i64 b, double* out, int num_threads,
                       Arithmetic arithmetic) {
    run<float>(z, nullptr, n, m, ptr, rows, n_sel, cols, b, nullptr, out, num_threads,
               arithmetic);
}
void selected_row_sums(const std::int16_t* z, const double* row_scale, i64 n, i64 m,
                       const i64* ptr, const i32* rows, i64 n_sel, const i64* cols, i64 b,
                       double* out, int num_threads, Arithmetic arithmetic) {
    if (!row_scale) throw std::invalid_argument("int16 rows need their row scales");
    run<std::int16_t>(z, row_scale, n, m, ptr, rows, n_sel, cols, b, nullptr, out, num_threads,
                      arithmetic);
}

}  // namespace contrastx::cpu
