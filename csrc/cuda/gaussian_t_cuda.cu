// Transposed fused Gaussian kernel product on CUDA: out = K(X, C)^T diag(w) U without
// materialising K.  Deterministic (no atomics): results depend on n only, not on launch timing.
//
// 1. partial kernel: one thread owns one centre j and kBC consecutive output columns
//    (blockIdx.y picks the column chunk); blockIdx.z picks a row segment (fixed length that
//    depends on n only).  A block of kThreads centres walks over its segment's rows in tiles of
//    kTN: the tile's rows of X (in feature chunks of kDC) and its kTN x kBC slice of w o U are
//    staged in shared memory and read by every thread as broadcasts; each thread keeps its
//    centre's feature chunk, its kTN squared distances and its kBC accumulators in registers and
//    adds the rows in order.  It writes the segment's partial sums to
//    workspace[(seg * m + j) * b + col].
// 2. reduce kernel: out[j][col] = sum over segments, in segment order, cast to the output type.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "gaussian_t_cuda.hpp"
#include "runtime_errors.hpp"

namespace contrastx::cuda {
namespace {

using i64 = std::int64_t;

constexpr int kThreads = 128;         // centres per block
constexpr int kDC = 16;               // features per chunk
constexpr i64 kSegRows = 4096;        // target rows per segment
constexpr i64 kMaxSeg = 64;           // at most this many segments
constexpr int kReduceThreads = 256;   // threads per block of the reduce kernel
constexpr i64 kReduceMaxBlocks = 65535;

template <typename Acc>
struct TileN {
    static constexpr int value = sizeof(Acc) == 8 ? 16 : 32;  // rows per tile
};

__device__ __forceinline__ float exp_acc(float a) { return expf(a); }
__device__ __forceinline__ double exp_acc(double a) { return exp(a); }

template <typename T, typename Acc, int kBC>
__global__ void __launch_bounds__(kThreads)
    gaussian_t_partial_kernel(const T* __restrict__ x, const T* __restrict__ c,
                              const T* __restrict__ u, const T* __restrict__ w,
                              Acc* __restrict__ ws, i64 n, i64 m, int d, i64 b, i64 seg_len,
                              Acc neg_gamma) {
    constexpr int kTN = TileN<Acc>::value;
    __shared__ Acc xs[kTN][kDC];
    __shared__ Acc us[kTN][kBC];

    const i64 j = static_cast<i64>(blockIdx.x) * kThreads + threadIdx.x;
    const i64 b0 = static_cast<i64>(blockIdx.y) * kBC;
    const i64 seg = blockIdx.z;
    const i64 r_begin = seg * seg_len;
    const i64 r_end = r_begin + seg_len < n ? r_begin + seg_len : n;
    const bool centre_ok = j < m;
    const T* cj = c + (centre_ok ? j : 0) * static_cast<i64>(d);

    Acc acc[kBC];
#pragma unroll
    for (int bb = 0; bb < kBC; ++bb) acc[bb] = Acc(0);

    for (i64 r0 = r_begin; r0 < r_end; r0 += kTN) {
        // Stage w_i u_i of this tile (zero rows/columns outside the segment or the matrix).
        __syncthreads();  // previous tile finished reading xs / us
        for (int e = threadIdx.x; e < kTN * kBC; e += kThreads) {
            const int rr = e / kBC;
            const int bb = e % kBC;
            const i64 i = r0 + rr;
            const i64 col = b0 + bb;
            Acc val = Acc(0);
            if (i < r_end && col < b) {
                val = static_cast<Acc>(u[i * b + col]);
                if (w) val = static_cast<Acc>(w[i]) * val;
            }
            us[rr][bb] = val;
        }
        Acc dist[kTN];
#pragma unroll
        for (int rr = 0; rr < kTN; ++rr) dist[rr] = Acc(0);

        for (int k0 = 0; k0 < d; k0 += kDC) {
            if (k0 > 0) __syncthreads();  // previous chunk finished reading xs
            for (int e = threadIdx.x; e < kTN * kDC; e += kThreads) {
                const int rr = e / kDC;
                const int kk = e % kDC;
                const i64 i = r0 + rr;
                xs[rr][kk] = (i < r_end && k0 + kk < d)
                                 ? static_cast<Acc>(x[i * d + k0 + kk])
                                 : Acc(0);
            }
            Acc cr[kDC];
#pragma unroll
            for (int kk = 0; kk < kDC; ++kk)
                cr[kk] = (centre_ok && k0 + kk < d) ? static_cast<Acc>(cj[k0 + kk]) : Acc(0);
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < kDC; ++kk) {
                if (k0 + kk < d) {  // uniform across the block
#pragma unroll
                    for (int rr = 0; rr < kTN; ++rr) {
                        const Acc diff = xs[rr][kk] - cr[kk];
                        dist[rr] = fma(diff, diff, dist[rr]);
                    }
                }
            }
        }
        if (d == 0) __syncthreads();  // us must be visible even without a feature loop
#pragma unroll
        for (int rr = 0; rr < kTN; ++rr) {
            // Rows past the segment have w u = 0: they add exact zeros.  Rows go in order.
            const Acc kij = exp_acc(dist[rr] * neg_gamma);
#pragma unroll
            for (int bb = 0; bb < kBC; ++bb) acc[bb] = fma(kij, us[rr][bb], acc[bb]);
        }
    }
    if (centre_ok) {
        Acc* dst = ws + (seg * m + j) * b;
#pragma unroll
        for (int bb = 0; bb < kBC; ++bb)
            if (b0 + bb < b) dst[b0 + bb] = acc[bb];
    }
}

// out[e] = sum_{seg} ws[seg * mb + e], segments in order.
template <typename T, typename Acc>
__global__ void gaussian_t_reduce_kernel(const Acc* __restrict__ ws, T* __restrict__ out, i64 mb,
                                         i64 n_seg) {
    const i64 stride = static_cast<i64>(gridDim.x) * blockDim.x;
    for (i64 e = static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x; e < mb; e += stride) {
        Acc s = Acc(0);
        for (i64 seg = 0; seg < n_seg; ++seg) s += ws[seg * mb + e];
        out[e] = static_cast<T>(s);
    }
}

using detail::check;

i64 segments(i64 n) { return detail::segment_count(n, kSegRows, kMaxSeg); }

template <typename T, typename Acc, int kBC>
void launch_bc(const T* x, const T* c, const T* u, const T* w, Acc* ws, T* out, i64 n, i64 m,
               i64 d, i64 b, double sigma, cudaStream_t stream) {
    const i64 n_seg = segments(n);
    const i64 seg_len = (n + n_seg - 1) / n_seg;
    const i64 gx = (m + kThreads - 1) / kThreads;
    const i64 gy = (b + kBC - 1) / kBC;
    if (gx > 0x7fffffffLL || gy > 65535)
        throw std::invalid_argument("contrastx CUDA: too many centres or columns");
    const Acc neg_gamma = static_cast<Acc>(-1.0 / (2.0 * sigma * sigma));
    const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy),
                    static_cast<unsigned>(n_seg));
    gaussian_t_partial_kernel<T, Acc, kBC><<<grid, kThreads, 0, stream>>>(
        x, c, u, w, ws, n, m, static_cast<int>(d), b, seg_len, neg_gamma);
    check(cudaGetLastError(), "partial kernel launch");
    const i64 mb = m * b;
    const i64 blocks = std::min(kReduceMaxBlocks, (mb + kReduceThreads - 1) / kReduceThreads);
    gaussian_t_reduce_kernel<T, Acc><<<static_cast<unsigned>(blocks), kReduceThreads, 0, stream>>>(
        ws, out, mb, n_seg);
    check(cudaGetLastError(), "reduce kernel launch");
}

