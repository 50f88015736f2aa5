// CUDA transposed Gaussian kernel product out = K(X, C)^T diag(w) U.  Plain C++ header: no CUDA
// headers, so bindings.cpp is compiled by the C++ compiler.  Only available when built with
// CONTRASTX_WITH_CUDA.
#pragma once

#include <cstdint>

namespace contrastx::cuda {

// Number of row segments used for n rows (a pure function of n: min(64, max(1, ceil(n / 4096)))).
// Each segment's partial result is written to its own slice of the workspace and the slices are
// summed in order, so results depend on n only (no atomics, bitwise reproducible).
std::int64_t gaussian_t_segments(std::int64_t n);

// Bytes of device workspace gaussian_t_matvec needs: gaussian_t_segments(n) * m * b elements of
// the accumulation type (double when accumulate_in_double: float64 inputs, or float32 inputs with
// accumulate_f64; float otherwise).
std::int64_t gaussian_t_workspace_bytes(std::int64_t n, std::int64_t m, std::int64_t b,
                                        bool accumulate_in_double);

// out (m, b) = K(x, c)^T diag(w) u with K_ij = exp(-|x_i - c_j|^2 / (2 sigma^2)), on the current
// CUDA device, enqueued on `stream` (a cudaStream_t passed as an integer; 0 is the legacy default
// stream).  x (n, d), c (m, d), u (n, b), w (n) or nullptr (all ones), out (m, b): device
// pointers to C-contiguous row-major arrays.  `workspace`: caller-allocated device scratch of
// gaussian_t_workspace_bytes(n, m, b, ...) bytes (double for the float64 overload; double when
// accumulate_f64, else float, for the float32 overload).  Asynchronous: returns after the
// launches.  Throws std::invalid_argument on bad sizes and std::runtime_error on a launch error.
void gaussian_t_matvec(const double* x, const double* c, const double* u, const double* w,
                       double* workspace, double* out, std::int64_t n, std::int64_t m,
                       std::int64_t d, std::int64_t b, double sigma, std::uintptr_t stream);
void gaussian_t_matvec(const float* x, const float* c, const float* u, const float* w,
                       void* workspace, float* out, std::int64_t n, std::int64_t m, std::int64_t d,
                       std::int64_t b, double sigma, bool accumulate_f64, std::uintptr_t stream);

}  // namespace contrastx::cuda
