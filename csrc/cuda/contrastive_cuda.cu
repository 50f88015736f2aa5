// Streaming contrastive losses (SupCon / NT-Xent) on CUDA, the scheme of the CPU kernels.
//
// 1. norm kernel: inv[i] = 1 / max(|x_i|, eps) (1 without normalisation), so z_i = x_i inv[i].
// 2. forward: one thread owns one anchor row i; a block of kThreads rows walks over the
//    candidates in tiles of kTN columns, staged (normalised) in shared memory in feature chunks
//    of kDC and read as broadcasts; each thread keeps kTN dot products in registers, then
//    updates its online log-sum-exp (running max and rescaled sum) and the sum of its
//    positives' similarities; writes lse (M) and row_loss (M).
// 3. backward: same walk; for each tile the thread forms
//    h_ik = w_i e^{s_ik - L_i} + w_k e^{s_ik - L_k} - (c_i + c_k)[y_k = y_i]  (k != i)
//    and accumulates h_ik z_k for the kDG features of its blockIdx.y (the similarities are
//    recomputed once per feature group), writing dL/dz_i * grad_scale into grad_x.
// 4. norm backward (in place, one thread per row): dx_i = (g_i - z_i (z_i . g_i)) inv[i] when
//    |x_i| >= eps, else g_i / eps.
// Memory: O(M D); the M x M similarity matrix never exists.
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "contrastive_cuda.hpp"
#include "runtime_errors.hpp"

