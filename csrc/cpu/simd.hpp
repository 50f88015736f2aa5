// Portable fixed-width SIMD on GCC/Clang vector extensions, plus a vectorised exp.
//
// Vec<T, VB> holds VB bytes (VB = 64, 32 or 16: 8 / 4 / 2 doubles, 16 / 8 / 4 floats).  Each
// kernel is a template on VB, instantiated once per instruction-set level with that level's
// native register width (isa.hpp: AVX-512 64, AVX2 32, baseline 16), so every vector operation
// maps to one instruction.  (A 64-byte type compiled for AVX2 is not: GCC keeps it in memory,
// splits its arithmetic and scalarises its compares, which made the AVX2 code 7x slower than
// with 32-byte vectors.)
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__GNUC__)
#define CX_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#error "contrastx CPU kernels need GCC or Clang (vector extensions)"
#endif

// Functions taking / returning Vec are always inlined, so the vector-ABI note GCC emits for
// them in baseline code is irrelevant.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace contrastx::cpu {

template <typename T, int VB>
struct SimdTraits {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float or double");
    static_assert(VB == 8 || VB == 16 || VB == 32 || VB == 64, "8 (half vectors), 16, 32, 64 bytes");
    using uint = std::conditional_t<sizeof(T) == 8, std::uint64_t, std::uint32_t>;
    typedef T vec __attribute__((vector_size(VB)));
    typedef uint uvec __attribute__((vector_size(VB)));
    static constexpr int width = VB / int(sizeof(T));
};

template <typename T, int VB>
using Vec = typename SimdTraits<T, VB>::vec;
template <typename T, int VB>
using UVec = typename SimdTraits<T, VB>::uvec;
template <typename T, int VB>
constexpr int kWidth = SimdTraits<T, VB>::width;

// The widest vector of any level, in elements: buffers padded to it suit every level.
template <typename T>
constexpr int kMaxWidth = kWidth<T, 64>;

// Element type and lane count of a vector type.
template <typename V>
using VecElem = std::remove_cv_t<std::remove_reference_t<decltype(V{}[0])>>;
template <typename V>
constexpr int kLanes = int(sizeof(V) / sizeof(VecElem<V>));

template <int VB, typename T>
CX_ALWAYS_INLINE Vec<T, VB> splat(T s) {
    return Vec<T, VB>{} + s;
}

// Unaligned loads and stores.  They go through memcpy, which compiles to one unaligned vector
// move: dereferencing a cast pointer would assume the vector's natural alignment (GCC drops
// alignment attributes from typedefs that depend on template parameters).
template <typename V>
CX_ALWAYS_INLINE V load_vec(const void* p) {
    V v;
    __builtin_memcpy(&v, p, sizeof(V));
    return v;
}
template <int VB, typename T>
CX_ALWAYS_INLINE Vec<T, VB> load(const T* p) {
    return load_vec<Vec<T, VB>>(p);
}
template <typename T, typename V>
CX_ALWAYS_INLINE void store(T* p, V v) {
    static_assert(std::is_same_v<VecElem<V>, T>, "store: element type mismatch");
    __builtin_memcpy(p, &v, sizeof(V));
}

template <typename V>
CX_ALWAYS_INLINE VecElem<V> hsum(V v) {
    // Fixed pairwise order: deterministic for a given width.
    using T = VecElem<V>;
    T buf[kLanes<V>];
    store(buf, v);
    for (int w = kLanes<V> / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; ++i) buf[i] += buf[i + w];
    return buf[0];
}

