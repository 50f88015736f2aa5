// contrastx._C: converts Python arguments and dispatches to the CPU / CUDA kernels.
//
// Tensors arrive as raw data pointers (torch.Tensor.data_ptr()) plus sizes; no libtorch is
// linked.  The Python layer (contrastx.ops) validates shapes, dtypes, devices, contiguity and
// keeps the tensors alive for the duration of the call.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "contrastx_build_config.h"
#include "cpu/contrastive_cpu.hpp"
#include "cpu/gaussian_cpu.hpp"
#include "cpu/isa.hpp"
#include "cpu/selected_gram_cpu.hpp"
#ifdef CONTRASTX_WITH_CUDA
#include "cuda/contrastive_cuda.hpp"
#include "cuda/gaussian_cuda.hpp"
#include "cuda/gaussian_gram_cuda.hpp"
#include "cuda/gaussian_t_cuda.hpp"
#include "cuda/vicreg_cuda.hpp"
#endif

namespace py = pybind11;
using i64 = std::int64_t;

namespace {

template <typename T>
T* ptr(std::uintptr_t p) {
    return reinterpret_cast<T*>(p);
}

void check_dtype(const std::string& dtype) {
    if (dtype != "float32" && dtype != "float64")
        throw std::invalid_argument("dtype must be 'float32' or 'float64', got '" + dtype + "'");
}

// The one dtype dispatch of every kernel wrapper below: checks `dtype` (std::invalid_argument,
// ValueError in Python, with the GIL held), releases the GIL and calls `call(T{})` with
// T = double for "float64" and float for "float32".  A wrapper is one call expression written
// once for both types: its dtype arguments are ptr<const T>(...) / ptr<T>(...), which selects
// the kernel's float or double overload.
template <typename Call>
void dispatch(const std::string& dtype, Call&& call) {
    check_dtype(dtype);
    py::gil_scoped_release release;
    if (dtype == "float64")
        call(double{});
    else
        call(float{});
}

// The float32 Gaussian kernels take accumulate_f64 before their last argument (num_threads or
// stream); the float64 ones always accumulate in float64 and have no such argument.  Calls
// call(accumulate_f64, last) for T = float and call(last) for T = double.
template <typename T, typename Last, typename Call>
void with_accumulate(bool accumulate_f64, Last last, Call&& call) {
    if constexpr (std::is_same_v<T, float>)
        call(accumulate_f64, last);
    else
        call(last);
}

// Gaussian products: see cpu/gaussian_cpu.hpp.  x, c, v, u, w, out have the dtype; w == 0
// means no row weights.
void gaussian_matvec_cpu(std::uintptr_t x, std::uintptr_t c, std::uintptr_t v, std::uintptr_t out,
                         i64 n, i64 m, i64 d, i64 b, double sigma, const std::string& dtype,
                         bool accumulate_f64, int num_threads) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        with_accumulate<T>(accumulate_f64, num_threads, [&](auto... tail) {
            contrastx::cpu::gaussian_matvec(ptr<const T>(x), ptr<const T>(c), ptr<const T>(v),
                                            ptr<T>(out), n, m, d, b, sigma, tail...);
        });
    });
}

void gaussian_matvec_exp_sum_cpu(std::uintptr_t x, std::uintptr_t c, std::uintptr_t v,
                                 std::uintptr_t out, i64 n, i64 m, i64 d, i64 b, double sigma,
                                 int num_threads) {
    py::gil_scoped_release release;
    contrastx::cpu::gaussian_matvec_exp_sum(ptr<const double>(x), ptr<const double>(c),
                                            ptr<const double>(v), ptr<double>(out), n, m, d, b,
                                            sigma, num_threads);
}

void gaussian_tile_cpu(std::uintptr_t x, std::uintptr_t c, std::uintptr_t out, i64 n, i64 m,
                       i64 d, double sigma, const std::string& dtype, bool accumulate_f64,
                       int num_threads) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        with_accumulate<T>(accumulate_f64, num_threads, [&](auto... tail) {
            contrastx::cpu::gaussian_tile(ptr<const T>(x), ptr<const T>(c), ptr<T>(out), n, m, d,
                                          sigma, tail...);
        });
    });
}

