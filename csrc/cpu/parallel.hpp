// The OpenMP thread helpers every CPU kernel uses (they compile to one thread without OpenMP).
// Instruction-set dispatch lives in isa.hpp.
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif


namespace contrastx::cpu::detail {

// Threads to use: the request (<= 0: the OpenMP default), at most one per work item, >= 1.
inline int resolve_threads(int requested, std::int64_t work_items) {
#ifdef _OPENMP
    const int nt = requested > 0 ? requested : omp_get_max_threads();
#else
    (void)requested;
    const int nt = 1;
#endif
    return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(nt, work_items)));
}

inline int thread_id() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// Threads in the current team: OpenMP may start fewer than num_threads asked for, so code that
// splits work by thread id must use this, not the request.
inline int team_size() {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

}  // namespace contrastx::cpu::detail
