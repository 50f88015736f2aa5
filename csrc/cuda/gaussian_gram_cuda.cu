// Fused weighted Gaussian Gram matrix on CUDA: out = K(X, C)^T diag(w) K(X, C) without
// materialising K.  Deterministic (no atomics): results depend on the inputs and sizes only,
// not on launch timing.
//
// 1. partial kernel: blockIdx.x picks a kT x kT tile (p, q) of G on or above the diagonal
//    (q >= p), blockIdx.y a row segment (fixed length that depends on n only).  The block walks
//    over its segment's rows in chunks of kR.  For a chunk it evaluates the kernel values of the
//    chunk's rows against the tile's 2 kT centres (row-side centres j = p kT + .., column-side
//    centres l = q kT + ..): the rows of X and the centres' coordinates are staged in shared
//    memory in feature chunks of kDC, each thread keeps kRPT x kCPT squared distances in
//    registers.  The values go to shared tiles ka[r][j] = w_i K_ij and kb[r][l] = K_il (zero for
//    rows past the segment and centres past m: they add exact zeros).  Then each thread adds the
//    chunk's rows, in order, to its kRB x kRB register block of G_jl.  It writes the segment's
//    partial tile to workspace[(seg * m + j) * m + l] (entries with j <= l < m only).
// 2. reduce kernel: for every 32 x 32 tile on or above the diagonal, G_jl (j <= l) = sum over
//    segments, in segment order, cast to the output type; written to out[j][l] and, through a
//    shared-memory transpose, to out[l][j], so out is exactly symmetric.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>

#include "gaussian_gram_cuda.hpp"
#include "runtime_errors.hpp"