void gaussian_t_matvec_cpu(std::uintptr_t x, std::uintptr_t c, std::uintptr_t u,
                           std::uintptr_t w, std::uintptr_t out, i64 n, i64 m, i64 d, i64 b,
                           double sigma, const std::string& dtype, bool accumulate_f64,
                           int num_threads) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        with_accumulate<T>(accumulate_f64, num_threads, [&](auto... tail) {
            contrastx::cpu::gaussian_t_matvec(ptr<const T>(x), ptr<const T>(c), ptr<const T>(u),
                                              ptr<const T>(w), ptr<T>(out), n, m, d, b, sigma,
                                              tail...);
        });
    });
}

void gaussian_weighted_gram_cpu(std::uintptr_t x, std::uintptr_t c, std::uintptr_t w,
                                std::uintptr_t out, i64 n, i64 m, i64 d, double sigma,
                                const std::string& dtype, bool accumulate_f64, int num_threads) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        with_accumulate<T>(accumulate_f64, num_threads, [&](auto... tail) {
            contrastx::cpu::gaussian_weighted_gram(ptr<const T>(x), ptr<const T>(c),
                                                   ptr<const T>(w), ptr<T>(out), n, m, d, sigma,
                                                   tail...);
        });
    });
}

// Contrastive losses: see cpu/contrastive_cpu.hpp for the contract.  labels are int64 class
// ids in [0, m); w, c, lse, row_loss, grad_x (and the CUDA workspace inv_norm) have the dtype.
void supcon_forward_cpu(std::uintptr_t x, std::uintptr_t labels, std::uintptr_t w,
                        std::uintptr_t c, std::uintptr_t lse, std::uintptr_t row_loss, i64 m, i64 d,
                        double tau, bool normalize, double eps, const std::string& dtype,
                        int num_threads) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        contrastx::cpu::supcon_forward(ptr<const T>(x), ptr<const i64>(labels), ptr<const T>(w),
                                       ptr<const T>(c), ptr<T>(lse), ptr<T>(row_loss), m, d, tau,
                                       normalize, eps, num_threads);
    });
}

void supcon_backward_cpu(std::uintptr_t x, std::uintptr_t labels, std::uintptr_t w,
                         std::uintptr_t c, std::uintptr_t lse, std::uintptr_t grad_x, i64 m,
                         i64 d, double tau, bool normalize, double eps, double grad_scale,
                         const std::string& dtype, int num_threads) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        contrastx::cpu::supcon_backward(ptr<const T>(x), ptr<const i64>(labels), ptr<const T>(w),
                                        ptr<const T>(c), ptr<const T>(lse), ptr<T>(grad_x), m, d,
                                        tau, normalize, eps, grad_scale, num_threads);
    });
}

// VICReg: state is float64 with vicreg_state_size(d) entries, filled by the forward pass and
// read by the backward pass.
void vicreg_forward_cpu(std::uintptr_t z1, std::uintptr_t z2, std::uintptr_t out,
                        std::uintptr_t state, i64 n, i64 d, double lam, double mu, double nu,
                        double gamma, double eps, const std::string& dtype, int num_threads) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        contrastx::cpu::vicreg_forward(ptr<const T>(z1), ptr<const T>(z2), ptr<T>(out),
                                       ptr<double>(state), n, d, lam, mu, nu, gamma, eps,
                                       num_threads);
    });
}

void vicreg_backward_cpu(std::uintptr_t z1, std::uintptr_t z2, std::uintptr_t state,
                         std::uintptr_t g1, std::uintptr_t g2, i64 n, i64 d, double lam,
                         double grad_scale, const std::string& dtype, int num_threads) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        contrastx::cpu::vicreg_backward(ptr<const T>(z1), ptr<const T>(z2),
                                        ptr<const double>(state), ptr<T>(g1), ptr<T>(g2), n, d,
                                        lam, grad_scale, num_threads);
    });
}

// Row-selection Gram products: see cpu/selected_gram_cpu.hpp.  z has the dtype ("float64",
// "float32" or "int16"; int16 rows need row_scale, float64, one per row of z, else 0); ptr, cols
// int64; rows int32; v (absent for the row sums) and out float64; arithmetic "float64" or
// "float32" (float32 and int16 rows only).
contrastx::cpu::Arithmetic arithmetic_of(const std::string& name) {
    if (name == "float64") return contrastx::cpu::Arithmetic::float64;
    if (name == "float32") return contrastx::cpu::Arithmetic::float32;
    throw std::invalid_argument("arithmetic must be 'float64' or 'float32'; got '" + name + "'");
}

