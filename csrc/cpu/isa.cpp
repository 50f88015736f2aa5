// Run-time choice of the CPU kernels' instruction-set level (isa.hpp).
#include "isa.hpp"

#include <atomic>
#include <stdexcept>
#include <string>

namespace contrastx::cpu {
namespace {

Isa detect() {
#if CX_ISA_VARIANTS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return Isa::avx512;
    if (__builtin_cpu_supports("x86-64-v3")) return Isa::avx2;
#endif
    return Isa::baseline;
}

std::atomic<int> g_active{-1};  // -1: best_isa()

}  // namespace

Isa best_isa() {
    static const Isa best = detect();
    return best;
}

Isa active_isa() {
    const int a = g_active.load(std::memory_order_relaxed);
    return a < 0 ? best_isa() : static_cast<Isa>(a);
}

void set_active_isa(Isa isa) {
    const int level = static_cast<int>(isa);
    if (level < 0 || level > static_cast<int>(Isa::avx512))
        throw std::invalid_argument("unknown instruction-set level");
    if (level > static_cast<int>(best_isa()))
        throw std::invalid_argument(std::string("instruction-set level ") + isa_name(isa) +
                                    " is not available (best here: " + isa_name(best_isa()) +
                                    ")");
    g_active.store(level, std::memory_order_relaxed);
}

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::avx512:
            return "avx512";
        case Isa::avx2:
            return "avx2";
        default:
            return "baseline";
    }
}

}  // namespace contrastx::cpu
