// Kernels that test the CUDA emulation itself (tests/ops/test_cuda_emulated.py): built-in
// variables, barriers and shared memory, the serial schedule exposing missing barriers, launch
// checks, divergent barriers, and the converter's launch forms (template kernel, multi-line
// configuration, no arguments).  Emulation only: the host code reads "device" memory directly.
#include <cuda_runtime.h>

#include <cstddef>

namespace {

// out[6 * (block * threads + thread) + ..] = threadIdx.xyz, blockIdx.xyz (linear ids as CUDA's).
__global__ void index_kernel(int* out) {
    const unsigned nt = blockDim.x * blockDim.y * blockDim.z;
    const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned bid = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    int* o = out + 6 * (static_cast<std::size_t>(bid) * nt + tid);
    o[0] = threadIdx.x;
    o[1] = threadIdx.y;
    o[2] = threadIdx.z;
    o[3] = blockIdx.x;
    o[4] = blockIdx.y;
    o[5] = blockIdx.z;
}

// out[block] = sum of in[block * n .. block * n + n): shared-memory tree reduction.
template <typename T, int kThreads>
__global__ void __launch_bounds__(kThreads) block_sum_kernel(const T* in, T* out, int n) {
    __shared__ T red[kThreads];
    T s = T(0);
    for (int i = threadIdx.x; i < n; i += kThreads) s += in[blockIdx.x * n + i];
    red[threadIdx.x] = s;
    __syncthreads();
    for (int k = kThreads / 2; k > 0; k >>= 1) {
        if (static_cast<int>(threadIdx.x) < k) red[threadIdx.x] += red[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = red[0];
}

// Two rounds of "stage a value in shared memory, read the neighbour's": out[t] = sum over
// rounds r of (1000 r + (t + 1) % n).  kBefore / kAfter: the barrier before the stores (the
// previous round's reads are done) and after them (the stores are visible).
template <bool kBefore, bool kAfter>
__global__ void stage_kernel(int* out) {
    __shared__ int s[256];
    const int n = blockDim.x, t = threadIdx.x;
    int acc = 0;
    for (int r = 0; r < 2; ++r) {
        if (kBefore) __syncthreads();
        s[t] = 1000 * r + t;
        if (kAfter) __syncthreads();
        acc += s[(t + 1) % n];
    }
    out[blockIdx.x * n + t] = acc;
}

__global__ void mark_kernel(int* flag) {
    if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0) *flag = 1;
}

__device__ int g_no_arg_runs = 0;

__global__ void no_arg_kernel() {
    if (threadIdx.x == 0) ++g_no_arg_runs;
}

__global__ void divergent_sites_kernel(int* out) {
    if (threadIdx.x < 16) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1;
}

__global__ void early_exit_kernel(int* out) {
    if (threadIdx.x == 5) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}

}  // namespace

extern "C" {

// Launches index_kernel; returns cudaGetLastError().
int cxemu_selftest_indices(int* out, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                           unsigned by, unsigned bz) {
    index_kernel<<<dim3(gx, gy, gz), dim3(bx, by, bz)>>>(out);
    return cudaGetLastError();
}

int cxemu_selftest_block_sum(const double* in, double* out, int blocks, int n) {
    block_sum_kernel<double, 64>
        <<<static_cast<unsigned>(blocks),
           64,
           0,
           nullptr>>>(in, out, n);
    return cudaGetLastError();
}

// variant 0: both barriers; 1: no barrier after the stores; 2: no barrier before them.
int cxemu_selftest_stage(int* out, int blocks, int threads, int variant) {
    const dim3 grid(static_cast<unsigned>(blocks)), block(static_cast<unsigned>(threads));
    if (variant == 0)
        stage_kernel<true, true><<<grid, block>>>(out);
    else if (variant == 1)
        stage_kernel<true, false><<<grid, block>>>(out);
    else
        stage_kernel<false, true><<<grid, block>>>(out);
    return cudaGetLastError();
}

// Launches mark_kernel with the given configuration (opt_in: the kernel's dynamic shared
// memory limit, set first).  Returns cudaGetLastError(); *ran = whether the kernel ran; *after
// = cudaGetLastError() called once more (the error must have been cleared).
int cxemu_selftest_launch(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                          unsigned bz, std::size_t smem, int opt_in, int* ran, int* after) {
    if (cudaFuncSetAttribute(mark_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, opt_in) !=
        cudaSuccess)
        return -1;
    *ran = 0;
    mark_kernel<<<dim3(gx, gy, gz), dim3(bx, by, bz), smem>>>(ran);
    const int err = cudaGetLastError();
    *after = cudaGetLastError();
    return err;
}

// Runs no_arg_kernel on `blocks` blocks; returns how many blocks ran it (0 on a launch error).
int cxemu_selftest_no_args(int blocks) {
    g_no_arg_runs = 0;
    no_arg_kernel<<<static_cast<unsigned>(blocks), 32>>>();
    return cudaGetLastError() == cudaSuccess ? g_no_arg_runs : 0;
}

// A divergent barrier (which 0: two barrier call sites; 1: a thread returns while the others
// wait): aborts the process, or returns cudaGetLastError() when divergence is reported.
int cxemu_selftest_divergent(int which) {
    static int out[64];
    if (which == 0)
        divergent_sites_kernel<<<1, 64>>>(out);
    else
        early_exit_kernel<<<2, 64>>>(out);
    return cudaGetLastError();
}

}  // extern "C"