template <typename Call>
void dispatch_rows(const std::string& dtype, std::uintptr_t row_scale, Call&& call) {
    if (dtype == "int16") {
        if (row_scale == 0) throw std::invalid_argument("int16 rows need their row scales");
        py::gil_scoped_release release;
        call(std::int16_t{});
        return;
    }
    if (row_scale != 0) throw std::invalid_argument("row scales are for int16 rows only");
    dispatch(dtype, std::forward<Call>(call));
}

void selected_gram_matvec_cpu(std::uintptr_t z, i64 n, i64 m, std::uintptr_t sel_ptr,
                              std::uintptr_t rows, i64 n_sel, std::uintptr_t cols, i64 b,
                              std::uintptr_t v, std::uintptr_t out, const std::string& dtype,
                              int num_threads, std::uintptr_t row_scale,
                              const std::string& arithmetic) {
    const auto arith = arithmetic_of(arithmetic);
    dispatch_rows(dtype, row_scale, [&](auto t) {
        using T = decltype(t);
        auto args = [&](auto... zs) {
            contrastx::cpu::selected_gram_matvec(zs..., n, m, ptr<const i64>(sel_ptr),
                                                 ptr<const std::int32_t>(rows), n_sel,
                                                 ptr<const i64>(cols), b, ptr<const double>(v),
                                                 ptr<double>(out), num_threads, arith);
        };
        if constexpr (std::is_same_v<T, std::int16_t>)
            args(ptr<const T>(z), ptr<const double>(row_scale));
        else
            args(ptr<const T>(z));
    });
}

void selected_row_sums_cpu(std::uintptr_t z, i64 n, i64 m, std::uintptr_t sel_ptr,
                           std::uintptr_t rows, i64 n_sel, std::uintptr_t cols, i64 b,
                           std::uintptr_t out, const std::string& dtype, int num_threads,
                           std::uintptr_t row_scale, const std::string& arithmetic) {
    const auto arith = arithmetic_of(arithmetic);
    dispatch_rows(dtype, row_scale, [&](auto t) {
        using T = decltype(t);
        auto args = [&](auto... zs) {
            contrastx::cpu::selected_row_sums(zs..., n, m, ptr<const i64>(sel_ptr),
                                              ptr<const std::int32_t>(rows), n_sel,
                                              ptr<const i64>(cols), b, ptr<double>(out),
                                              num_threads, arith);
        };
        if constexpr (std::is_same_v<T, std::int16_t>)
            args(ptr<const T>(z), ptr<const double>(row_scale));
        else
            args(ptr<const T>(z));
    });
}

bool quantize_rows_cpu(std::uintptr_t z, i64 n, i64 m, std::uintptr_t col_scale, std::uintptr_t q,
                       std::uintptr_t row_scale, int num_threads) {
    py::gil_scoped_release release;
    return contrastx::cpu::quantize_rows(ptr<const double>(z), n, m, ptr<const double>(col_scale),
                                         ptr<std::int16_t>(q), ptr<double>(row_scale),
                                         num_threads);
}

#ifdef CONTRASTX_WITH_CUDA
// CUDA kernels: device pointers of the current device, launched on `stream`.
void gaussian_matvec_cuda(std::uintptr_t x, std::uintptr_t c, std::uintptr_t v,
                          std::uintptr_t out, i64 n, i64 m, i64 d, i64 b, double sigma,
                          const std::string& dtype, bool accumulate_f64, std::uintptr_t stream) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        with_accumulate<T>(accumulate_f64, stream, [&](auto... tail) {
            contrastx::cuda::gaussian_matvec(ptr<const T>(x), ptr<const T>(c), ptr<const T>(v),
                                             ptr<T>(out), n, m, d, b, sigma, tail...);
        });
    });
}

