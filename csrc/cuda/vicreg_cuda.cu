// VICReg on CUDA, float64 arithmetic internally, the quantities of the CPU kernels
// (contrastive_cpu.cpp, vicreg_forward_run / vicreg_backward_run).  Deterministic: every
// reduction has a fixed order (no atomics), so results depend on the inputs only.
//
// Forward:
// 1. mean kernel: block of 32 features x 8 row lanes; each lane sums its rows in order, the 8
//    lanes are added in order; mean_v[a] -> state[v d + a].
// 2. covariance kernel: one block per 16 x 16 tile of feature pairs (upper tiles only) per
//    view; rows are staged (centred) in shared memory in chunks of kRT and each thread sums its
//    pair over the rows in order; C_ab = C_ba -> workspace.
// 3. row kernel: one block per (feature a, view): writes row a of G_v = dL/dC_v into the state
//    (gp columns, zero padding) and the row's hinge term max(0, gamma - sd_a) and
//    sum_{b != a} C_ab^2 (fixed tree reduction) -> workspace.
// 4. invariance kernel: kInvBlocks fixed blocks, grid-stride over the n d elements, tree
//    reduction per block -> workspace.
// 5. finalize kernel (one block): fixed-order sums of the partials -> out.
// Backward: one thread per (row, output feature) pair, 8 rows per thread; the centred rows and
// G are staged in shared memory in chunks of kAC features and the sum over a runs in order.
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "vicreg_cuda.hpp"
#include "runtime_errors.hpp"

