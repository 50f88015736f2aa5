// Instruction-set levels of the CPU kernels and the run-time choice between them.
//
// Every hot kernel is a template on the vector width in bytes (VB, simd.hpp) and is compiled
// once per level with that level's target attribute: AVX-512 (x86-64-v4, VB = 64), AVX2
// (x86-64-v3, VB = 32) and the baseline (VB = 16).  The best level the CPU supports is chosen
// at run time; set_active_isa() lowers it (tests of every level on one machine, benchmarks of
// the AVX2 code on an AVX-512 machine).  Builds without target attributes (other compilers,
// other architectures) have the baseline only.  Results are bitwise reproducible for a given
// level; levels differ in the last bits (vector width sets the summation order).
#pragma once

#include <type_traits>

// CX_NO_ISA_VARIANTS: build the baseline only (what other compilers and CPUs get), for tests.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && (__GNUC__ >= 11) && \
    !defined(CX_NO_ISA_VARIANTS)
#define CX_ISA_VARIANTS 1
#define CX_TARGET_VB64 __attribute__((target("arch=x86-64-v4")))
#define CX_TARGET_VB32 __attribute__((target("arch=x86-64-v3")))
#else
#define CX_ISA_VARIANTS 0
#define CX_TARGET_VB64
#define CX_TARGET_VB32
#endif

namespace contrastx::cpu {

enum class Isa : int { baseline = 0, avx2 = 1, avx512 = 2 };

Isa best_isa();                // the best level of this CPU and this build (detected once)
Isa active_isa();              // the level the kernels use now
void set_active_isa(Isa isa);  // std::invalid_argument above best_isa(); thread-safe
const char* isa_name(Isa isa);  // "avx512", "avx2", "baseline"

constexpr int isa_vector_bytes(Isa isa) {
    return isa == Isa::avx512 ? 64 : isa == Isa::avx2 ? 32 : 16;
}

// f(std::integral_constant<int, VB>{}) with the vector width of `isa`.  A driver reads
// active_isa() once and passes it down, so data layouts and kernels agree on the width even if
// another thread changes the level meanwhile.
template <typename F>
void with_vector_bytes(Isa isa, F&& f) {
#if CX_ISA_VARIANTS
    switch (isa) {
        case Isa::avx512:
            f(std::integral_constant<int, 64>{});
            return;
        case Isa::avx2:
            f(std::integral_constant<int, 32>{});
            return;
        default:
            break;
    }
#else
    (void)isa;
#endif
    f(std::integral_constant<int, 16>{});
}

}  // namespace contrastx::cpu

// Defines NAME<VB>(args...): calls IMPL<VB>(args...) compiled for the level of VB.  IMPL is a
// function template whose first template parameter is VB and whose others are deduced from the
// arguments; it and everything it calls must be always-inline, so that the whole body is
// generated inside the target-attributed function.
#define CX_ISA_KERNEL(NAME, IMPL)                                                   \
    template <typename... A>                                                        \
    CX_TARGET_VB64 __attribute__((noinline)) void NAME##_vb64(A... a) {             \
        IMPL<64>(a...);                                                             \
    }                                                                               \
    template <typename... A>                                                        \
    CX_TARGET_VB32 __attribute__((noinline)) void NAME##_vb32(A... a) {             \
        IMPL<32>(a...);                                                             \
    }                                                                               \
    template <typename... A>                                                        \
    __attribute__((noinline)) void NAME##_vb16(A... a) {                            \
        IMPL<16>(a...);                                                             \
    }                                                                               \
    template <int VB, typename... A>                                                \
    inline void NAME(A... a) {                                                      \
        if constexpr (VB == 64)                                                     \
            NAME##_vb64(a...);                                                      \
        else if constexpr (VB == 32)                                                \
            NAME##_vb32(a...);                                                      \
        else                                                                        \
            NAME##_vb16(a...);                                                      \
    }