// workspace: gaussian_t_workspace_bytes(n, m, b, acc64) bytes of device memory; w == 0: none.
void gaussian_t_matvec_cuda(std::uintptr_t x, std::uintptr_t c, std::uintptr_t u,
                            std::uintptr_t w, std::uintptr_t workspace, std::uintptr_t out, i64 n,
                            i64 m, i64 d, i64 b, double sigma, const std::string& dtype,
                            bool accumulate_f64, std::uintptr_t stream) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        // ptr<T>: the float64 overload takes a double*, the float32 one a void*.
        with_accumulate<T>(accumulate_f64, stream, [&](auto... tail) {
            contrastx::cuda::gaussian_t_matvec(ptr<const T>(x), ptr<const T>(c), ptr<const T>(u),
                                               ptr<const T>(w), ptr<T>(workspace), ptr<T>(out), n,
                                               m, d, b, sigma, tail...);
        });
    });
}

// workspace: gaussian_gram_workspace_bytes(n, m, acc64) bytes of device memory; w == 0: none.
void gaussian_weighted_gram_cuda(std::uintptr_t x, std::uintptr_t c, std::uintptr_t w,
                                 std::uintptr_t workspace, std::uintptr_t out, i64 n, i64 m, i64 d,
                                 double sigma, const std::string& dtype, bool accumulate_f64,
                                 std::uintptr_t stream) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        with_accumulate<T>(accumulate_f64, stream, [&](auto... tail) {
            contrastx::cuda::gaussian_weighted_gram(ptr<const T>(x), ptr<const T>(c),
                                                    ptr<const T>(w), ptr<void>(workspace),
                                                    ptr<T>(out), n, m, d, sigma, tail...);
        });
    });
}

// VICReg on CUDA: state as for the CPU; workspace vicreg_cuda_workspace_bytes(n, d) bytes.
void vicreg_forward_cuda(std::uintptr_t z1, std::uintptr_t z2, std::uintptr_t out,
                         std::uintptr_t state, std::uintptr_t workspace, i64 n, i64 d, double lam,
                         double mu, double nu, double gamma, double eps, const std::string& dtype,
                         std::uintptr_t stream) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        contrastx::cuda::vicreg_forward(ptr<const T>(z1), ptr<const T>(z2), ptr<T>(out),
                                        ptr<double>(state), ptr<void>(workspace), n, d, lam, mu,
                                        nu, gamma, eps, stream);
    });
}

void vicreg_backward_cuda(std::uintptr_t z1, std::uintptr_t z2, std::uintptr_t state,
                          std::uintptr_t g1, std::uintptr_t g2, i64 n, i64 d, double lam,
                          double grad_scale, const std::string& dtype, std::uintptr_t stream) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        contrastx::cuda::vicreg_backward(ptr<const T>(z1), ptr<const T>(z2),
                                         ptr<const double>(state), ptr<T>(g1), ptr<T>(g2), n, d,
                                         lam, grad_scale, stream);
    });
}

void supcon_forward_cuda(std::uintptr_t x, std::uintptr_t labels, std::uintptr_t w,
                         std::uintptr_t c, std::uintptr_t lse, std::uintptr_t row_loss,
                         std::uintptr_t inv_norm, i64 m, i64 d, double tau, bool normalize,
                         double eps, const std::string& dtype, std::uintptr_t stream) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        contrastx::cuda::supcon_forward(ptr<const T>(x), ptr<const i64>(labels), ptr<const T>(w),
                                        ptr<const T>(c), ptr<T>(lse), ptr<T>(row_loss),
                                        ptr<T>(inv_norm), m, d, tau, normalize, eps, stream);
    });
}

void supcon_backward_cuda(std::uintptr_t x, std::uintptr_t labels, std::uintptr_t w,
                          std::uintptr_t c, std::uintptr_t lse, std::uintptr_t grad_x,
                          std::uintptr_t inv_norm, i64 m, i64 d, double tau, bool normalize,
                          double eps, double grad_scale, const std::string& dtype,
                          std::uintptr_t stream) {
    dispatch(dtype, [&](auto t) {
        using T = decltype(t);
        contrastx::cuda::supcon_backward(ptr<const T>(x), ptr<const i64>(labels), ptr<const T>(w),
                                         ptr<const T>(c), ptr<const T>(lse), ptr<T>(grad_x),
                                         ptr<T>(inv_norm), m, d, tau, normalize, eps, grad_scale,
                                         stream);
    });
}
#endif

std::string cpu_isa() { return contrastx::cpu::isa_name(contrastx::cpu::active_isa()); }
std::string cpu_isa_best() { return contrastx::cpu::isa_name(contrastx::cpu::best_isa()); }

