// CPU emulation of the CUDA runtime subset used by csrc/cuda/*.cu, for running the kernels
// without a GPU (tests/ops/test_cuda_emulated.py).  See README.md in this folder for what is
// modelled and what is not.
//
// A .cu file is made into an emulation copy by convert.py: `#include <cuda_runtime.h>` becomes
// `#include "cuda_emulation.hpp"` and every `kernel<<<grid, block, smem, stream>>>(args)`
// becomes `::cxemu::Launch(site, grid, block, smem, stream)(&kernel, args)`.
//
// Execution model.  A launch runs synchronously on the calling host thread.  Blocks run one at
// a time, in order (x fastest, then y, then z).  Every CUDA thread of a block is a fiber (its
// own stack, ucontext switching) on that host thread; a fiber runs until it reaches
// __syncthreads() or returns, then the next one runs.  When every thread of the block waits at
// a barrier, all of them must wait at the same call site (file:line) and none may have
// exited, else the process aborts with a "divergent __syncthreads" message (or, after
// set_report_divergence(true), the launch stops with cudaErrorLaunchFailure); then the phase
// ends and the next one starts.  Phases alternate the thread order (0, 1, .. in even phases,
// .., 1, 0 in odd ones), so a missing barrier (a shared-memory read of data another thread has
// not written yet, or an overwrite of data another thread has not read yet) shows up as a
// wrong result instead of depending on timing.  `__shared__` is `static`: one copy per kernel
// instantiation, which is exactly one block's shared memory because blocks never overlap.
// Launches are serialised process-wide.
//
// Launch checks as on an sm_90 device: zero grid or block dimensions, more than
// max_threads_per_block() threads (1024 by default), blockDim.x / .y > 1024, blockDim.z > 64,
// gridDim.x > 2^31 - 1, gridDim.y / .z > 65535 give cudaErrorInvalidConfiguration; dynamic
// shared memory above 48 KiB without cudaFuncSetAttribute(kernel,
// cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) gives cudaErrorInvalidValue.  The
// kernel does not run; the error is returned by the next cudaGetLastError() of that host
// thread (and cleared), as with the real runtime.
#pragma once

#include <math.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// --- declaration specifiers -----------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __syncthreads() ::cxemu::syncthreads(__FILE__, __LINE__)

// --- types ----------------------------------------------------------------------------------

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

struct uint3 {
    unsigned x, y, z;
};

// Values as in the CUDA runtime's driver_types.h.
enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorLaunchFailure = 719,
};
typedef enum cudaError cudaError_t;

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};

struct CUstream_st;
typedef CUstream_st* cudaStream_t;

constexpr int warpSize = 32;

namespace cxemu {

// Launch limits (sm_90).
constexpr unsigned kMaxBlockDimXY = 1024;
constexpr unsigned kMaxBlockDimZ = 64;
constexpr unsigned long long kMaxGridDimX = 2147483647ULL;
constexpr unsigned kMaxGridDimYZ = 65535;
constexpr std::size_t kDefaultDynamicSmem = 48 * 1024;
constexpr std::size_t kMaxOptInDynamicSmem = 227 * 1024;

// Where a launch was written (filled in by convert.py).
struct LaunchSite {
    const char* file;
    int line;
    const char* kernel;
};

namespace detail {

constexpr std::size_t kStackBytes = 256 * 1024;  // per CUDA thread (fiber)

[[noreturn]] inline void fatal(const std::string& msg) {
    std::fprintf(stderr, "cxemu: error: %s\n", msg.c_str());
    std::fflush(stderr);
    std::abort();
}

inline std::string dims(unsigned x, unsigned y, unsigned z) {
    return "(" + std::to_string(x) + ", " + std::to_string(y) + ", " + std::to_string(z) + ")";
}

struct Fiber {
    enum class State { runnable, at_barrier, done };
    ucontext_t ctx;
    State state = State::runnable;
    const char* file = nullptr;  // barrier call site while at_barrier
    int line = 0;
};

// Process-wide emulator state.  Launches hold `mutex`; the fields below it describe the launch
// that is running.
struct Runtime {
    std::mutex mutex;
    unsigned max_threads_per_block = kMaxBlockDimXY;
    bool report_divergence = false;  // false: abort; true: fail the launch
    std::map<const void*, std::size_t> dynamic_smem_opt_in;