namespace contrastx::cuda {
namespace {

using i64 = std::int64_t;

constexpr int kThreads = 256;         // threads per block of the partial kernel (8 warps)
constexpr int kR = 32;                // rows per chunk
constexpr int kRPT = kR / 8;          // rows per thread in the kernel-value phase (one per warp)
constexpr int kDC = 16;               // features per chunk
constexpr i64 kSegRows = 8192;        // target rows per segment
constexpr i64 kMaxSeg = 32;           // at most this many segments
constexpr int kRT = 32;               // reduce kernel: tile edge
constexpr int kRTY = 8;               // reduce kernel: threads per block = kRT x kRTY

template <typename Acc>
struct Tile {
    static constexpr int value = sizeof(Acc) == 8 ? 32 : 64;  // edge of a Gram tile
};

__device__ __forceinline__ float exp_acc(float a) { return expf(a); }
__device__ __forceinline__ double exp_acc(double a) { return exp(a); }

// Linear index t in [0, nt (nt + 1) / 2) -> tile (p, q) with 0 <= p <= q < nt.
__device__ __forceinline__ void upper_tile(i64 t, i64 nt, i64& p, i64& q) {
    const i64 total = nt * (nt + 1) / 2;
    const i64 u = total - 1 - t;  // index in the enumeration of (a, b), 0 <= b <= a < nt
    i64 a = static_cast<i64>((sqrt(8.0 * static_cast<double>(u) + 1.0) - 1.0) * 0.5);
    while (a > 0 && a * (a + 1) / 2 > u) --a;
    while ((a + 1) * (a + 2) / 2 <= u) ++a;
    const i64 b = u - a * (a + 1) / 2;
    p = nt - 1 - a;
    q = nt - 1 - b;
}

template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads)
    gaussian_gram_partial_kernel(const T* __restrict__ x, const T* __restrict__ c,
                                 const T* __restrict__ w, Acc* __restrict__ ws, i64 n, i64 m,
                                 i64 d, i64 seg_len, i64 nt, Acc neg_gamma) {
    constexpr int kT = Tile<Acc>::value;
    constexpr int kRB = kT / 16;    // Gram entries per thread per dimension (16 x 16 threads)
    constexpr int kC = 2 * kT;      // centres per tile: kT row-side, then kT column-side
    constexpr int kCPT = kC / 32;   // centres per thread in the kernel-value phase (one per lane)
    static_assert(kRB * 16 == kT && kCPT * 32 == kC && kCPT % 2 == 0, "tile shape");
    __shared__ Acc xs[kR][kDC];
    __shared__ Acc cs[kDC][kC + 1];  // padded: conflict-free transposed stores
    __shared__ __align__(16) Acc ka[kR][kT];
    __shared__ __align__(16) Acc kb[kR][kT];

    i64 p, q;
    upper_tile(static_cast<i64>(blockIdx.x), nt, p, q);
    const i64 j_base = p * kT;
    const i64 l_base = q * kT;
    const i64 seg = blockIdx.y;
    const i64 r_begin = seg * seg_len;
    const i64 r_end = r_begin + seg_len < n ? r_begin + seg_len : n;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int tx = threadIdx.x & 15;
    const int ty = threadIdx.x >> 4;

    Acc acc[kRB][kRB];
#pragma unroll
    for (int a = 0; a < kRB; ++a)
#pragma unroll
        for (int b = 0; b < kRB; ++b) acc[a][b] = Acc(0);

    for (i64 r0 = r_begin; r0 < r_end; r0 += kR) {
        // Squared distances of rows r0 + warp + 8 v to tile centres lane + 32 u.
        Acc dist[kRPT][kCPT];
#pragma unroll
        for (int v = 0; v < kRPT; ++v)
#pragma unroll
            for (int u = 0; u < kCPT; ++u) dist[v][u] = Acc(0);

        for (i64 k0 = 0; k0 < d; k0 += kDC) {
            // Every thread finished the previous chunk's reads of xs / cs (for k0 == 0: the
            // barrier before the ka / kb stores of the previous row chunk).
            if (k0 > 0) __syncthreads();
            for (int e = threadIdx.x; e < kR * kDC; e += kThreads) {
                const int rr = e / kDC;
                const int kk = e % kDC;
                const i64 i = r0 + rr;
                xs[rr][kk] =
                    (i < r_end && k0 + kk < d) ? static_cast<Acc>(x[i * d + k0 + kk]) : Acc(0);
            }
            for (int e = threadIdx.x; e < kC * kDC; e += kThreads) {
                const int cc = e / kDC;
                const int kk = e % kDC;
                const i64 centre = cc < kT ? j_base + cc : l_base + (cc - kT);
                cs[kk][cc] = (centre < m && k0 + kk < d)
                                 ? static_cast<Acc>(c[centre * d + k0 + kk])
                                 : Acc(0);
            }
            __syncthreads();
            const int kn = d - k0 < kDC ? static_cast<int>(d - k0) : kDC;
#pragma unroll
            for (int kk = 0; kk < kDC; ++kk) {
                if (kk < kn) {  // uniform across the block
                    Acc cv[kCPT];
#pragma unroll
                    for (int u = 0; u < kCPT; ++u) cv[u] = cs[kk][lane + 32 * u];
#pragma unroll
                    for (int v = 0; v < kRPT; ++v) {
                        const Acc xv = xs[warp + 8 * v][kk];
#pragma unroll
                        for (int u = 0; u < kCPT; ++u) {
                            const Acc diff = xv - cv[u];
                            dist[v][u] = fma(diff, diff, dist[v][u]);
                        }
                    }
                }
            }
        }

        __syncthreads();  // every thread finished reading ka / kb of the previous row chunk
#pragma unroll
        for (int v = 0; v < kRPT; ++v) {
            const int rr = warp + 8 * v;
            const i64 i = r0 + rr;
            const bool row_ok = i < r_end;
            const Acc wi = row_ok ? (w ? static_cast<Acc>(w[i]) : Acc(1)) : Acc(0);
#pragma unroll
            for (int u = 0; u < kCPT; ++u) {
                const int cc = lane + 32 * u;
                if (u < kCPT / 2) {
                    const bool ok = row_ok && j_base + cc < m;
                    ka[rr][cc] = ok ? wi * exp_acc(dist[v][u] * neg_gamma) : Acc(0);
                } else {
                    const bool ok = row_ok && l_base + (cc - kT) < m;
                    kb[rr][cc - kT] = ok ? exp_acc(dist[v][u] * neg_gamma) : Acc(0);
                }
            }
        }
        __syncthreads();

        // G_jl += sum over the chunk's rows, in order, of (w_i K_ij) K_il.
#pragma unroll 8
        for (int rr = 0; rr < kR; ++rr) {
            Acc av[kRB], bv[kRB];
#pragma unroll
            for (int a = 0; a < kRB; ++a) av[a] = ka[rr][ty * kRB + a];
#pragma unroll
            for (int b = 0; b < kRB; ++b) bv[b] = kb[rr][tx * kRB + b];
#pragma unroll
            for (int a = 0; a < kRB; ++a)
#pragma unroll
                for (int b = 0; b < kRB; ++b) acc[a][b] = fma(av[a], bv[b], acc[a][b]);
        }
    }

    // Segment partials of the entries on or above the diagonal (the reduce kernel reads no other).
#pragma unroll
    for (int a = 0; a < kRB; ++a) {
        const i64 j = j_base + ty * kRB + a;
        if (j >= m) continue;
        Acc* dst = ws + (seg * m + j) * m;
#pragma unroll
        for (int b = 0; b < kRB; ++b) {
            const i64 l = l_base + tx * kRB + b;
            if (l < m && j <= l) dst[l] = acc[a][b];
        }
    }
}

// out[j][l] = out[l][j] = sum_{seg} ws[(seg * m + j) * m + l] (j <= l), segments in order.
// One block per kRT x kRT tile (p, q), q >= p, of out (nt = ceil(m / kRT) tiles per edge);
// blockDim = (kRT, kRTY).
template <typename T, typename Acc>
__global__ void __launch_bounds__(kRT * kRTY)
    gaussian_gram_reduce_kernel(const Acc* __restrict__ ws, T* __restrict__ out, i64 m,
                                i64 n_seg, i64 nt) {
    __shared__ T sh[kRT][kRT + 1];
    i64 p, q;
    upper_tile(static_cast<i64>(blockIdx.x), nt, p, q);
    const i64 j_base = p * kRT;
    const i64 l_base = q * kRT;
    const i64 mm = m * m;
    for (int jj = threadIdx.y; jj < kRT; jj += kRTY) {
        const i64 j = j_base + jj;
        const i64 l = l_base + threadIdx.x;
        if (j < m && l < m && j <= l) {
            const Acc* src = ws + j * m + l;
            Acc s = Acc(0);
            for (i64 seg = 0; seg < n_seg; ++seg) s += src[seg * mm];
            const T val = static_cast<T>(s);
            out[j * m + l] = val;
            sh[jj][threadIdx.x] = val;
        }
    }
    __syncthreads();
    // Mirror: out[l][j] for j < l, coalesced along j.
    for (int ll = threadIdx.y; ll < kRT; ll += kRTY) {
        const i64 l = l_base + ll;
        const i64 j = j_base + threadIdx.x;
        if (j < m && l < m && j < l) out[l * m + j] = sh[threadIdx.x][ll];
    }
}

using detail::check;

i64 segments(i64 n) { return detail::segment_count(n, kSegRows, kMaxSeg); }

// Tiles of edge `edge` along one side of an m x m matrix (nt, what the kernels take); the grid
// has nt (nt + 1) / 2 blocks, one per tile on or above the diagonal.  Throws when the launch grid
// (blockIdx.x) cannot hold them.
i64 edge_tiles(i64 m, i64 edge) {
    const i64 nt = (m + edge - 1) / edge;
    if (nt > 65535) throw std::invalid_argument("contrastx CUDA: too many centres");
    if (nt * (nt + 1) / 2 > static_cast<i64>(INT_MAX))
        throw std::invalid_argument("contrastx CUDA: too many centres");
    return nt;
}

template <typename T, typename Acc>
void launch(const T* x, const T* c, const T* w, Acc* ws, T* out, i64 n, i64 m, i64 d,
            double sigma, std::uintptr_t stream_handle) {
    if (n < 0 || m < 0 || d < 0) throw std::invalid_argument("negative size");
    if (!(sigma > 0.0)) throw std::invalid_argument("sigma must be > 0");
    if (m == 0) return;
    constexpr int kT = Tile<Acc>::value;
    // Kernels take tiles per edge (upper_tile's nt); grids have one block per upper tile.
    const i64 nt = edge_tiles(m, kT);
    const i64 nrt = edge_tiles(m, kRT);
    auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
    if (n == 0) {
        check(cudaMemsetAsync(out, 0, sizeof(T) * m * m, stream), "cudaMemsetAsync");
        return;
    }
    const i64 n_seg = segments(n);
    const i64 seg_len = (n + n_seg - 1) / n_seg;
    const Acc neg_gamma = static_cast<Acc>(-1.0 / (2.0 * sigma * sigma));
    const dim3 grid(static_cast<unsigned>(nt * (nt + 1) / 2), static_cast<unsigned>(n_seg));
    gaussian_gram_partial_kernel<T, Acc><<<grid, kThreads, 0, stream>>>(
        x, c, w, ws, n, m, d, seg_len, nt, neg_gamma);
    check(cudaGetLastError(), "partial kernel launch");
    gaussian_gram_reduce_kernel<T, Acc>
        <<<static_cast<unsigned>(nrt * (nrt + 1) / 2), dim3(kRT, kRTY), 0, stream>>>(
            ws, out, m, n_seg, nrt);
    check(cudaGetLastError(), "reduce kernel launch");
}

}  // namespace