namespace contrastx::cuda {
namespace {

using i64 = std::int64_t;

constexpr int kThreads = 128;  // anchor rows per block
constexpr int kDC = 16;        // features per shared-memory chunk
constexpr int kDG = 32;        // gradient features per thread (blockIdx.y picks the group)

template <typename T>
struct TileN {
    static constexpr int value = sizeof(T) == 8 ? 16 : 32;  // candidates per tile
};

__device__ __forceinline__ float exp_t(float a) { return expf(a); }
__device__ __forceinline__ double exp_t(double a) { return exp(a); }
__device__ __forceinline__ float log_t(float a) { return logf(a); }
__device__ __forceinline__ double log_t(double a) { return log(a); }

template <typename T>
__device__ __forceinline__ T inf_t();
template <>
__device__ __forceinline__ float inf_t<float>() {
    return __int_as_float(0x7f800000);
}
template <>
__device__ __forceinline__ double inf_t<double>() {
    return __longlong_as_double(0x7ff0000000000000LL);
}

// The squared norm and the eps floor are float64, as on the CPU (in float32 |x_i|^2 overflows
// for |x_i| > ~1.8e19, which gave z_i = 0).
template <typename T>
__global__ void norm_kernel(const T* __restrict__ x, T* __restrict__ inv, i64 m, int d,
                            bool normalize, double eps) {
    const i64 i = static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= m) return;
    if (!normalize) {
        inv[i] = T(1);
        return;
    }
    double s = 0.0;
    for (int k = 0; k < d; ++k) {
        const double v = static_cast<double>(x[i * d + k]);
        s = fma(v, v, s);
    }
    inv[i] = static_cast<T>(1.0 / fmax(sqrt(s), eps));
}

// Dot products of the (normalised, 1/tau-scaled) row i with the kTN candidates of tile j0.
template <typename T, int kTN>
__device__ __forceinline__ void tile_dots(const T* __restrict__ x, const T* __restrict__ inv,
                                          i64 m, int d, i64 j0, bool row_ok, const T* xi,
                                          T xscale, T (&cs)[kTN][kDC + 1], T (&dot)[kTN]) {
#pragma unroll
    for (int jj = 0; jj < kTN; ++jj) dot[jj] = T(0);
    for (int k0 = 0; k0 < d; k0 += kDC) {
        __syncthreads();  // previous users of cs are done
        for (int e = threadIdx.x; e < kTN * kDC; e += kThreads) {
            const int jj = e / kDC, kk = e % kDC;
            const i64 j = j0 + jj;
            cs[jj][kk] = (j < m && k0 + kk < d) ? x[j * d + k0 + kk] * inv[j] : T(0);
        }
        T xr[kDC];
#pragma unroll
        for (int kk = 0; kk < kDC; ++kk)
            xr[kk] = (row_ok && k0 + kk < d) ? xi[k0 + kk] * xscale : T(0);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kDC; ++kk)
#pragma unroll
            for (int jj = 0; jj < kTN; ++jj) dot[jj] = fma(xr[kk], cs[jj][kk], dot[jj]);
    }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    supcon_forward_kernel(const T* __restrict__ x, const i64* __restrict__ labels,
                          const T* __restrict__ w, const T* __restrict__ c,
                          const T* __restrict__ inv, T* __restrict__ lse,
                          T* __restrict__ row_loss, i64 m, int d, T inv_tau) {
    constexpr int kTN = TileN<T>::value;
    __shared__ T cs[kTN][kDC + 1];
    __shared__ i64 labs[kTN];

    const i64 i = static_cast<i64>(blockIdx.x) * kThreads + threadIdx.x;
    const bool row_ok = i < m;
    const i64 ic = row_ok ? i : 0;
    const T* xi = x + ic * d;
    const T xscale = inv[ic] * inv_tau;
    const i64 yi = labels[ic];
    const T wi = row_ok ? w[ic] : T(0);

    T mx = -inf_t<T>(), sum = T(0), pos = T(0);
    for (i64 j0 = 0; j0 < m; j0 += kTN) {
        T dot[kTN];
        tile_dots<T, kTN>(x, inv, m, d, j0, row_ok, xi, xscale, cs, dot);
        __syncthreads();
        if (threadIdx.x < kTN) labs[threadIdx.x] = j0 + threadIdx.x < m ? labels[j0 + threadIdx.x] : -1;
        __syncthreads();
        if (wi != T(0)) {  // uniform work otherwise skipped; all threads reach the barriers
            T tmax = -inf_t<T>();
#pragma unroll
            for (int jj = 0; jj < kTN; ++jj) {
                const i64 j = j0 + jj;
                if (j < m && j != i) tmax = fmax(tmax, dot[jj]);
            }
            if (tmax != -inf_t<T>()) {
                const T mnew = fmax(mx, tmax);
                sum *= exp_t(mx - mnew);
#pragma unroll
                for (int jj = 0; jj < kTN; ++jj) {
                    const i64 j = j0 + jj;
                    if (j < m && j != i) {
                        sum += exp_t(dot[jj] - mnew);
                        if (labs[jj] == yi) pos += dot[jj];
                    }
                }
                mx = mnew;
            }
        }
    }
    if (row_ok) {
        if (wi == T(0)) {
            lse[i] = inf_t<T>();
            row_loss[i] = T(0);
        } else {
            const T l = mx + log_t(sum);
            lse[i] = l;
            row_loss[i] = wi * l - c[i] * pos;
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    supcon_backward_kernel(const T* __restrict__ x, const i64* __restrict__ labels,
                           const T* __restrict__ w, const T* __restrict__ c,
                           const T* __restrict__ lse, const T* __restrict__ inv,
                           T* __restrict__ grad, i64 m, int d, T inv_tau, T gscale) {
    constexpr int kTN = TileN<T>::value;
    __shared__ T cs[kTN][kDC + 1];
    __shared__ T zs[kTN][kDG + 1];
    __shared__ i64 labs[kTN];
    __shared__ T ls[kTN], ws[kTN], cps[kTN];

    const i64 i = static_cast<i64>(blockIdx.x) * kThreads + threadIdx.x;
    const int f0 = blockIdx.y * kDG;
    const bool row_ok = i < m;
    const i64 ic = row_ok ? i : 0;
    const T* xi = x + ic * d;
    const T xscale = inv[ic] * inv_tau;
    const i64 yi = labels[ic];
    const T wi = w[ic], ci = c[ic], li = lse[ic];

    T acc[kDG];
#pragma unroll
    for (int f = 0; f < kDG; ++f) acc[f] = T(0);

    for (i64 j0 = 0; j0 < m; j0 += kTN) {
        T dot[kTN];
        tile_dots<T, kTN>(x, inv, m, d, j0, row_ok, xi, xscale, cs, dot);
        __syncthreads();
        for (int e = threadIdx.x; e < kTN * kDG; e += kThreads) {
            const int jj = e / kDG, f = e % kDG;
            const i64 j = j0 + jj;
            zs[jj][f] = (j < m && f0 + f < d) ? x[j * d + f0 + f] * inv[j] : T(0);
        }
        if (threadIdx.x < kTN) {
            const i64 j = j0 + threadIdx.x;
            const bool ok = j < m;
            labs[threadIdx.x] = ok ? labels[j] : -1;
            ls[threadIdx.x] = ok ? lse[j] : inf_t<T>();
            ws[threadIdx.x] = ok ? w[j] : T(0);
            cps[threadIdx.x] = ok ? c[j] : T(0);
        }
        __syncthreads();
#pragma unroll
        for (int jj = 0; jj < kTN; ++jj) {
            const i64 j = j0 + jj;
            T h = T(0);
            if (j < m && j != i) {
                const T s = dot[jj];
                // lse = +inf (no positive) gives exp(-inf) = 0.
                h = wi * exp_t(s - li) + ws[jj] * exp_t(s - ls[jj]);
                if (labs[jj] == yi) h -= ci + cps[jj];
            }
#pragma unroll
            for (int f = 0; f < kDG; ++f) acc[f] = fma(h, zs[jj][f], acc[f]);
        }
    }
    if (row_ok) {
        const T f = gscale * inv_tau;
#pragma unroll
        for (int ff = 0; ff < kDG; ++ff)
            if (f0 + ff < d) grad[i * d + f0 + ff] = acc[ff] * f;
    }
}

template <typename T>
__global__ void norm_backward_kernel(const T* __restrict__ x, const T* __restrict__ inv,
                                     T* __restrict__ grad, i64 m, int d, double eps) {
    const i64 i = static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= m) return;
    const T iv = inv[i];
    T* g = grad + i * d;
    const T* xi = x + i * d;
    double nn = 0.0;  // as in norm_kernel
    T dot = T(0);
    for (int k = 0; k < d; ++k) {
        const double v = static_cast<double>(xi[k]);
        nn = fma(v, v, nn);
    }
    // |x_i| >= eps: project out the radial component (below eps, z = x / eps is linear).
    if (sqrt(nn) >= eps)
        for (int k = 0; k < d; ++k) dot = fma(xi[k] * iv, g[k], dot);
    for (int k = 0; k < d; ++k) g[k] = (g[k] - xi[k] * iv * dot) * iv;
}

using detail::check;

void check_args(i64 m, i64 d, double tau, double eps) {
    if (m < 0 || d < 0) throw std::invalid_argument("negative size");
    if (d > 0x7fffffffLL) throw std::invalid_argument("contrastx CUDA: too many features");
    if ((m + kThreads - 1) / kThreads > 0x7fffffffLL)
        throw std::invalid_argument("contrastx CUDA: too many rows");
    if (!(tau > 0.0)) throw std::invalid_argument("tau must be > 0");
    if (!(eps > 0.0)) throw std::invalid_argument("eps must be > 0");
}

template <typename T>
void forward(const T* x, const i64* labels, const T* w, const T* c, T* lse, T* row_loss, T* inv,
             i64 m, i64 d, double tau, bool normalize, double eps, std::uintptr_t handle) {
    check_args(m, d, tau, eps);
    if (m == 0) return;
    auto stream = reinterpret_cast<cudaStream_t>(handle);
    const unsigned blocks = static_cast<unsigned>((m + kThreads - 1) / kThreads);
    norm_kernel<T><<<blocks, kThreads, 0, stream>>>(x, inv, m, static_cast<int>(d), normalize,
                                                    eps);
    check(cudaGetLastError(), "norm kernel launch");
    supcon_forward_kernel<T><<<blocks, kThreads, 0, stream>>>(
        x, labels, w, c, inv, lse, row_loss, m, static_cast<int>(d), static_cast<T>(1.0 / tau));
    check(cudaGetLastError(), "forward kernel launch");
}

template <typename T>
void backward(const T* x, const i64* labels, const T* w, const T* c, const T* lse, T* grad,
              T* inv, i64 m, i64 d, double tau, bool normalize, double eps, double grad_scale,
              std::uintptr_t handle) {
    check_args(m, d, tau, eps);
    if (m == 0 || d == 0) return;
    auto stream = reinterpret_cast<cudaStream_t>(handle);
    const unsigned blocks = static_cast<unsigned>((m + kThreads - 1) / kThreads);
    const i64 groups = (d + kDG - 1) / kDG;
    if (groups > 65535) throw std::invalid_argument("contrastx CUDA: too many features");
    norm_kernel<T><<<blocks, kThreads, 0, stream>>>(x, inv, m, static_cast<int>(d), normalize,
                                                    eps);
    check(cudaGetLastError(), "norm kernel launch");
    const dim3 grid(blocks, static_cast<unsigned>(groups));
    supcon_backward_kernel<T><<<grid, kThreads, 0, stream>>>(
        x, labels, w, c, lse, inv, grad, m, static_cast<int>(d), static_cast<T>(1.0 / tau),
        static_cast<T>(grad_scale));
    check(cudaGetLastError(), "backward kernel launch");
    if (normalize) {
        norm_backward_kernel<T><<<blocks, kThreads, 0, stream>>>(x, inv, grad, m,
                                                                 static_cast<int>(d), eps);
        check(cudaGetLastError(), "norm backward kernel launch");
    }
}

}  // namespace

void supcon_forward(const double* x, const i64* labels, const double* w, const double* c,
                    double* lse, double* row_loss, double* inv_norm, i64 m, i64 d, double tau,
                    bool normalize, double eps, std::uintptr_t stream) {
    forward<double>(x, labels, w, c, lse, row_loss, inv_norm, m, d, tau, normalize, eps, stream);
}
void supcon_forward(const float* x, const i64* labels, const float* w, const float* c, float* lse,
                    float* row_loss, float* inv_norm, i64 m, i64 d, double tau, bool normalize,
                    double eps, std::uintptr_t stream) {
    forward<float>(x, labels, w, c, lse, row_loss, inv_norm, m, d, tau, normalize, eps, stream);
}
void supcon_backward(const double* x, const i64* labels, const double* w, const double* c,
                     const double* lse, double* grad_x, double* inv_norm, i64 m, i64 d,
                     double tau, bool normalize, double eps, double grad_scale,
                     std::uintptr_t stream) {
    backward<double>(x, labels, w, c, lse, grad_x, inv_norm, m, d, tau, normalize, eps,
                     grad_scale, stream);
}
void supcon_backward(const float* x, const i64* labels, const float* w, const float* c,
                     const float* lse, float* grad_x, float* inv_norm, i64 m, i64 d, double tau,
                     bool normalize, double eps, double grad_scale, std::uintptr_t stream) {
    backward<float>(x, labels, w, c, lse, grad_x, inv_norm, m, d, tau, normalize, eps,
                    grad_scale, stream);
}

}  // namespace contrastx::cuda