// ---------------------------------------------------------------------------------------------
// 2^y for y <= 0, elementwise, on G independent vectors at once (each step is applied to all G
// vectors before the next one, so that their dependency chains interleave).
//
// y = k / L + r with k = round(L y) (the low bits of y + 1.5 * 2^(p - log2 L), p the mantissa
// bits), r = y - k / L exact, |r| <= 1 / (2L); 2^y = 2^(k div L) * T[k mod L] * P(r), where
// P(r) approximates 2^r (polynomial fitted at Chebyshev nodes, coefficients rounded to the
// working precision) and T[j] = 2^(j / L) is a table of L = lanes entries held in one register
// and read with one permute.  Table variants: double on AVX-512 (L = 8, degree 7), float on
// AVX-512 (L = 16, degree 3) and AVX2 (L = 8, degree 4); elsewhere L = 1 (no table; degree 11
// for double, 6 for float; GCC lowers a variable permute on 4 doubles to four instructions,
// more than the table saves).  2^(k div L) is added to the exponent field with integer
// operations.  Only arithmetic, integer bit operations and one min, so it maps to straight-line
// SIMD.
// Accuracy (measured against exp2l on 4M arguments in [-1020, 0] / [-125, 0], every variant):
// at most 1.02 ulp with FMA (AVX2, AVX-512), 1.26 ulp without (baseline SSE2).
// Arguments below -1020 (double) / -125 (float) are clamped there, i.e. return about
// 9e-308 / 2.4e-38 instead of a smaller number.  NaN propagates.
// ---------------------------------------------------------------------------------------------
template <typename T, int L>
struct Exp2Constants;

template <>
struct Exp2Constants<double, 1> {
    static constexpr int degree = 11;
    static constexpr double poly[degree + 1] = {  // highest degree first; |r| <= 1/2
        4.4558179083360645e-10, 7.074194297288521e-09, 1.0178057087733941e-07,
        1.3215432535912375e-06, 1.5252733841556773e-05, 0.00015403530463724353,
        0.001333355814640647,   0.009618129107587256,  0.055504108664821625,
        0.24022650695910158,    0.6931471805599453,    1.0};
};
template <>
struct Exp2Constants<double, 8> {
    static constexpr int degree = 7;
    static constexpr double poly[degree + 1] = {  // |r| <= 1/16
        1.5253528985683798e-05, 0.00015404562882891175, 0.0013333558127014689,
        0.00961812908242099,    0.055504108664823096,   0.2402265069591204,
        0.6931471805599453,     1.0};
};
template <>
struct Exp2Constants<float, 1> {
    static constexpr int degree = 6;
    static constexpr float poly[degree + 1] = {  // |r| <= 1/2
        0.00015461444854736328f, 0.0013400427997112274f, 0.009618056938052177f,
        0.05550327152013779f,    0.24022650718688965f,   0.6931471824645996f,
        1.0f};
};
template <>
struct Exp2Constants<float, 8> {
    static constexpr int degree = 4;
    static constexpr float poly[degree + 1] = {  // |r| <= 1/16
        0.009618881158530712f, 0.055510617792606354f, 0.24022650718688965f,
        0.6931471824645996f, 1.0f};
};
template <>
struct Exp2Constants<float, 16> {
    static constexpr int degree = 3;
    static constexpr float poly[degree + 1] = {  // |r| <= 1/32
        0.055505409836769104f, 0.24023589491844177f, 0.6931471824645996f, 1.0f};
};

// Table size used for a vector of W lanes of T.
template <typename T, int W>
constexpr int exp2_table_size() {
#if defined(__clang__)
    return 1;  // no variable-index __builtin_shuffle
#else
    if constexpr (std::is_same_v<T, double>) return W == 8 ? 8 : 1;
    else return W == 16 || W == 8 ? W : 1;
#endif
}

// 2^(j / L), j < L, rounded to the working precision (computed with mpmath at 40 digits).
template <typename T, int L>
struct Exp2Table;
template <>
struct Exp2Table<double, 8> {
    alignas(64) static constexpr double value[8] = {
        1.0,
        1.0905077326652577,
        1.189207115002721,
        1.2968395546510096,
        1.4142135623730951,
        1.5422108254079407,
        1.681792830507429,
        1.8340080864093424};
};
template <>
struct Exp2Table<float, 8> {
    alignas(32) static constexpr float value[8] = {
        1.0f, 1.0905077f, 1.1892071f, 1.2968396f, 1.4142135f, 1.5422108f, 1.6817929f, 1.8340081f};
};
template <>
struct Exp2Table<float, 16> {
    alignas(64) static constexpr float value[16] = {
        1.0f,       1.0442737f, 1.0905077f, 1.1387886f, 1.1892071f, 1.2418578f,
        1.2968396f, 1.3542556f, 1.4142135f, 1.4768262f, 1.5422108f, 1.6104903f,
        1.6817929f, 1.7562522f, 1.8340081f, 1.9152066f};
};

