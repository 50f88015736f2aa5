// CUDA kernels for the streaming contrastive losses (SupCon / NT-Xent).  Plain C++ header.
// Same contract as contrastx::cpu::supcon_forward / supcon_backward (see contrastive_cpu.hpp);
// all pointers are device pointers on the current device, work is enqueued on `stream`
// (a cudaStream_t passed as an integer) and the calls return after the launches.
// inv_norm: caller-provided device workspace of M elements (1 / max(|x_i|, eps), or 1).
#pragma once

#include <cstdint>

namespace contrastx::cuda {

void supcon_forward(const double* x, const std::int64_t* labels, const double* w, const double* c,
                    double* lse, double* row_loss, double* inv_norm, std::int64_t m,
                    std::int64_t d, double tau, bool normalize, double eps, std::uintptr_t stream);
void supcon_forward(const float* x, const std::int64_t* labels, const float* w, const float* c,
                    float* lse, float* row_loss, float* inv_norm, std::int64_t m, std::int64_t d,
                    double tau, bool normalize, double eps, std::uintptr_t stream);

void supcon_backward(const double* x, const std::int64_t* labels, const double* w,
                     const double* c, const double* lse, double* grad_x, double* inv_norm,
                     std::int64_t m, std::int64_t d, double tau, bool normalize, double eps,
                     double grad_scale, std::uintptr_t stream);
void supcon_backward(const float* x, const std::int64_t* labels, const float* w, const float* c,
                     const float* lse, float* grad_x, float* inv_norm, std::int64_t m,
                     std::int64_t d, double tau, bool normalize, double eps, double grad_scale,
                     std::uintptr_t stream);

}  // namespace contrastx::cuda