    ucontext_t scheduler;
    std::vector<Fiber> fibers;
    std::vector<char*> stacks;  // reused by later launches, never freed
    unsigned current = 0;       // fiber running now
    bool in_kernel = false;
    const LaunchSite* site = nullptr;
    void (*body)(void*) = nullptr;  // runs the kernel for the current thread
    void* body_arg = nullptr;
    unsigned long long launches = 0;
};

inline Runtime& runtime() {
    static Runtime rt;
    return rt;
}

// Built-in variables: the kernel reads them through the const references below.
inline uint3 thread_idx{0, 0, 0};
inline uint3 block_idx{0, 0, 0};
inline dim3 block_dim{1, 1, 1};
inline dim3 grid_dim{1, 1, 1};

// Per host thread, as in the real runtime.
inline thread_local cudaError_t last_error = cudaSuccess;
inline thread_local std::string last_error_detail;

inline cudaError_t set_error(cudaError_t err, std::string detail) {
    last_error = err;
    last_error_detail = std::move(detail);
    return err;
}

inline char* stack_for(unsigned t) {
    Runtime& rt = runtime();
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    while (rt.stacks.size() <= t) {
        void* p = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) fatal("mmap of a fiber stack failed");
        if (mprotect(p, page, PROT_NONE) != 0) fatal("mprotect of a stack guard page failed");
        rt.stacks.push_back(static_cast<char*>(p) + page);  // guard page below the stack
    }
    return rt.stacks[t];
}

inline void fiber_entry() {
    Runtime& rt = runtime();
    try {
        rt.body(rt.body_arg);
    } catch (const std::exception& e) {
        fatal(std::string("exception escaped a kernel: ") + e.what());
    } catch (...) {
        fatal("exception escaped a kernel");
    }
    rt.fibers[rt.current].state = Fiber::State::done;
    // Returning resumes rt.scheduler (uc_link).
}

inline std::string thread_name(unsigned t) {
    const unsigned bx = block_dim.x, by = block_dim.y;
    return "threadIdx " + dims(t % bx, (t / bx) % by, t / (bx * by));
}

inline bool same_site(const Fiber& a, const Fiber& b) {
    return a.line == b.line && (a.file == b.file || std::strcmp(a.file, b.file) == 0);
}

inline std::string site_of(const Fiber& f) {
    return std::string(f.file) + ":" + std::to_string(f.line);
}

// A divergent barrier: abort, or (report_divergence) record cudaErrorLaunchFailure with the
// message and return false; the block's suspended fibers are abandoned (their stacks are
// reinitialised by the next launch; kernels own no resources that would need unwinding).
inline bool divergence(unsigned waiting, const std::string& other) {
    const Runtime& rt = runtime();
    const std::string msg =
        "divergent __syncthreads in kernel " + std::string(rt.site->kernel) + " (launched at " +
        rt.site->file + ":" + std::to_string(rt.site->line) + "), blockIdx " +
        dims(block_idx.x, block_idx.y, block_idx.z) + ": " + thread_name(waiting) +
        " waits at " + site_of(rt.fibers[waiting]) + " but " + other;
    if (!rt.report_divergence) fatal(msg);
    set_error(cudaErrorLaunchFailure, msg);
    return false;
}

// Runs the current block (block_idx set) to completion; false after a divergent barrier.
inline bool run_block(unsigned nt) {
    Runtime& rt = runtime();
    for (unsigned t = 0; t < nt; ++t) {
        Fiber& f = rt.fibers[t];
        f = Fiber{};
        if (getcontext(&f.ctx) != 0) fatal("getcontext failed");
        f.ctx.uc_stack.ss_sp = stack_for(t);
        f.ctx.uc_stack.ss_size = kStackBytes;
        f.ctx.uc_link = &rt.scheduler;
        makecontext(&f.ctx, fiber_entry, 0);
    }
    const unsigned bx = block_dim.x, by = block_dim.y;
    for (unsigned long long phase = 0;; ++phase) {
        for (unsigned k = 0; k < nt; ++k) {
            const unsigned t = (phase & 1) ? nt - 1 - k : k;
            Fiber& f = rt.fibers[t];
            if (f.state != Fiber::State::runnable) continue;
            rt.current = t;
            thread_idx = uint3{t % bx, (t / bx) % by, t / (bx * by)};
            if (swapcontext(&rt.scheduler, &f.ctx) != 0) fatal("swapcontext failed");
        }
        // Every thread now waits at a barrier or has returned.
        unsigned waiting = nt, exited = nt;
        for (unsigned t = 0; t < nt; ++t) {
            const Fiber& f = rt.fibers[t];
            if (f.state == Fiber::State::done) {
                if (exited == nt) exited = t;
            } else if (waiting == nt) {
                waiting = t;
            } else if (!same_site(rt.fibers[waiting], f)) {
                return divergence(waiting, thread_name(t) + " waits at " + site_of(f));
            }
        }
        if (waiting == nt) return true;  // every thread has returned: the block is done
        if (exited != nt)
            return divergence(waiting, thread_name(exited) + " has returned from the kernel");
        for (unsigned t = 0; t < nt; ++t)
            if (rt.fibers[t].state == Fiber::State::at_barrier)
                rt.fibers[t].state = Fiber::State::runnable;
    }
}

template <class F>
void call_body(void* f) {
    (*static_cast<F*>(f))();
}

// Validates a launch configuration; on failure records the error and returns false.
inline bool check_launch(const LaunchSite& site, dim3 grid, dim3 block, std::size_t smem,
                         const void* kernel) {
    const Runtime& rt = runtime();
    const auto fail = [&](cudaError_t err, const std::string& what) {
        set_error(err, what + " in " + site.kernel + " at " + site.file + ":" +
                           std::to_string(site.line) + ": grid " +
                           dims(grid.x, grid.y, grid.z) + ", block " +
                           dims(block.x, block.y, block.z));
        return false;
    };
    const unsigned long long nt = static_cast<unsigned long long>(block.x) * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || nt == 0)
        return fail(cudaErrorInvalidConfiguration, "zero-sized launch");
    if (nt > rt.max_threads_per_block || block.x > kMaxBlockDimXY ||
        block.y > kMaxBlockDimXY || block.z > kMaxBlockDimZ)
        return fail(cudaErrorInvalidConfiguration,
                    "too many threads per block (" + std::to_string(nt) + ", limit " +
                        std::to_string(rt.max_threads_per_block) + ")");
    if (grid.x > kMaxGridDimX || grid.y > kMaxGridDimYZ || grid.z > kMaxGridDimYZ)
        return fail(cudaErrorInvalidConfiguration, "grid too large");
    if (smem > kDefaultDynamicSmem) {
        const auto it = rt.dynamic_smem_opt_in.find(kernel);
        if (it == rt.dynamic_smem_opt_in.end() || smem > it->second)
            return fail(cudaErrorInvalidValue,
                        std::to_string(smem) +
                            " bytes of dynamic shared memory without a large enough "
                            "cudaFuncSetAttribute opt-in");
    }
    return true;
}