template <int G, typename V>
CX_ALWAYS_INLINE void exp2_nonpos(V (&v)[G]) {
    using T = VecElem<V>;
    constexpr int W = kLanes<V>;
    constexpr int VB = int(sizeof(V));
    using U = UVec<T, VB>;
    using UInt = typename SimdTraits<T, VB>::uint;
    constexpr int L = exp2_table_size<T, W>();
    constexpr int lbits = L == 16 ? 4 : L == 8 ? 3 : 0;
    constexpr int mbits = sizeof(T) == 8 ? 52 : 23;
    using C = Exp2Constants<T, L>;
    // t = y + 1.5 * 2^(mbits - lbits): the ulp of t is 1 / L, so t holds round(L y) in its low
    // mantissa bits, and bits(t) << (mbits - lbits) is (round(L y)) << (mbits - lbits) exactly
    // (the shift's own bits move out of the word).
    const T shift = T(1.5) * T(UInt(1) << (mbits - lbits));
    const V vmin = splat<VB>(sizeof(T) == 8 ? T(-1020) : T(-125));
    V t[G], r[G], p[G];
    for (int g = 0; g < G; ++g) v[g] = v[g] < vmin ? vmin : v[g];
    for (int g = 0; g < G; ++g) t[g] = v[g] + shift;
    for (int g = 0; g < G; ++g) r[g] = v[g] - (t[g] - shift);
    for (int g = 0; g < G; ++g) p[g] = splat<VB>(C::poly[0]);
    if constexpr (L == 1) {
        for (int k = 1; k <= C::degree; ++k)
            for (int g = 0; g < G; ++g) p[g] = p[g] * r[g] + C::poly[k];
        for (int g = 0; g < G; ++g)
            v[g] = (V)((U)p[g] + ((U)t[g] << mbits));
    } else {
        // q = P(r) - 1, then T_j + T_j q: one rounding on the table value's product.
        for (int k = 1; k < C::degree; ++k)
            for (int g = 0; g < G; ++g) p[g] = p[g] * r[g] + C::poly[k];
        for (int g = 0; g < G; ++g) p[g] *= r[g];
        const V tab = load<VB>(Exp2Table<T, L>::value);
        const U keep_exp = (U{} + ~UInt(0)) << mbits;  // k << (mbits - lbits), low bits cleared
        for (int g = 0; g < G; ++g) {
            const V tj = __builtin_shuffle(tab, (U)t[g]);  // index: the low lbits of bits(t)
            const U e = ((U)t[g] << (mbits - lbits)) & keep_exp;
            v[g] = (V)((U)(tj * p[g] + tj) + e);
        }
    }
}

// e^x for x <= 0: exp2_nonpos(x log2 e).  The product's rounding adds at most |x| * 2^-53
// (double) to the relative error, the size of the rounding error any computed argument x
// already carries; callers that can fold log2 e into an earlier product call exp2_nonpos.
template <typename T>
inline constexpr T kLog2e = T(1.4426950408889634074);

template <int G, typename V>
CX_ALWAYS_INLINE void exp_nonpos(V (&v)[G]) {
    using T = VecElem<V>;
    for (int g = 0; g < G; ++g) v[g] *= kLog2e<T>;
    exp2_nonpos<G>(v);
}

// e^x for any x: exp2_nonpos's reduction also holds for positive exponents up to 2^1023
// (round(L y) then carries a positive power of two into the exponent field), so the argument
// is clamped there and the lanes above it set to +inf (from x log2 e > 1023.9, within a factor
// 1.07 of the float64 overflow; float32: 127.9), NaN lanes kept.
template <int G, typename V>
CX_ALWAYS_INLINE void exp_any(V (&v)[G]) {
    using T = VecElem<V>;
    constexpr int VB = int(sizeof(V));
    constexpr T kHigh = sizeof(T) == 8 ? T(1023.9) : T(127.9);
    const V high = splat<VB>(kHigh);
    const V inf = splat<VB>(std::numeric_limits<T>::infinity());
    V y[G];
    for (int g = 0; g < G; ++g) {
        y[g] = v[g] * kLog2e<T>;
        v[g] = y[g] > high ? high : y[g];
    }
    exp2_nonpos<G>(v);
    for (int g = 0; g < G; ++g) {
        v[g] = y[g] > high ? inf : v[g];
        v[g] = y[g] != y[g] ? y[g] : v[g];  // NaN
    }
}

}  // namespace contrastx::cpu