namespace contrastx::cuda {
namespace {

using i64 = std::int64_t;

constexpr i64 kGB = 64;             // G row padding (the CPU's vicreg_grad_pad)
constexpr int kMeanF = 32;          // mean kernel: features per block
constexpr int kMeanR = 8;           // mean kernel: row lanes per block
constexpr int kCT = 16;             // covariance kernel: features per tile side
constexpr int kRT = 32;             // covariance kernel: rows per staged chunk
constexpr int kCovThreads = kCT * kCT;
constexpr int kRowThreads = 64;     // row kernel threads (kGB divides gp)
constexpr int kInvBlocks = 128;     // invariance kernel: fixed number of blocks
constexpr int kRedThreads = 256;    // invariance / finalize threads (power of two)
constexpr int kBCols = 64;          // backward: output features per block (threadIdx.x)
constexpr int kBLanes = 4;          // backward: row lanes per block (threadIdx.y)
constexpr int kBRowsPer = 8;        // backward: rows per thread
constexpr int kBRows = kBLanes * kBRowsPer;  // backward: rows per block
constexpr int kAC = 32;             // backward: features a per staged chunk

i64 grad_pad(i64 d) { return (d + kGB - 1) / kGB * kGB; }

// Workspace layout (float64 elements).
__host__ __device__ constexpr i64 ws_cov(i64) { return 0; }                      // 2 x d x d
__host__ __device__ constexpr i64 ws_hinge(i64 d) { return 2 * d * d; }          // 2 x d
__host__ __device__ constexpr i64 ws_covsq(i64 d) { return 2 * d * d + 2 * d; }  // 2 x d
__host__ __device__ constexpr i64 ws_inv(i64 d) { return 2 * d * d + 4 * d; }    // kInvBlocks
__host__ __device__ constexpr i64 ws_elems(i64 d) { return 2 * d * d + 4 * d + kInvBlocks; }

template <typename T>
__global__ void __launch_bounds__(kMeanF * kMeanR)
    mean_kernel(const T* __restrict__ z1, const T* __restrict__ z2, double* __restrict__ state,
                i64 n, i64 d) {
    __shared__ double red[kMeanR][kMeanF + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int v = blockIdx.y;
    const T* z = v == 0 ? z1 : z2;
    const i64 a = static_cast<i64>(blockIdx.x) * kMeanF + tx;
    double s = 0.0;
    if (a < d)
        for (i64 i = ty; i < n; i += kMeanR) s += static_cast<double>(z[i * d + a]);
    red[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && a < d) {
        double tot = red[0][tx];
        for (int y = 1; y < kMeanR; ++y) tot += red[y][tx];
        state[v * d + a] = tot / double(n);
    }
}

template <typename T>
__global__ void __launch_bounds__(kCovThreads)
    cov_kernel(const T* __restrict__ z1, const T* __restrict__ z2,
               const double* __restrict__ state, double* __restrict__ cov, i64 n, i64 d,
               double f) {
    if (blockIdx.y < blockIdx.x) return;  // lower tiles: mirrored by the upper ones (uniform)
    __shared__ double za[kRT][kCT + 1];
    __shared__ double zb[kRT][kCT + 1];
    const int v = blockIdx.z;
    const T* z = v == 0 ? z1 : z2;
    const double* mean = state + v * d;
    const i64 a0 = static_cast<i64>(blockIdx.x) * kCT, b0 = static_cast<i64>(blockIdx.y) * kCT;
    const int ta = threadIdx.x / kCT, tb = threadIdx.x % kCT;

    double acc = 0.0;
    for (i64 i0 = 0; i0 < n; i0 += kRT) {
        __syncthreads();  // previous chunk finished reading za / zb
        for (int e = threadIdx.x; e < kRT * kCT; e += kCovThreads) {
            const int r = e / kCT, k = e % kCT;
            const i64 i = i0 + r;
            const i64 fa = a0 + k, fb = b0 + k;
            za[r][k] = (i < n && fa < d) ? static_cast<double>(z[i * d + fa]) - mean[fa] : 0.0;
            zb[r][k] = (i < n && fb < d) ? static_cast<double>(z[i * d + fb]) - mean[fb] : 0.0;
        }
        __syncthreads();
#pragma unroll
        for (int r = 0; r < kRT; ++r) acc = fma(za[r][ta], zb[r][tb], acc);
    }
    const i64 a = a0 + ta, b = b0 + tb;
    if (a < d && b < d && a <= b) {
        double* c = cov + v * d * d;
        const double val = acc * f;
        c[a * d + b] = val;
        c[b * d + a] = val;
    }
}

__global__ void __launch_bounds__(kRowThreads)
    row_kernel(const double* __restrict__ cov, double* __restrict__ state,
               double* __restrict__ hinge, double* __restrict__ covsq, i64 d, i64 gp, double mu,
               double nu, double gamma, double eps) {
    __shared__ double red[kRowThreads];
    const i64 a = blockIdx.x;
    const int v = blockIdx.y;
    const double* c = cov + v * d * d + a * d;  // row a of C_v
    double* g = state + 2 * d + v * d * gp + a * gp;
    const double sd = sqrt(c[a] + eps);
    double cs = 0.0;
    for (i64 b = threadIdx.x; b < gp; b += kRowThreads) {
        double gab = 0.0;
        if (b < d && b != a) {
            const double cab = c[b];
            cs += cab * cab;
            gab = 2.0 * nu * cab / double(d);
        } else if (b == a) {
            gab = gamma - sd > 0.0 ? -mu / (2.0 * double(d) * sd) : 0.0;
        }
        g[b] = gab;
    }
    red[threadIdx.x] = cs;
    __syncthreads();
    for (int s = kRowThreads / 2; s > 0; s >>= 1) {
        if (static_cast<int>(threadIdx.x) < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        covsq[v * d + a] = red[0];
        hinge[v * d + a] = fmax(0.0, gamma - sd);
    }
}

// Fixed-order sum of red[0 .. kRedThreads) (tree); every thread returns the total.
__device__ double block_tree_sum(double s, double* red) {
    __syncthreads();  // previous users of red are done
    red[threadIdx.x] = s;
    __syncthreads();
    for (int k = kRedThreads / 2; k > 0; k >>= 1) {
        if (static_cast<int>(threadIdx.x) < k) red[threadIdx.x] += red[threadIdx.x + k];
        __syncthreads();
    }
    return red[0];
}

// Sum of p[0 .. len): thread t adds p[t], p[t + kRedThreads], ... in order, then the tree.
__device__ double block_sum(const double* __restrict__ p, i64 len, double* red) {
    double s = 0.0;
    for (i64 e = threadIdx.x; e < len; e += kRedThreads) s += p[e];
    return block_tree_sum(s, red);
}

template <typename T>
__global__ void __launch_bounds__(kRedThreads)
    inv_kernel(const T* __restrict__ z1, const T* __restrict__ z2, double* __restrict__ part,
               i64 nd) {
    __shared__ double red[kRedThreads];
    const i64 stride = static_cast<i64>(kInvBlocks) * kRedThreads;
    double s = 0.0;
    for (i64 e = static_cast<i64>(blockIdx.x) * kRedThreads + threadIdx.x; e < nd; e += stride) {
        const double df = static_cast<double>(z1[e]) - static_cast<double>(z2[e]);
        s += df * df;
    }
    const double tot = block_tree_sum(s, red);
    if (threadIdx.x == 0) part[blockIdx.x] = tot;
}

template <typename T>
__global__ void __launch_bounds__(kRedThreads)
    finalize_kernel(const double* __restrict__ ws, T* __restrict__ out, i64 n, i64 d, double lam,
                    double mu, double nu) {
    __shared__ double red[kRedThreads];
    double var = 0.0, covt = 0.0;
    for (int v = 0; v < 2; ++v) {
        var += block_sum(ws + ws_hinge(d) + v * d, d, red) / double(d);
        covt += block_sum(ws + ws_covsq(d) + v * d, d, red) / double(d);
    }
    const double inv = block_sum(ws + ws_inv(d), kInvBlocks, red) / double(n * d);
    if (threadIdx.x == 0) {
        out[0] = static_cast<T>(lam * inv + mu * var + nu * covt);
        out[1] = static_cast<T>(inv);
        out[2] = static_cast<T>(var);
        out[3] = static_cast<T>(covt);
    }
}

// g_v[i][b] = fc * sum_a (z_v[i][a] - mean_v[a]) G_v[a][b] + sgn_v fi (z1[i][b] - z2[i][b]).
template <typename T>
__global__ void __launch_bounds__(kBCols * kBLanes)
    backward_kernel(const T* __restrict__ z1, const T* __restrict__ z2,
                    const double* __restrict__ state, T* __restrict__ g1, T* __restrict__ g2,
                    i64 n, i64 d, i64 gp, double fc, double fi) {
    __shared__ double zs[kBRows][kAC + 1];
    __shared__ double gs[kAC][kBCols];
    const int v = blockIdx.z;
    const T* z = v == 0 ? z1 : z2;
    T* g = v == 0 ? g1 : g2;
    const double sfi = v == 0 ? fi : -fi;
    const double* mean = state + v * d;
    const double* G = state + 2 * d + v * d * gp;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * kBCols + tx;
    const i64 i0 = static_cast<i64>(blockIdx.x) * kBRows;
    const i64 b0 = static_cast<i64>(blockIdx.y) * kBCols;

    double acc[kBRowsPer];
#pragma unroll
    for (int r = 0; r < kBRowsPer; ++r) acc[r] = 0.0;

    for (i64 a0 = 0; a0 < d; a0 += kAC) {
        __syncthreads();  // previous chunk finished reading zs / gs
        for (int e = tid; e < kBRows * kAC; e += kBCols * kBLanes) {
            const int r = e / kAC, k = e % kAC;
            const i64 i = i0 + r, a = a0 + k;
            zs[r][k] = (i < n && a < d) ? static_cast<double>(z[i * d + a]) - mean[a] : 0.0;
        }
        for (int e = tid; e < kAC * kBCols; e += kBCols * kBLanes) {
            const int k = e / kBCols, cc = e % kBCols;
            const i64 a = a0 + k, b = b0 + cc;
            gs[k][cc] = (a < d && b < d) ? G[a * gp + b] : 0.0;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < kAC; ++k) {
            const double gv = gs[k][tx];
#pragma unroll
            for (int r = 0; r < kBRowsPer; ++r)
                acc[r] = fma(zs[ty + kBLanes * r][k], gv, acc[r]);
        }
    }
    const i64 b = b0 + tx;
    if (b >= d) return;
#pragma unroll
    for (int r = 0; r < kBRowsPer; ++r) {
        const i64 i = i0 + ty + kBLanes * r;
        if (i < n) {
            const double diff = static_cast<double>(z1[i * d + b]) - static_cast<double>(z2[i * d + b]);
            g[i * d + b] = static_cast<T>(fc * acc[r] + sfi * diff);
        }
    }
}

using detail::check;

void check_args(i64 n, i64 d, double eps) {
    if (n < 2) throw std::invalid_argument("VICReg needs at least 2 rows");
    if (d < 1) throw std::invalid_argument("VICReg needs at least 1 feature");
    if (!(eps > 0.0)) throw std::invalid_argument("eps must be > 0");
    // Grid limits: covariance tiles (y), backward column groups (y), row blocks (x).
    if ((d + kCT - 1) / kCT > 65535 || grad_pad(d) / kBCols > 65535 || d > 0x7fffffffLL)
        throw std::invalid_argument("contrastx CUDA: too many features");
    if ((n + kBRows - 1) / kBRows > 0x7fffffffLL)
        throw std::invalid_argument("contrastx CUDA: too many rows");
}

template <typename T>
void forward(const T* z1, const T* z2, T* out, double* state, void* workspace, i64 n, i64 d,
             double lam, double mu, double nu, double gamma, double eps,
             std::uintptr_t handle) {
    check_args(n, d, eps);
    auto stream = reinterpret_cast<cudaStream_t>(handle);
    double* ws = static_cast<double*>(workspace);
    const i64 gp = grad_pad(d);

    const dim3 mgrid(static_cast<unsigned>((d + kMeanF - 1) / kMeanF), 2);
    mean_kernel<T><<<mgrid, dim3(kMeanF, kMeanR), 0, stream>>>(z1, z2, state, n, d);
    check(cudaGetLastError(), "mean kernel launch");

    const unsigned nb = static_cast<unsigned>((d + kCT - 1) / kCT);
    cov_kernel<T><<<dim3(nb, nb, 2), kCovThreads, 0, stream>>>(z1, z2, state, ws + ws_cov(d), n,
                                                               d, 1.0 / double(n - 1));
    check(cudaGetLastError(), "covariance kernel launch");

    row_kernel<<<dim3(static_cast<unsigned>(d), 2), kRowThreads, 0, stream>>>(
        ws + ws_cov(d), state, ws + ws_hinge(d), ws + ws_covsq(d), d, gp, mu, nu, gamma, eps);
    check(cudaGetLastError(), "row kernel launch");

    inv_kernel<T><<<kInvBlocks, kRedThreads, 0, stream>>>(z1, z2, ws + ws_inv(d), n * d);
    check(cudaGetLastError(), "invariance kernel launch");

    finalize_kernel<T><<<1, kRedThreads, 0, stream>>>(ws, out, n, d, lam, mu, nu);
    check(cudaGetLastError(), "finalize kernel launch");
}

template <typename T>
void backward(const T* z1, const T* z2, const double* state, T* g1, T* g2, i64 n, i64 d,
              double lam, double grad_scale, std::uintptr_t handle) {
    check_args(n, d, 1.0);
    auto stream = reinterpret_cast<cudaStream_t>(handle);
    const i64 gp = grad_pad(d);
    const double fc = grad_scale * 2.0 / double(n - 1);
    const double fi = grad_scale * 2.0 * lam / double(n * d);
    const dim3 grid(static_cast<unsigned>((n + kBRows - 1) / kBRows),
                    static_cast<unsigned>(gp / kBCols), 2);
    backward_kernel<T><<<grid, dim3(kBCols, kBLanes), 0, stream>>>(z1, z2, state, g1, g2, n, d,
                                                                   gp, fc, fi);
    check(cudaGetLastError(), "backward kernel launch");
}

}  // namespace

std::int64_t vicreg_cuda_workspace_bytes(std::int64_t n, std::int64_t d) {
    check_args(n, d, 1.0);
    return ws_elems(d) * static_cast<i64>(sizeof(double));
}

void vicreg_forward(const double* z1, const double* z2, double* out, double* state,
                    void* workspace, i64 n, i64 d, double lam, double mu, double nu, double gamma,
                    double eps, std::uintptr_t stream) {
    forward<double>(z1, z2, out, state, workspace, n, d, lam, mu, nu, gamma, eps, stream);
}
void vicreg_forward(const float* z1, const float* z2, float* out, double* state, void* workspace,
                    i64 n, i64 d, double lam, double mu, double nu, double gamma, double eps,
                    std::uintptr_t stream) {
    forward<float>(z1, z2, out, state, workspace, n, d, lam, mu, nu, gamma, eps, stream);
}
void vicreg_backward(const double* z1, const double* z2, const double* state, double* g1,
                     double* g2, i64 n, i64 d, double lam, double grad_scale,
                     std::uintptr_t stream) {
    backward<double>(z1, z2, state, g1, g2, n, d, lam, grad_scale, stream);
}
void vicreg_backward(const float* z1, const float* z2, const double* state, float* g1, float* g2,
                     i64 n, i64 d, double lam, double grad_scale, std::uintptr_t stream) {
    backward<float>(z1, z2, state, g1, g2, n, d, lam, grad_scale, stream);
}

}  // namespace contrastx::cuda