template <class P, class A>
P convert_arg(A&& a) {
    return std::forward<A>(a);  // implicit conversion, as for a function call
}

}  // namespace detail

// A kernel launch: `Launch(site, grid, block, smem, stream)(&kernel, args...)`.  Runs the
// whole grid before returning; an invalid configuration is recorded for cudaGetLastError and
// nothing runs.
class Launch {
  public:
    Launch(LaunchSite site, dim3 grid, dim3 block, std::size_t smem = 0,
           cudaStream_t stream = nullptr)
        : site_(site), grid_(grid), block_(block), smem_(smem) {
        (void)stream;  // every launch is synchronous: stream order holds trivially
    }

    template <class... P, class... A>
    void operator()(void (*kernel)(P...), A&&... args) const {
        static_assert(sizeof...(P) == sizeof...(A), "cxemu: wrong number of kernel arguments");
        detail::Runtime& rt = detail::runtime();
        std::lock_guard<std::mutex> lock(rt.mutex);
        if (rt.in_kernel) detail::fatal("kernel launch from inside a kernel (not emulated)");
        if (!detail::check_launch(site_, grid_, block_, smem_,
                                  reinterpret_cast<const void*>(kernel)))
            return;
        // Arguments are converted to the parameter types once, at the launch; every thread
        // gets its own copy.
        const std::tuple<P...> params(detail::convert_arg<P>(std::forward<A>(args))...);
        auto body = [&] {
            std::tuple<P...> mine = params;
            std::apply(kernel, mine);
        };
        run(&detail::call_body<decltype(body)>, &body);
    }

  private:
    void run(void (*body)(void*), void* arg) const {
        detail::Runtime& rt = detail::runtime();
        const unsigned nt = block_.x * block_.y * block_.z;
        if (rt.fibers.size() < nt) rt.fibers.resize(nt);
        rt.site = &site_;
        rt.body = body;
        rt.body_arg = arg;
        rt.in_kernel = true;
        ++rt.launches;
        detail::block_dim = block_;
        detail::grid_dim = grid_;
        bool ok = true;
        for (unsigned bz = 0; ok && bz < grid_.z; ++bz)
            for (unsigned by = 0; ok && by < grid_.y; ++by)
                for (unsigned bx = 0; ok && bx < grid_.x; ++bx) {
                    detail::block_idx = uint3{bx, by, bz};
                    ok = detail::run_block(nt);
                }
        rt.in_kernel = false;
        rt.site = nullptr;
    }

    LaunchSite site_;
    dim3 grid_, block_;
    std::size_t smem_;
};

