// Fused Gaussian kernel product on CUDA: out = K(X, C) @ V without materialising K.
//
// One thread owns one row i of X and kBC consecutive output columns (blockIdx.y picks the
// column chunk).  A block of kThreads rows walks over the centres in tiles of kTM: the tile's
// centres (in feature chunks of kDC) and its kTM x kBC slice of V are staged in shared memory
// and read by every thread as broadcasts; each thread keeps its kTM squared distances, its
// feature chunk of x_i and its kBC accumulators in registers.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "gaussian_cuda.hpp"
#include "runtime_errors.hpp"

namespace contrastx::cuda {
namespace {

using i64 = std::int64_t;

constexpr int kThreads = 128;  // rows per block
constexpr int kDC = 16;        // features per chunk

template <typename Acc>
struct TileM {
    static constexpr int value = sizeof(Acc) == 8 ? 16 : 32;  // centres per tile
};

__device__ __forceinline__ float exp_acc(float a) { return expf(a); }
__device__ __forceinline__ double exp_acc(double a) { return exp(a); }

template <typename T, typename Acc, int kBC>
__global__ void __launch_bounds__(kThreads)
    gaussian_matvec_kernel(const T* __restrict__ x, const T* __restrict__ c,
                           const T* __restrict__ v, T* __restrict__ out, i64 n, i64 m, int d, i64 b,
                           Acc neg_gamma) {
    constexpr int kTM = TileM<Acc>::value;
    __shared__ Acc cs[kTM][kDC];
    __shared__ Acc vs[kTM][kBC];

    const i64 i = static_cast<i64>(blockIdx.x) * kThreads + threadIdx.x;
    const i64 b0 = static_cast<i64>(blockIdx.y) * kBC;
    const bool row_ok = i < n;
    const T* xi = x + (row_ok ? i : 0) * static_cast<i64>(d);

    Acc acc[kBC];
#pragma unroll
    for (int bb = 0; bb < kBC; ++bb) acc[bb] = Acc(0);

    for (i64 j0 = 0; j0 < m; j0 += kTM) {
        // Stage the V slice of this tile (zero rows/columns outside the matrix).
        __syncthreads();  // previous tile finished reading cs / vs
        for (int e = threadIdx.x; e < kTM * kBC; e += kThreads) {
            const int jj = e / kBC;
            const int bb = e % kBC;
            const i64 j = j0 + jj;
            const i64 col = b0 + bb;
            vs[jj][bb] = (j < m && col < b) ? static_cast<Acc>(v[j * b + col]) : Acc(0);
        }
        Acc dist[kTM];
#pragma unroll
        for (int jj = 0; jj < kTM; ++jj) dist[jj] = Acc(0);

        for (int k0 = 0; k0 < d; k0 += kDC) {
            if (k0 > 0) __syncthreads();  // previous chunk finished reading cs
            for (int e = threadIdx.x; e < kTM * kDC; e += kThreads) {
                const int jj = e / kDC;
                const int kk = e % kDC;
                const i64 j = j0 + jj;
                cs[jj][kk] = (j < m && k0 + kk < d) ? static_cast<Acc>(c[j * d + k0 + kk]) : Acc(0);
            }
            Acc xr[kDC];
#pragma unroll
            for (int kk = 0; kk < kDC; ++kk)
                xr[kk] = (row_ok && k0 + kk < d) ? static_cast<Acc>(xi[k0 + kk]) : Acc(0);
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < kDC; ++kk) {
                if (k0 + kk < d) {  // uniform across the block
#pragma unroll
                    for (int jj = 0; jj < kTM; ++jj) {
                        const Acc diff = xr[kk] - cs[jj][kk];
                        dist[jj] = fma(diff, diff, dist[jj]);
                    }
                }
            }
        }
        if (d == 0) __syncthreads();  // vs must be visible even without a feature loop
#pragma unroll
        for (int jj = 0; jj < kTM; ++jj) {
            // Centres past m have V rows of 0: they add exact zeros.
            const Acc kij = exp_acc(dist[jj] * neg_gamma);
#pragma unroll
            for (int bb = 0; bb < kBC; ++bb) acc[bb] = fma(kij, vs[jj][bb], acc[bb]);
        }
    }
    if (row_ok) {
#pragma unroll
        for (int bb = 0; bb < kBC; ++bb)
            if (b0 + bb < b) out[i * b + b0 + bb] = static_cast<T>(acc[bb]);
    }
}

using detail::check;

template <typename T, typename Acc, int kBC>
void launch_bc(const T* x, const T* c, const T* v, T* out, i64 n, i64 m, i64 d, i64 b,
               double sigma, cudaStream_t stream) {
    const i64 gx = (n + kThreads - 1) / kThreads;
    const i64 gy = (b + kBC - 1) / kBC;
    if (gx > 0x7fffffffLL || gy > 65535) throw std::invalid_argument("contrastx CUDA: too many rows or columns");
    const Acc neg_gamma = static_cast<Acc>(-1.0 / (2.0 * sigma * sigma));
    const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
    gaussian_matvec_kernel<T, Acc, kBC><<<grid, kThreads, 0, stream>>>(
        x, c, v, out, n, m, static_cast<int>(d), b, neg_gamma);
    check(cudaGetLastError(), "kernel launch");
}

template <typename T, typename Acc>
void launch(const T* x, const T* c, const T* v, T* out, i64 n, i64 m, i64 d, i64 b, double sigma,
            std::uintptr_t stream_handle) {
    if (n < 0 || m < 0 || d < 0 || b < 0) throw std::invalid_argument("negative size");
    // The kernels step an int feature index by kDC (k0 += kDC, k0 + kk < d): keep that from
    // overflowing.
    if (d > 0x7fffffffLL - kDC) throw std::invalid_argument("contrastx CUDA: too many features");
    if (!(sigma > 0.0)) throw std::invalid_argument("sigma must be > 0");
    if (n == 0 || b == 0) return;
    auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
    if (m == 0) {
        check(cudaMemsetAsync(out, 0, sizeof(T) * n * b, stream), "cudaMemsetAsync");
        return;
    }
    if (b == 1)
        launch_bc<T, Acc, 1>(x, c, v, out, n, m, d, b, sigma, stream);
    else if (b <= 4)
        launch_bc<T, Acc, 4>(x, c, v, out, n, m, d, b, sigma, stream);
    else
        launch_bc<T, Acc, 16>(x, c, v, out, n, m, d, b, sigma, stream);
}

}  // namespace

void gaussian_matvec(const double* x, const double* c, const double* v, double* out, i64 n, i64 m,
                     i64 d, i64 b, double sigma, std::uintptr_t stream) {
    launch<double, double>(x, c, v, out, n, m, d, b, sigma, stream);
}

void gaussian_matvec(const float* x, const float* c, const float* v, float* out, i64 n, i64 m,
                     i64 d, i64 b, double sigma, bool accumulate_f64, std::uintptr_t stream) {
    if (accumulate_f64)
        launch<float, double>(x, c, v, out, n, m, d, b, sigma, stream);
    else
        launch<float, float>(x, c, v, out, n, m, d, b, sigma, stream);
}

int device_count(std::string* error) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        if (error) *error = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
        (void)cudaGetLastError();  // reset the per-thread last-error state
        return 0;
    }
    return count;
}

int runtime_version() {
    int v = 0;
    if (cudaRuntimeGetVersion(&v) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return v;
}

int driver_version() {
    int v = 0;
    if (cudaDriverGetVersion(&v) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return v;
}

}  // namespace contrastx::cuda