std::int64_t gaussian_gram_segments(std::int64_t n) { return segments(n); }

std::int64_t gaussian_gram_workspace_bytes(std::int64_t n, std::int64_t m,
                                           bool accumulate_in_double) {
    if (n < 0 || m < 0) throw std::invalid_argument("negative size");
    const i64 elem = accumulate_in_double ? i64(sizeof(double)) : i64(sizeof(float));
    const i64 seg = segments(n);
    if (m > 0 && m > LLONG_MAX / (seg * elem) / m)
        throw std::invalid_argument("contrastx CUDA: workspace size overflows");
    return seg * m * m * elem;
}

void gaussian_weighted_gram(const double* x, const double* c, const double* w, void* workspace,
                            double* out, i64 n, i64 m, i64 d, double sigma,
                            std::uintptr_t stream) {
    launch<double, double>(x, c, w, static_cast<double*>(workspace), out, n, m, d, sigma, stream);
}

void gaussian_weighted_gram(const float* x, const float* c, const float* w, void* workspace,
                            float* out, i64 n, i64 m, i64 d, double sigma, bool accumulate_f64,
                            std::uintptr_t stream) {
    if (accumulate_f64)
        launch<float, double>(x, c, w, static_cast<double*>(workspace), out, n, m, d, sigma,
                              stream);
    else
        launch<float, float>(x, c, w, static_cast<float*>(workspace), out, n, m, d, sigma,
                             stream);
}

}  // namespace contrastx::cuda