// __syncthreads(): wait until every thread of the block has arrived here.
inline void syncthreads(const char* file, int line) {
    detail::Runtime& rt = detail::runtime();
    if (!rt.in_kernel)
        detail::fatal(std::string("__syncthreads outside a kernel at ") + file + ":" +
                      std::to_string(line));
    detail::Fiber& f = rt.fibers[rt.current];
    f.state = detail::Fiber::State::at_barrier;
    f.file = file;
    f.line = line;
    if (swapcontext(&f.ctx, &rt.scheduler) != 0) detail::fatal("swapcontext failed");
}

// Test hooks.  Emulate a device that allows at most `n` threads per block (1 .. 1024), so
// that a valid launch of the real code becomes an invalid one.
inline void set_max_threads_per_block(unsigned n) {
    detail::Runtime& rt = detail::runtime();
    std::lock_guard<std::mutex> lock(rt.mutex);
    rt.max_threads_per_block = n < 1 ? 1 : (n > kMaxBlockDimXY ? kMaxBlockDimXY : n);
}
// What a divergent __syncthreads does: false (default) prints the message and aborts; true
// stops the launch and records cudaErrorLaunchFailure with the message as the error detail
// (for test runners that would lose an aborting process's stderr).
inline void set_report_divergence(bool report) {
    detail::Runtime& rt = detail::runtime();
    std::lock_guard<std::mutex> lock(rt.mutex);
    rt.report_divergence = report;
}
// Number of kernel launches that ran (valid configurations) since the process started.
inline unsigned long long launch_count() { return detail::runtime().launches; }
// Human-readable reason of the last error recorded on this host thread ("" if none; not
// cleared by cudaGetLastError, only by clear_last_error_detail).
inline const std::string& last_error_detail() { return detail::last_error_detail; }
inline void clear_last_error_detail() { detail::last_error_detail.clear(); }

}  // namespace cxemu

inline const uint3& threadIdx = ::cxemu::detail::thread_idx;
inline const uint3& blockIdx = ::cxemu::detail::block_idx;
inline const dim3& blockDim = ::cxemu::detail::block_dim;
inline const dim3& gridDim = ::cxemu::detail::grid_dim;

// --- runtime API ----------------------------------------------------------------------------

inline cudaError_t cudaGetLastError() {
    const cudaError_t e = ::cxemu::detail::last_error;
    ::cxemu::detail::last_error = cudaSuccess;
    return e;
}

inline cudaError_t cudaPeekAtLastError() { return ::cxemu::detail::last_error; }

inline const char* cudaGetErrorName(cudaError_t err) {
    switch (err) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
        case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

inline const char* cudaGetErrorString(cudaError_t err) {
    switch (err) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidDeviceFunction: return "invalid device function";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
    }
    return "unknown error";
}

// Memory is host memory and every operation is synchronous.
inline cudaError_t cudaMemsetAsync(void* ptr, int value, std::size_t count,
                                   cudaStream_t stream = nullptr) {
    (void)stream;
    if (count == 0) return cudaSuccess;
    if (ptr == nullptr)
        return ::cxemu::detail::set_error(cudaErrorInvalidValue, "cudaMemsetAsync(nullptr)");
    std::memset(ptr, value, count);
    return cudaSuccess;
}

inline cudaError_t cudaMemset(void* ptr, int value, std::size_t count) {
    return cudaMemsetAsync(ptr, value, count, nullptr);
}

inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

inline cudaError_t cudaGetDeviceCount(int* count) {
    *count = 1;  // the emulated device
    return cudaSuccess;
}
// 0: "no CUDA runtime / driver" for the callers; the emulation is neither.
inline cudaError_t cudaRuntimeGetVersion(int* version) {
    *version = 0;
    return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* version) {
    *version = 0;
    return cudaSuccess;
}

template <class T>
cudaError_t cudaFuncSetAttribute(T* kernel, cudaFuncAttribute attr, int value) {
    ::cxemu::detail::Runtime& rt = ::cxemu::detail::runtime();
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
        static_cast<std::size_t>(value) > ::cxemu::kMaxOptInDynamicSmem)
        return ::cxemu::detail::set_error(cudaErrorInvalidValue, "cudaFuncSetAttribute");
    std::lock_guard<std::mutex> lock(rt.mutex);
    rt.dynamic_smem_opt_in[reinterpret_cast<const void*>(kernel)] =
        static_cast<std::size_t>(value);
    return cudaSuccess;
}

// --- device functions -----------------------------------------------------------------------
// The C / C++ math library (<cmath>, <math.h>: expf, exp, logf, log, fma, fmax, sqrt, ...,
// with the float overloads) stands in for CUDA's; only the bit casts are added here.

inline float __int_as_float(int i) { return std::bit_cast<float>(i); }
inline int __float_as_int(float f) { return std::bit_cast<int>(f); }
inline double __longlong_as_double(long long i) { return std::bit_cast<double>(i); }
inline long long __double_as_longlong(double d) { return std::bit_cast<long long>(d); }