void set_cpu_isa(const std::string& name) {
    using contrastx::cpu::Isa;
    for (Isa isa : {Isa::baseline, Isa::avx2, Isa::avx512})
        if (name == contrastx::cpu::isa_name(isa)) return contrastx::cpu::set_active_isa(isa);
    throw std::invalid_argument("unknown instruction-set level '" + name +
                                "' (avx512, avx2 or baseline)");
}

py::dict build_info() {
    py::dict info;
    info["version"] = CONTRASTX_VERSION;
    info["cpu"] = true;
#ifdef CONTRASTX_WITH_CUDA
    info["cuda_compiled"] = true;
    info["cuda_architectures"] = CONTRASTX_CUDA_ARCHITECTURES;
    info["cuda_version"] = CONTRASTX_CUDA_VERSION;
    info["cuda_compiler"] = CONTRASTX_CUDA_COMPILER;
#else
    info["cuda_compiled"] = false;
    info["cuda_architectures"] = "";
    info["cuda_version"] = "";
    info["cuda_compiler"] = "";
#endif
    info["cuda_option"] = CONTRASTX_CUDA_OPTION;
    info["openmp"] = contrastx::cpu::openmp_enabled();
    info["compiler"] = CONTRASTX_CXX_COMPILER;
    info["build_type"] = CONTRASTX_BUILD_TYPE;
    info["simd"] = contrastx::cpu::isa_name(contrastx::cpu::best_isa());
    return info;
}

int cuda_device_count() {
#ifdef CONTRASTX_WITH_CUDA
    return contrastx::cuda::device_count(nullptr);
#else
    return 0;
#endif
}

