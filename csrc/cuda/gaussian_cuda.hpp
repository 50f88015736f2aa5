// CUDA kernels and runtime queries.  Plain C++ header: no CUDA headers, so bindings.cpp is
// compiled by the C++ compiler.  Only available when built with CONTRASTX_WITH_CUDA.
#pragma once

#include <cstdint>
#include <string>

namespace contrastx::cuda {

// out (n, b) = K(x, c) @ v on the current CUDA device, enqueued on `stream` (a cudaStream_t
// passed as an integer; 0 is the legacy default stream).  All pointers are device pointers to
// C-contiguous row-major arrays.  Asynchronous: returns after the launch.  Throws
// std::runtime_error on a launch error.
void gaussian_matvec(const double* x, const double* c, const double* v, double* out, std::int64_t n,
                     std::int64_t m, std::int64_t d, std::int64_t b, double sigma,
                     std::uintptr_t stream);
void gaussian_matvec(const float* x, const float* c, const float* v, float* out, std::int64_t n,
                     std::int64_t m, std::int64_t d, std::int64_t b, double sigma, bool accumulate_f64,
                     std::uintptr_t stream);

// Number of visible devices; 0 (never an exception) when there is no driver or GPU.  The
// error string of the failed query, if any, goes to *error.
int device_count(std::string* error);
// CUDA runtime version this module was linked with (e.g. 13000), and the driver's version
// (0 when no driver is installed).
int runtime_version();
int driver_version();

}  // namespace contrastx::cuda
