// extern "C" entry points to the public contrastx::cuda functions (csrc/cuda/*.hpp), for
// calling the emulated kernels from Python with ctypes (tests/ops/test_cuda_emulated.py).
// Linked with the emulation copies of csrc/cuda/*.cu (build.py); it includes no CUDA header of
// its own except the emulator, for the hooks at the end.
//
// Conventions, mirroring csrc/bindings.cpp: pointers are host addresses of C-contiguous arrays
// (what the real build takes as device pointers), w == NULL means no row weights, sizes are
// int64, dtype is "float32" or "float64", the stream is always the default (0).  Every
// function returns 0 on success, 1 for std::invalid_argument (pybind11: ValueError), 2 for
// another std::exception (RuntimeError, e.g. a launch error), 3 for anything else; the message
// is then available from cx_last_error() on the same thread.
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>

#include "cuda/contrastive_cuda.hpp"
#include "cuda/gaussian_cuda.hpp"
#include "cuda/gaussian_gram_cuda.hpp"
#include "cuda/gaussian_t_cuda.hpp"
#include "cuda/vicreg_cuda.hpp"
#include "cuda_emulation.hpp"

namespace {

using i64 = std::int64_t;
constexpr std::uintptr_t kStream = 0;  // the legacy default stream; the emulation ignores it

thread_local std::string g_error;

template <typename T>
T* ptr(const void* p) {
    return static_cast<T*>(const_cast<void*>(p));
}

// true for "float64", false for "float32"; anything else is rejected as by bindings.cpp.
bool is_f64(const char* dtype) {
    const std::string name = dtype ? dtype : "";
    if (name != "float32" && name != "float64")
        throw std::invalid_argument("dtype must be 'float32' or 'float64', got '" + name + "'");
    return name == "float64";
}

template <typename F>
int guarded(F&& f) {
    cxemu::clear_last_error_detail();
    try {
        f();
        g_error.clear();
        return 0;
    } catch (const std::invalid_argument& e) {
        g_error = e.what();
        return 1;
    } catch (const std::exception& e) {
        g_error = e.what();
        const std::string& detail = cxemu::last_error_detail();
        if (!detail.empty()) g_error += " [cxemu: " + detail + "]";
        return 2;
    } catch (...) {
        g_error = "unknown exception";
        return 3;
    }
}

}  // namespace

