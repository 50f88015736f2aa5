// CUDA kernels for VICReg.  Plain C++ header: no CUDA headers.  Same contract as
// contrastx::cpu::vicreg_forward / vicreg_backward (see contrastive_cpu.hpp), float64 arithmetic
// internally; all pointers are device pointers on the current device, work is enqueued on
// `stream` (a cudaStream_t passed as an integer) and the calls return after the launches.
// Deterministic: no floating-point atomics, fixed-order reductions.
#pragma once

#include <cstdint>

namespace contrastx::cuda {

// Bytes of device scratch the forward pass needs (float64: the two d x d covariances, per-feature
// partial sums and the invariance partial sums); caller-allocated, contents need no
// initialisation.  Throws std::invalid_argument for n < 2 or d < 1.
std::int64_t vicreg_cuda_workspace_bytes(std::int64_t n, std::int64_t d);

// z1, z2 (n x d, n >= 2, d >= 1): out (4 entries, input dtype) = [loss, invariance, variance,
// covariance]; state (float64, contrastx::cpu::vicreg_state_size(d) = 2 d + 2 d gp entries,
// gp = d rounded up to 64): the views' means and dL/dC per view, the CPU layout.
void vicreg_forward(const double* z1, const double* z2, double* out, double* state,
                    void* workspace, std::int64_t n, std::int64_t d, double lam, double mu,
                    double nu, double gamma, double eps, std::uintptr_t stream);
void vicreg_forward(const float* z1, const float* z2, float* out, double* state, void* workspace,
                    std::int64_t n, std::int64_t d, double lam, double mu, double nu,
                    double gamma, double eps, std::uintptr_t stream);

// g1, g2 (n x d) = grad_scale * d loss / d z1, z2, from the state of the forward pass on the
// same inputs (lam: the invariance weight).
void vicreg_backward(const double* z1, const double* z2, const double* state, double* g1,
                     double* g2, std::int64_t n, std::int64_t d, double lam, double grad_scale,
                     std::uintptr_t stream);
void vicreg_backward(const float* z1, const float* z2, const double* state, float* g1, float* g2,
                     std::int64_t n, std::int64_t d, double lam, double grad_scale,
                     std::uintptr_t stream);

}  // namespace contrastx::cuda
