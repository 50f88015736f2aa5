// What every .cu file of the extension shares on the host side: CUDA runtime errors turned into
// exceptions, and the row-segment count of the kernels that sum fixed segments in order.
// Include after <cuda_runtime.h> (or, in tests, the CPU emulation's header that replaces it).
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace contrastx::cuda::detail {

inline void check(cudaError_t err, const char* what) {
    if (err != cudaSuccess)
        throw std::runtime_error(std::string("contrastx CUDA: ") + what + ": " +
                                 cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

// Segments of about `rows_per_segment` rows, at least 1 and at most `max_segments`; depends on
// n only, so results summed segment by segment do not depend on the launch.
inline std::int64_t segment_count(std::int64_t n, std::int64_t rows_per_segment,
                                  std::int64_t max_segments) {
    if (n < 0) throw std::invalid_argument("negative size");
    const std::int64_t s = (n + rows_per_segment - 1) / rows_per_segment;
    return std::min(max_segments, std::max<std::int64_t>(1, s));
}

}  // namespace contrastx::cuda::detail
