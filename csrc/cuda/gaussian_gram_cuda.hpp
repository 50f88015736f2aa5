// CUDA weighted Gaussian Gram matrix out = K(X, C)^T diag(w) K(X, C).  Plain C++ header: no CUDA
// headers, so bindings.cpp is compiled by the C++ compiler.  Only available when built with
// CONTRASTX_WITH_CUDA.
#pragma once

#include <cstdint>

namespace contrastx::cuda {

// Number of row segments used for n rows (a pure function of n: min(32, max(1, ceil(n / 8192)))).
// Each segment's partial Gram matrix is written to its own slice of the workspace and the slices
// are summed in order, so results depend on the inputs and sizes only (no atomics, bitwise
// reproducible).
std::int64_t gaussian_gram_segments(std::int64_t n);

// Bytes of device workspace gaussian_weighted_gram needs: gaussian_gram_segments(n) * m * m
// elements of the accumulation type (double when accumulate_in_double: float64 inputs, or float32
// inputs with accumulate_f64; float otherwise).  No other scratch is used.  Throws
// std::invalid_argument on negative sizes or when the byte count overflows std::int64_t.
std::int64_t gaussian_gram_workspace_bytes(std::int64_t n, std::int64_t m,
                                           bool accumulate_in_double);

// out (m, m) = K(x, c)^T diag(w) K(x, c) with K_ij = exp(-|x_i - c_j|^2 / (2 sigma^2)), on the
// current CUDA device, enqueued on `stream` (a cudaStream_t passed as an integer; 0 is the legacy
// default stream).  x (n, d), c (m, d), w (n) or nullptr (all ones), out (m, m): device pointers
// to C-contiguous row-major arrays (x and c may be nullptr when d == 0 or n == 0).  out is exactly
// symmetric: the upper triangle is computed and mirrored.  `workspace`: caller-allocated device
// scratch of gaussian_gram_workspace_bytes(n, m, ...) bytes (double for the float64 overload;
// double when accumulate_f64, else float, for the float32 overload), suitably aligned (any
// cudaMalloc / caching-allocator block is), not overlapping out; unused when n == 0 or m == 0.
// Asynchronous: returns after the launches.  Throws std::invalid_argument on bad sizes (negative,
// sigma not > 0, m too large for the launch grid) and std::runtime_error on a launch error.
void gaussian_weighted_gram(const double* x, const double* c, const double* w, void* workspace,
                            double* out, std::int64_t n, std::int64_t m, std::int64_t d,
                            double sigma, std::uintptr_t stream);
void gaussian_weighted_gram(const float* x, const float* c, const float* w, void* workspace,
                            float* out, std::int64_t n, std::int64_t m, std::int64_t d,
                            double sigma, bool accumulate_f64, std::uintptr_t stream);

}  // namespace contrastx::cuda
