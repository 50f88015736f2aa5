// CPU kernels: streaming contrastive similarity losses (SupCon / NT-Xent) and VICReg.
#pragma once

#include <cstdint>

namespace contrastx::cpu {

// Supervised contrastive loss over M rows x_i (M x D, row-major) with class ids
// labels[i] in [0, M), temperature tau and, if normalize, z_i = x_i / max(|x_i|, eps)
// (else z_i = x_i).  s_ik = z_i . z_k / tau,  L_i = log sum_{k != i} exp(s_ik).
// Per-row weights (computed by the caller): w_i = 1/|A| for anchors with a positive, else 0;
// c_i = w_i / |P(i)|.  Then
//   loss = sum_i w_i L_i - c_i sum_{p in P(i)} s_ip,   P(i) = {p != i : labels[p] == labels[i]}.
// NT-Xent is the special case labels = [0..N-1, 0..N-1].
//
// Forward writes lse[i] = L_i (+inf where w_i == 0, which the backward relies on) and
// row_loss[i] = w_i L_i - c_i sum_p s_ip (0 where w_i == 0).  Memory: O(M D) scratch; the
// M x M similarity matrix is streamed in tiles with an online log-sum-exp.
void supcon_forward(const double* x, const std::int64_t* labels, const double* w, const double* c,
                    double* lse, double* row_loss, std::int64_t m, std::int64_t d, double tau,
                    bool normalize, double eps, int num_threads);
void supcon_forward(const float* x, const std::int64_t* labels, const float* w, const float* c,
                    float* lse, float* row_loss, std::int64_t m, std::int64_t d, double tau,
                    bool normalize, double eps, int num_threads);

// grad_x (M x D) = grad_scale * d loss / d x, recomputing the similarities tile by tile from
// the lse of the forward:  d loss / d z_i = (1/tau) sum_k h_ik z_k with the symmetric
//   h_ik = w_i e^{s_ik - L_i} + w_k e^{s_ik - L_k} - (c_i + c_k) [k in P(i)]   (k != i),
// followed by the gradient of the normalisation.
void supcon_backward(const double* x, const std::int64_t* labels, const double* w,
                     const double* c, const double* lse, double* grad_x, std::int64_t m,
                     std::int64_t d, double tau, bool normalize, double eps, double grad_scale,
                     int num_threads);
void supcon_backward(const float* x, const std::int64_t* labels, const float* w, const float* c,
                     const float* lse, float* grad_x, std::int64_t m, std::int64_t d, double tau,
                     bool normalize, double eps, double grad_scale, int num_threads);

// VICReg of two views z1, z2 (N x D, N >= 2), evaluated in float64 internally:
//   out[0] = loss, out[1] = s (MSE), out[2] = v(z1) + v(z2), out[3] = c(z1) + c(z2).
// The forward pass also fills `state` (float64, vicreg_state_size(D) entries: the views' means
// and the gradients dL/dC of their covariances), which the backward pass reuses; the D x D
// covariances themselves live only in kernel scratch.
std::int64_t vicreg_state_size(std::int64_t d);
void vicreg_forward(const double* z1, const double* z2, double* out, double* state,
                    std::int64_t n, std::int64_t d, double lam, double mu, double nu, double gamma,
                    double eps, int num_threads);
void vicreg_forward(const float* z1, const float* z2, float* out, double* state, std::int64_t n,
                    std::int64_t d, double lam, double mu, double nu, double gamma, double eps,
                    int num_threads);
// g1, g2 (N x D) = grad_scale * d loss / d z1, z2, from the state of the forward pass on the
// same inputs (lam: the invariance weight).
void vicreg_backward(const double* z1, const double* z2, const double* state, double* g1,
                     double* g2, std::int64_t n, std::int64_t d, double lam, double grad_scale,
                     int num_threads);
void vicreg_backward(const float* z1, const float* z2, const double* state, float* g1, float* g2,
                     std::int64_t n, std::int64_t d, double lam, double grad_scale,
                     int num_threads);

}  // namespace contrastx::cpu