py::dict cuda_runtime_info() {
    py::dict info;
#ifdef CONTRASTX_WITH_CUDA
    std::string error;
    info["device_count"] = contrastx::cuda::device_count(&error);
    info["error"] = error;
    info["runtime_version"] = contrastx::cuda::runtime_version();
    info["driver_version"] = contrastx::cuda::driver_version();
#else
    info["device_count"] = 0;
    info["error"] = "contrastx._C was built without CUDA";
    info["runtime_version"] = 0;
    info["driver_version"] = 0;
#endif
    return info;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
    m.doc() = "contrastx native kernels (CPU, and CUDA when compiled in).";
    m.attr("cuda_compiled") =
#ifdef CONTRASTX_WITH_CUDA
        true;
#else
        false;
#endif
    m.def("build_info", &build_info, "What this build of the extension contains.");
    m.def("cuda_device_count", &cuda_device_count,
          "Number of visible CUDA devices; 0 without CUDA support, driver or GPU (never raises).");
    m.def("cuda_runtime_info", &cuda_runtime_info,
          "Device count, query error, CUDA runtime and driver versions (never raises).");
    m.def("openmp_max_threads", &contrastx::cpu::openmp_max_threads);
    m.def("cpu_isa", &cpu_isa,
          "Instruction-set level the CPU kernels use now: 'avx512', 'avx2' or 'baseline'.");
    m.def("cpu_isa_best", &cpu_isa_best, "Best instruction-set level of this CPU and build.");
    m.def("set_cpu_isa", &set_cpu_isa, py::arg("name"),
          "Use this instruction-set level (at most cpu_isa_best()).");
    m.def("gaussian_matvec_cpu", &gaussian_matvec_cpu, py::arg("x"), py::arg("c"), py::arg("v"),
          py::arg("out"), py::arg("n"), py::arg("m"), py::arg("d"), py::arg("b"), py::arg("sigma"),
          py::arg("dtype"), py::arg("accumulate_f64") = false, py::arg("num_threads") = 0,
          "out (n, b) = K(x, c) @ v on host pointers (C-contiguous, row-major).");
    m.def("gaussian_matvec_exp_sum_cpu", &gaussian_matvec_exp_sum_cpu, py::arg("x"),
          py::arg("c"), py::arg("v"), py::arg("out"), py::arg("n"), py::arg("m"), py::arg("d"),
          py::arg("b"), py::arg("sigma"), py::arg("num_threads") = 0,
          "out (b) = sum over the rows of exp(K(x, c) @ v), float64 host pointers.");
    m.def("gaussian_tile_cpu", &gaussian_tile_cpu, py::arg("x"), py::arg("c"), py::arg("out"),
          py::arg("n"), py::arg("m"), py::arg("d"), py::arg("sigma"), py::arg("dtype"),
          py::arg("accumulate_f64"), py::arg("num_threads"),
          "out (n, m) = K(x, c) on host pointers (C-contiguous, row-major).");
    m.def("gaussian_t_matvec_cpu", &gaussian_t_matvec_cpu, py::arg("x"), py::arg("c"),
          py::arg("u"), py::arg("w"), py::arg("out"), py::arg("n"), py::arg("m"), py::arg("d"),
          py::arg("b"), py::arg("sigma"), py::arg("dtype"), py::arg("accumulate_f64"),
          py::arg("num_threads"), "out (m, b) = K(x, c)^T diag(w) u on the CPU.");
    m.def("gaussian_weighted_gram_cpu", &gaussian_weighted_gram_cpu, py::arg("x"), py::arg("c"),
          py::arg("w"), py::arg("out"), py::arg("n"), py::arg("m"), py::arg("d"),
          py::arg("sigma"), py::arg("dtype"), py::arg("accumulate_f64"), py::arg("num_threads"),
          "out (m, m) = K(x, c)^T diag(w) K(x, c) on the CPU.");
    m.def("selected_gram_matvec_cpu", &selected_gram_matvec_cpu, py::arg("z"), py::arg("n"),
          py::arg("m"), py::arg("ptr"), py::arg("rows"), py::arg("n_sel"), py::arg("cols"),
          py::arg("b"), py::arg("v"), py::arg("out"), py::arg("dtype"), py::arg("num_threads"),
          py::arg("row_scale") = 0, py::arg("arithmetic") = "float64",
          "out (b, m) = sum over the selected rows z_i of z_i (z_i . v_j), float64.");
    m.def("quantize_rows_cpu", &quantize_rows_cpu, py::arg("z"), py::arg("n"), py::arg("m"),
          py::arg("col_scale"), py::arg("q"), py::arg("row_scale"), py::arg("num_threads"),
          "16-bit rows of z (n, m) float64: q int16 and row_scale; false if z is not finite.");
    m.def("selected_row_sums_cpu", &selected_row_sums_cpu, py::arg("z"), py::arg("n"),
          py::arg("m"), py::arg("ptr"), py::arg("rows"), py::arg("n_sel"), py::arg("cols"),
          py::arg("b"), py::arg("out"), py::arg("dtype"), py::arg("num_threads"),
          py::arg("row_scale") = 0, py::arg("arithmetic") = "float64",
          "out (b, m) = sum of the selected rows of z, float64.");
    m.def("supcon_forward_cpu", &supcon_forward_cpu, py::arg("x"), py::arg("labels"), py::arg("w"),
          py::arg("c"), py::arg("lse"), py::arg("row_loss"), py::arg("m"), py::arg("d"),
          py::arg("tau"), py::arg("normalize"), py::arg("eps"), py::arg("dtype"),
          py::arg("num_threads") = 0,
          "Streaming SupCon forward: lse (m), row_loss (m) on host pointers.");
    m.def("supcon_backward_cpu", &supcon_backward_cpu, py::arg("x"), py::arg("labels"),
          py::arg("w"), py::arg("c"), py::arg("lse"), py::arg("grad_x"), py::arg("m"),
          py::arg("d"), py::arg("tau"), py::arg("normalize"), py::arg("eps"),
          py::arg("grad_scale"), py::arg("dtype"), py::arg("num_threads") = 0,
          "Streaming SupCon backward: grad_x (m, d) on host pointers.");
    m.def("vicreg_state_size", &contrastx::cpu::vicreg_state_size, py::arg("d"),
          "float64 entries of the state the VICReg forward pass hands to the backward pass.");
    m.def("vicreg_forward_cpu", &vicreg_forward_cpu, py::arg("z1"), py::arg("z2"), py::arg("out"),
          py::arg("state"), py::arg("n"), py::arg("d"), py::arg("lam"), py::arg("mu"),
          py::arg("nu"), py::arg("gamma"), py::arg("eps"), py::arg("dtype"),
          py::arg("num_threads") = 0,
          "VICReg forward: out (4,) = loss, invariance, variance, covariance terms; fills state.");
    m.def("vicreg_backward_cpu", &vicreg_backward_cpu, py::arg("z1"), py::arg("z2"),
          py::arg("state"), py::arg("g1"), py::arg("g2"), py::arg("n"), py::arg("d"),
          py::arg("lam"), py::arg("grad_scale"), py::arg("dtype"), py::arg("num_threads") = 0,
          "VICReg backward from the forward state: g1, g2 (n, d).");
#ifdef CONTRASTX_WITH_CUDA
    m.def("gaussian_t_workspace_bytes", &contrastx::cuda::gaussian_t_workspace_bytes,
          py::arg("n"), py::arg("m"), py::arg("b"), py::arg("accumulate_in_double"));
    m.def("gaussian_t_matvec_cuda", &gaussian_t_matvec_cuda, py::arg("x"), py::arg("c"),
          py::arg("u"), py::arg("w"), py::arg("workspace"), py::arg("out"), py::arg("n"),
          py::arg("m"), py::arg("d"), py::arg("b"), py::arg("sigma"), py::arg("dtype"),
          py::arg("accumulate_f64"), py::arg("stream"),
          "out (m, b) = K(x, c)^T diag(w) u on a CUDA stream.");
    m.def("gaussian_gram_workspace_bytes", &contrastx::cuda::gaussian_gram_workspace_bytes,
          py::arg("n"), py::arg("m"), py::arg("accumulate_in_double"));
    m.def("gaussian_weighted_gram_cuda", &gaussian_weighted_gram_cuda, py::arg("x"), py::arg("c"),
          py::arg("w"), py::arg("workspace"), py::arg("out"), py::arg("n"), py::arg("m"),
          py::arg("d"), py::arg("sigma"), py::arg("dtype"), py::arg("accumulate_f64"),
          py::arg("stream"), "out (m, m) = K(x, c)^T diag(w) K(x, c) on a CUDA stream.");
    m.def("vicreg_cuda_workspace_bytes", &contrastx::cuda::vicreg_cuda_workspace_bytes,
          py::arg("n"), py::arg("d"));
    m.def("vicreg_forward_cuda", &vicreg_forward_cuda, py::arg("z1"), py::arg("z2"),
          py::arg("out"), py::arg("state"), py::arg("workspace"), py::arg("n"), py::arg("d"),
          py::arg("lam"), py::arg("mu"), py::arg("nu"), py::arg("gamma"), py::arg("eps"),
          py::arg("dtype"), py::arg("stream"), "VICReg forward on a CUDA stream.");
    m.def("vicreg_backward_cuda", &vicreg_backward_cuda, py::arg("z1"), py::arg("z2"),
          py::arg("state"), py::arg("g1"), py::arg("g2"), py::arg("n"), py::arg("d"),
          py::arg("lam"), py::arg("grad_scale"), py::arg("dtype"), py::arg("stream"),
          "VICReg backward on a CUDA stream.");
    m.def("supcon_forward_cuda", &supcon_forward_cuda, py::arg("x"), py::arg("labels"),
          py::arg("w"), py::arg("c"), py::arg("lse"), py::arg("row_loss"), py::arg("inv_norm"),
          py::arg("m"), py::arg("d"), py::arg("tau"), py::arg("normalize"), py::arg("eps"),
          py::arg("dtype"), py::arg("stream") = 0,
          "Streaming SupCon forward on device pointers, on `stream`.");
    m.def("supcon_backward_cuda", &supcon_backward_cuda, py::arg("x"), py::arg("labels"),
          py::arg("w"), py::arg("c"), py::arg("lse"), py::arg("grad_x"), py::arg("inv_norm"),
          py::arg("m"), py::arg("d"), py::arg("tau"), py::arg("normalize"), py::arg("eps"),
          py::arg("grad_scale"), py::arg("dtype"), py::arg("stream") = 0,
          "Streaming SupCon backward on device pointers, on `stream`.");
    m.def("gaussian_matvec_cuda", &gaussian_matvec_cuda, py::arg("x"), py::arg("c"),
          py::arg("v"), py::arg("out"), py::arg("n"), py::arg("m"), py::arg("d"), py::arg("b"),
          py::arg("sigma"), py::arg("dtype"), py::arg("accumulate_f64") = false,
          py::arg("stream") = 0,
          "out (n, b) = K(x, c) @ v on device pointers of the current device, on `stream`.");
#endif
}