extern "C" {

const char* cx_last_error(void) { return g_error.c_str(); }

// --- Gaussian kernel products ---------------------------------------------------------------

int cx_gaussian_matvec(const void* x, const void* c, const void* v, void* out, i64 n, i64 m,
                       i64 d, i64 b, double sigma, const char* dtype, int accumulate_f64) {
    return guarded([&] {
        if (is_f64(dtype))
            contrastx::cuda::gaussian_matvec(ptr<const double>(x), ptr<const double>(c),
                                             ptr<const double>(v), ptr<double>(out), n, m, d, b,
                                             sigma, kStream);
        else
            contrastx::cuda::gaussian_matvec(ptr<const float>(x), ptr<const float>(c),
                                             ptr<const float>(v), ptr<float>(out), n, m, d, b,
                                             sigma, accumulate_f64 != 0, kStream);
    });
}

int cx_gaussian_t_segments(i64 n, i64* result) {
    return guarded([&] { *result = contrastx::cuda::gaussian_t_segments(n); });
}

int cx_gaussian_t_workspace_bytes(i64 n, i64 m, i64 b, int accumulate_in_double, i64* result) {
    return guarded([&] {
        *result = contrastx::cuda::gaussian_t_workspace_bytes(n, m, b, accumulate_in_double != 0);
    });
}

int cx_gaussian_t_matvec(const void* x, const void* c, const void* u, const void* w,
                         void* workspace, void* out, i64 n, i64 m, i64 d, i64 b, double sigma,
                         const char* dtype, int accumulate_f64) {
    return guarded([&] {
        if (is_f64(dtype))
            contrastx::cuda::gaussian_t_matvec(ptr<const double>(x), ptr<const double>(c),
                                               ptr<const double>(u), ptr<const double>(w),
                                               ptr<double>(workspace), ptr<double>(out), n, m, d,
                                               b, sigma, kStream);
        else
            contrastx::cuda::gaussian_t_matvec(ptr<const float>(x), ptr<const float>(c),
                                               ptr<const float>(u), ptr<const float>(w),
                                               ptr<void>(workspace), ptr<float>(out), n, m, d, b,
                                               sigma, accumulate_f64 != 0, kStream);
    });
}

int cx_gaussian_gram_segments(i64 n, i64* result) {
    return guarded([&] { *result = contrastx::cuda::gaussian_gram_segments(n); });
}

int cx_gaussian_gram_workspace_bytes(i64 n, i64 m, int accumulate_in_double, i64* result) {
    return guarded([&] {
        *result = contrastx::cuda::gaussian_gram_workspace_bytes(n, m, accumulate_in_double != 0);
    });
}

int cx_gaussian_weighted_gram(const void* x, const void* c, const void* w, void* workspace,
                              void* out, i64 n, i64 m, i64 d, double sigma, const char* dtype,
                              int accumulate_f64) {
    return guarded([&] {
        if (is_f64(dtype))
            contrastx::cuda::gaussian_weighted_gram(ptr<const double>(x), ptr<const double>(c),
                                                    ptr<const double>(w), ptr<void>(workspace),
                                                    ptr<double>(out), n, m, d, sigma, kStream);
        else
            contrastx::cuda::gaussian_weighted_gram(ptr<const float>(x), ptr<const float>(c),
                                                    ptr<const float>(w), ptr<void>(workspace),
                                                    ptr<float>(out), n, m, d, sigma,
                                                    accumulate_f64 != 0, kStream);
    });
}

// --- contrastive losses ---------------------------------------------------------------------

int cx_supcon_forward(const void* x, const void* labels, const void* w, const void* c, void* lse,
                      void* row_loss, void* inv_norm, i64 m, i64 d, double tau, int normalize,
                      double eps, const char* dtype) {
    return guarded([&] {
        if (is_f64(dtype))
            contrastx::cuda::supcon_forward(ptr<const double>(x), ptr<const i64>(labels),
                                            ptr<const double>(w), ptr<const double>(c),
                                            ptr<double>(lse), ptr<double>(row_loss),
                                            ptr<double>(inv_norm), m, d, tau, normalize != 0, eps,
                                            kStream);
        else
            contrastx::cuda::supcon_forward(ptr<const float>(x), ptr<const i64>(labels),
                                            ptr<const float>(w), ptr<const float>(c),
                                            ptr<float>(lse), ptr<float>(row_loss),
                                            ptr<float>(inv_norm), m, d, tau, normalize != 0, eps,
                                            kStream);
    });
}

int cx_supcon_backward(const void* x, const void* labels, const void* w, const void* c,
                       const void* lse, void* grad_x, void* inv_norm, i64 m, i64 d, double tau,
                       int normalize, double eps, double grad_scale, const char* dtype) {
    return guarded([&] {
        if (is_f64(dtype))
            contrastx::cuda::supcon_backward(ptr<const double>(x), ptr<const i64>(labels),
                                             ptr<const double>(w), ptr<const double>(c),
                                             ptr<const double>(lse), ptr<double>(grad_x),
                                             ptr<double>(inv_norm), m, d, tau, normalize != 0,
                                             eps, grad_scale, kStream);
        else
            contrastx::cuda::supcon_backward(ptr<const float>(x), ptr<const i64>(labels),
                                             ptr<const float>(w), ptr<const float>(c),
                                             ptr<const float>(lse), ptr<float>(grad_x),
                                             ptr<float>(inv_norm), m, d, tau, normalize != 0, eps,
                                             grad_scale, kStream);
    });
}

int cx_vicreg_cuda_workspace_bytes(i64 n, i64 d, i64* result) {
    return guarded([&] { *result = contrastx::cuda::vicreg_cuda_workspace_bytes(n, d); });
}

int cx_vicreg_forward(const void* z1, const void* z2, void* out, void* state, void* workspace,
                      i64 n, i64 d, double lam, double mu, double nu, double gamma, double eps,
                      const char* dtype) {
    return guarded([&] {
        if (is_f64(dtype))
            contrastx::cuda::vicreg_forward(ptr<const double>(z1), ptr<const double>(z2),
                                            ptr<double>(out), ptr<double>(state),
                                            ptr<void>(workspace), n, d, lam, mu, nu, gamma, eps,
                                            kStream);
        else
            contrastx::cuda::vicreg_forward(ptr<const float>(z1), ptr<const float>(z2),
                                            ptr<float>(out), ptr<double>(state),
                                            ptr<void>(workspace), n, d, lam, mu, nu, gamma, eps,
                                            kStream);
    });
}

int cx_vicreg_backward(const void* z1, const void* z2, const void* state, void* g1, void* g2,
                       i64 n, i64 d, double lam, double grad_scale, const char* dtype) {
    return guarded([&] {
        if (is_f64(dtype))
            contrastx::cuda::vicreg_backward(ptr<const double>(z1), ptr<const double>(z2),
                                             ptr<const double>(state), ptr<double>(g1),
                                             ptr<double>(g2), n, d, lam, grad_scale, kStream);
        else
            contrastx::cuda::vicreg_backward(ptr<const float>(z1), ptr<const float>(z2),
                                             ptr<const double>(state), ptr<float>(g1),
                                             ptr<float>(g2), n, d, lam, grad_scale, kStream);
    });
}

// --- runtime queries ------------------------------------------------------------------------

int cx_device_count(void) { return contrastx::cuda::device_count(nullptr); }
int cx_runtime_version(void) { return contrastx::cuda::runtime_version(); }
int cx_driver_version(void) { return contrastx::cuda::driver_version(); }

// --- emulator hooks -------------------------------------------------------------------------

// Emulate a device with at most n threads per block (1024 restores the default).
void cxemu_set_max_threads_per_block(unsigned n) { cxemu::set_max_threads_per_block(n); }
// on != 0: a divergent __syncthreads fails the launch (cudaErrorLaunchFailure, message in
// cxemu_last_error_detail) instead of aborting the process.
void cxemu_set_report_divergence(int on) { cxemu::set_report_divergence(on != 0); }
// The emulator's reason for the last error recorded on this thread ("" if none).
const char* cxemu_last_error_detail(void) { return cxemu::last_error_detail().c_str(); }
// Kernel launches that ran since the library was loaded.
unsigned long long cxemu_launch_count(void) { return cxemu::launch_count(); }

}  // extern "C"
