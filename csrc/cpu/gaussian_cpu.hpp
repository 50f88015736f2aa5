// CPU kernels: fused Gaussian kernel product out = K(X, C) @ V.
#pragma once

#include <cstdint>

namespace contrastx::cpu {

// out (n, b) = K(x, c) @ v with K_ij = exp(-|x_i - c_j|^2 / (2 sigma^2)).
// x: (n, d), c: (m, d), v: (m, b), out: (n, b); all C-contiguous, row-major.
// The n x m kernel matrix is never materialised. num_threads <= 0 means the OpenMP default.
void gaussian_matvec(const double* x, const double* c, const double* v, double* out, std::int64_t n,
                     std::int64_t m, std::int64_t d, std::int64_t b, double sigma, int num_threads);

// float32 inputs and output; accumulate_f64 evaluates distances, exp and sums in float64.
void gaussian_matvec(const float* x, const float* c, const float* v, float* out, std::int64_t n,
                     std::int64_t m, std::int64_t d, std::int64_t b, double sigma, bool accumulate_f64,
                     int num_threads);

// out (b) = sum_i exp((K(x, c) @ v)_{ib}): the exponentials of gaussian_matvec's values summed
// over the rows (in fixed blocks of rows, each summed in row order, the blocks' sums in
// order), bitwise independent of num_threads and of the other columns of v.  float64.
void gaussian_matvec_exp_sum(const double* x, const double* c, const double* v, double* out,
                             std::int64_t n, std::int64_t m, std::int64_t d, std::int64_t b,
                             double sigma, int num_threads);

// out (n, m) = K(x, c), the kernel values of gaussian_matvec written out.  Bitwise independent
// of num_threads.
void gaussian_tile(const double* x, const double* c, double* out, std::int64_t n, std::int64_t m,
                   std::int64_t d, double sigma, int num_threads);
void gaussian_tile(const float* x, const float* c, float* out, std::int64_t n, std::int64_t m,
                   std::int64_t d, double sigma, bool accumulate_f64, int num_threads);

// out (m, b) = K(x, c)^T diag(w) u: x (n, d), c (m, d), u (n, b), w (n) or nullptr (all 1).
// Bitwise independent of num_threads (fixed row segments summed in order).
void gaussian_t_matvec(const double* x, const double* c, const double* u, const double* w,
                       double* out, std::int64_t n, std::int64_t m, std::int64_t d, std::int64_t b,
                       double sigma, int num_threads);
void gaussian_t_matvec(const float* x, const float* c, const float* u, const float* w, float* out,
                       std::int64_t n, std::int64_t m, std::int64_t d, std::int64_t b, double sigma,
                       bool accumulate_f64, int num_threads);

// out (m, m) = K(x, c)^T diag(w) K(x, c) (w nullptr: all 1), symmetric.  Bitwise independent
// of num_threads (every entry sums the rows in order).
void gaussian_weighted_gram(const double* x, const double* c, const double* w, double* out,
                            std::int64_t n, std::int64_t m, std::int64_t d, double sigma,
                            int num_threads);
void gaussian_weighted_gram(const float* x, const float* c, const float* w, float* out,
                            std::int64_t n, std::int64_t m, std::int64_t d, double sigma,
                            bool accumulate_f64, int num_threads);

bool openmp_enabled();
int openmp_max_threads();

}  // namespace contrastx::cpu