template <typename T, typename Acc>
void launch(const T* x, const T* c, const T* u, const T* w, Acc* ws, T* out, i64 n, i64 m, i64 d,
            i64 b, double sigma, std::uintptr_t stream_handle) {
    if (n < 0 || m < 0 || d < 0 || b < 0) throw std::invalid_argument("negative size");
    // The kernels step an int feature index by kDC (k0 += kDC, k0 + kk < d): keep that from
    // overflowing.
    if (d > 0x7fffffffLL - kDC) throw std::invalid_argument("contrastx CUDA: too many features");
    if (!(sigma > 0.0)) throw std::invalid_argument("sigma must be > 0");
    if (m == 0 || b == 0) return;
    auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
    if (n == 0) {
        check(cudaMemsetAsync(out, 0, sizeof(T) * m * b, stream), "cudaMemsetAsync");
        return;
    }
    if (b == 1)
        launch_bc<T, Acc, 1>(x, c, u, w, ws, out, n, m, d, b, sigma, stream);
    else if (b <= 4)
        launch_bc<T, Acc, 4>(x, c, u, w, ws, out, n, m, d, b, sigma, stream);
    else
        launch_bc<T, Acc, 16>(x, c, u, w, ws, out, n, m, d, b, sigma, stream);
}

}  // namespace

std::int64_t gaussian_t_segments(std::int64_t n) { return segments(n); }

std::int64_t gaussian_t_workspace_bytes(std::int64_t n, std::int64_t m, std::int64_t b,
                                        bool accumulate_in_double) {
    if (n < 0 || m < 0 || b < 0) throw std::invalid_argument("negative size");
    const i64 elem = accumulate_in_double ? i64(sizeof(double)) : i64(sizeof(float));
    return segments(n) * m * b * elem;
}

void gaussian_t_matvec(const double* x, const double* c, const double* u, const double* w,
                       double* workspace, double* out, i64 n, i64 m, i64 d, i64 b, double sigma,
                       std::uintptr_t stream) {
    launch<double, double>(x, c, u, w, workspace, out, n, m, d, b, sigma, stream);
}

void gaussian_t_matvec(const float* x, const float* c, const float* u, const float* w,
                       void* workspace, float* out, i64 n, i64 m, i64 d, i64 b, double sigma,
                       bool accumulate_f64, std::uintptr_t stream) {
    if (accumulate_f64)
        launch<float, double>(x, c, u, w, static_cast<double*>(workspace), out, n, m, d, b, sigma,
                              stream);
    else
        launch<float, float>(x, c, u, w, static_cast<float*>(workspace), out, n, m, d, b, sigma,
                             stream);
}

}  // namespace contrastx::cuda
