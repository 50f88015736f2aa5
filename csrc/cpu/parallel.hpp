// What every CPU kernel needs for dispatch and threading: the target_clones attribute (the
// best ISA variant of a hot function is chosen at load time, so wheels stay portable) and
// the OpenMP thread helpers (which compile to one thread without OpenMP).
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && (__GNUC__ >= 11) && \
    defined(__linux__)
#define CX_HAVE_CLONES 1
#define CX_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CX_HAVE_CLONES 0
#define CX_CLONES
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
