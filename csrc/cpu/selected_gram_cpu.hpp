// CPU kernels: Gram products of row selections of one stored feature matrix.
//
// z is an (n, m) row-major matrix (the whitened kernel features of an NPLM data pool), and a
// selection S_s is a set of its rows, given in CSC form: the rows of selection s are
// rows[ptr[s] .. ptr[s+1]), strictly increasing, each in [0, n).  For right-hand side j
// (one per entry of cols, selection s = cols[j]):
//
//   selected_gram_matvec:  out_j = sum_{i in S_s} z_i (z_i . v_j)     (= Z_S^T Z_S v_j)
//   selected_row_sums:     out_j = sum_{i in S_s} z_i                 (= Z_S^T 1)
//
// v and out are (b, m) row-major float64 (one right-hand side per row); z is float64, float32
// or int16 with a float64 scale per row (z_i = row_scale[i] * q_i).
//
// Arithmetic::float64: rows converted to float64 on load, float64 arithmetic throughout.
// Arithmetic::float32 (float32 and int16 rows; float64 rows keep float64 arithmetic): v is
// rounded to float32 once, the dot products run in float32 per SIMD lane (summed across the
// lanes in float64), and out is summed in float32 over the rows of one chunk of z (128 rows;
// a right-hand side's share of them) and in float64 across chunks.  Twice the SIMD lanes and
// half the bytes per loaded entry; the rounding is that of float32 dot products of length
// m / lanes.
//
// Each output row is a sum over its selection's rows in increasing row order, and each dot
// product has a fixed order, so the result of a right-hand side does not depend on the
// others, on b or on the thread count.  Work is O(m |S_s|) per right-hand side instead of
// the O(m n) of a dense masked product.  num_threads <= 0 means the OpenMP default.
#pragma once

#include <cstdint>

namespace contrastx::cpu {

enum class Arithmetic { float64, float32 };

void selected_gram_matvec(const double* z, std::int64_t n, std::int64_t m, const std::int64_t* ptr,
                          const std::int32_t* rows, std::int64_t n_sel, const std::int64_t* cols,
                          std::int64_t b, const double* v, double* out, int num_threads,
                          Arithmetic arithmetic = Arithmetic::float64);
void selected_gram_matvec(const float* z, std::int64_t n, std::int64_t m, const std::int64_t* ptr,
                          const std::int32_t* rows, std::int64_t n_sel, const std::int64_t* cols,
                          std::int64_t b, const double* v, double* out, int num_threads,
                          Arithmetic arithmetic = Arithmetic::float64);

void selected_gram_matvec(const std::int16_t* z, const double* row_scale, std::int64_t n,
                          std::int64_t m, const std::int64_t* ptr, const std::int32_t* rows,
                          std::int64_t n_sel, const std::int64_t* cols, std::int64_t b,
                          const double* v, double* out, int num_threads,
                          Arithmetic arithmetic = Arithmetic::float64);

void selected_row_sums(const double* z, std::int64_t n, std::int64_t m, const std::int64_t* ptr,
                       const std::int32_t* rows, std::int64_t n_sel, const std::int64_t* cols,
                       std::int64_t b, double* out, int num_threads,
                       Arithmetic arithmetic = Arithmetic::float64);
void selected_row_sums(const float* z, std::int64_t n, std::int64_t m, const std::int64_t* ptr,
                       const std::int32_t* rows, std::int64_t n_sel, const std::int64_t* cols,
                       std::int64_t b, double* out, int num_threads,
                       Arithmetic arithmetic = Arithmetic::float64);

void selected_row_sums(const std::int16_t* z, const double* row_scale, std::int64_t n,
                       std::int64_t m, const std::int64_t* ptr, const std::int32_t* rows,
                       std::int64_t n_sel, const std::int64_t* cols, std::int64_t b, double* out,
                       int num_threads, Arithmetic arithmetic = Arithmetic::float64);

// 16-bit storage of the rows of z (n, m) float64 with column scales c (m, > 0): u_ij = z_ij / c_j,
// row_scale_i = max_j |u_ij| / 32767, q_ij = round half to even(u_ij / row_scale_i) (divided by
// 1 where row_scale_i = 0), clamped to +-32767 -- the same operations, in the same order, as
// the torch reference QuantizedRows.assign, so the same values bitwise.  Returns false (q
// then undefined) if z holds NaN or inf.
bool quantize_rows(const double* z, std::int64_t n, std::int64_t m, const double* col_scale,
                   std::int16_t* q, double* row_scale, int num_threads);

}  // namespace contrastx::cpu
