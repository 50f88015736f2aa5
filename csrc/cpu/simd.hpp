// Portable fixed-width SIMD on GCC/Clang vector extensions, plus a vectorised exp.
//
// A Vec<T> holds 64 bytes (8 doubles / 16 floats).  In a function compiled for AVX-512 it is one
// zmm register; for AVX2 the compiler splits every operation into two ymm operations, for SSE2
// into four xmm operations.  So the same source serves each target_clones variant, and the
// code generation does not depend on the auto-vectoriser's heuristics.
#pragma once

#include <cstdint>

#if defined(__GNUC__)
#define CX_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#error "contrastx CPU kernels need GCC or Clang (vector extensions)"
#endif

// Functions taking / returning Vec are always inlined, so the vector-ABI note GCC emits for
// them in baseline (non-AVX-512) code is irrelevant.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace contrastx::cpu {

template <typename T>
struct SimdTraits;

template <>
struct SimdTraits<double> {
    typedef double vec __attribute__((vector_size(64), aligned(8)));
    typedef std::uint64_t uvec __attribute__((vector_size(64), aligned(8)));
    static constexpr int width = 8;
};

template <>
struct SimdTraits<float> {
    typedef float vec __attribute__((vector_size(64), aligned(4)));
    typedef std::uint32_t uvec __attribute__((vector_size(64), aligned(4)));
    static constexpr int width = 16;
};

template <typename T>
using Vec = typename SimdTraits<T>::vec;
template <typename T>
using UVec = typename SimdTraits<T>::uvec;
template <typename T>
constexpr int kWidth = SimdTraits<T>::width;

template <typename T>
CX_ALWAYS_INLINE Vec<T> splat(T s) {
    return Vec<T>{} + s;
}

// Unaligned load / store (the typedefs above are declared with element alignment).
template <typename T>
CX_ALWAYS_INLINE Vec<T> load(const T* p) {
    return *reinterpret_cast<const Vec<T>*>(p);
}
template <typename T>
CX_ALWAYS_INLINE void store(T* p, Vec<T> v) {
    *reinterpret_cast<Vec<T>*>(p) = v;
}

template <typename T>
CX_ALWAYS_INLINE T hsum(Vec<T> v) {
    // Fixed pairwise order: deterministic for a given width.
    T buf[kWidth<T>];
    store(buf, v);
    for (int w = kWidth<T> / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; ++i) buf[i] += buf[i + w];
    return buf[0];
}

// exp(x) for x <= 0 (the Gaussian kernel only needs exp(-t), t >= 0), elementwise, on G
// independent vectors at once.
//
// Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, a near-minimax polynomial for exp(r)
// (Chebyshev fit on [-ln2/2, ln2/2]: relative error 1.7e-17 for double, 2.0e-8 for float with
// the coefficients rounded to the working precision) and 2^n built in the exponent bits; only
// arithmetic, integer bit operations and one min, so that it maps to straight-line SIMD.  Each
// step is applied to all G vectors before the next one, so that their dependency chains
// interleave (the polynomial is latency-bound for a single vector).
// Accuracy (measured against glibc exp on 4M arguments in [-720, 0] / [-90, 0]): <= 1 ulp,
// with or without FMA.  Arguments below -708 (double) / -87 (float) are clamped there, i.e.
// return about 3.3e-308 / 1.6e-38 instead of a smaller number (absolute error < 3.4e-308 /
// 1.7e-38).  NaN propagates.
template <typename T>
struct ExpConstants;

template <>
struct ExpConstants<double> {
    static constexpr double log2e = 1.4426950408889634074;
    static constexpr double ln2_hi = 6.93147180369123816490e-01;  // fdlibm split of ln 2:
    static constexpr double ln2_lo = 1.90821492927058770002e-10;  // n * ln2_hi is exact
    static constexpr double shift = 6755399441055744.0;  // 1.5 * 2^52: rounds to an integer
    static constexpr double min_arg = -708.0;            // exp(-708) is a normal number
    static constexpr int mantissa_bits = 52;
    static constexpr int degree = 11;
    static constexpr double poly[degree + 1] = {  // highest degree first
        2.5110037605963777e-08, 2.763263963904103e-07, 2.755724091857897e-06,
        2.4801485482328494e-05, 0.00019841269890047113, 0.0013888888952314775,
        0.008333333333319601,   0.0416666666664881,     0.1666666666666668,
        0.5000000000000019,     1.0,                    1.0};
};

template <>
struct ExpConstants<float> {
    static constexpr float log2e = 1.44269504088896341f;
    static constexpr float ln2_hi = 0.693145751953125f;  // 0x1.62e4p-1: n * ln2_hi is exact
    static constexpr float ln2_lo = 1.428606765330187045e-06f;
    static constexpr float shift = 12582912.0f;  // 1.5 * 2^23
    static constexpr float min_arg = -87.0f;     // exp(-87) is a normal float
    static constexpr int mantissa_bits = 23;
    static constexpr int degree = 6;
    static constexpr float poly[degree + 1] = {  // highest degree first
        0.0013941108481958508f, 0.00837512593716383f, 0.04166635125875473f,
        0.16666415333747864f,   0.5f,                 1.0f,
        1.0f};
};

template <int G, typename T>
CX_ALWAYS_INLINE void exp_nonpos(Vec<T> (&v)[G]) {
    using C = ExpConstants<T>;
    using V = Vec<T>;
    using U = UVec<T>;
    const V vmin = splat<T>(C::min_arg);
    V t[G], n[G], r[G], p[G];
    for (int g = 0; g < G; ++g) v[g] = v[g] < vmin ? vmin : v[g];
    // The low mantissa bits of t hold n = round(x / ln 2).
    for (int g = 0; g < G; ++g) t[g] = v[g] * C::log2e + C::shift;
    for (int g = 0; g < G; ++g) n[g] = t[g] - C::shift;
    for (int g = 0; g < G; ++g) r[g] = v[g] - n[g] * C::ln2_hi;
    for (int g = 0; g < G; ++g) r[g] = r[g] - n[g] * C::ln2_lo;
    for (int g = 0; g < G; ++g) p[g] = splat<T>(C::poly[0]);
    for (int k = 1; k <= C::degree; ++k)
        for (int g = 0; g < G; ++g) p[g] = p[g] * r[g] + C::poly[k];
    // exp(x) = p * 2^n: add n to the exponent field of p (an integer add instead of a multiply).
    // The result stays a normal number thanks to the clamp: for double n >= -1021 and p > 1/2;
    // for float n >= -126, and n = -126 only when r > 0, i.e. p > 1.
    const U shift_bits = (U)splat<T>(C::shift);
    for (int g = 0; g < G; ++g)
        v[g] = (V)((U)p[g] + (((U)t[g] - shift_bits) << C::mantissa_bits));
}

}  // namespace contrastx::cpu
