// contrastx._C: converts Python arguments and dispatches to the CPU / CUDA kernels.
//
// Tensors arrive as raw data pointers (torch.Tensor.data_ptr()) plus sizes; no libtorch is
// linked.  The Python layer (contrastx.ops) validates shapes, dtypes, devices, contiguity and
// keeps the tensors alive for the duration of the call.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "contrastx_build_config.h"
#include "cpu/gaussian_cpu.hpp"
#ifdef CONTRASTX_WITH_CUDA
#include "cuda/gaussian_cuda.hpp"
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

void gaussian_matvec_cpu(std::uintptr_t x, std::uintptr_t c, std::uintptr_t v, std::uintptr_t out,
                         i64 n, i64 m, i64 d, i64 b, double sigma, const std::string& dtype,
                         bool accumulate_f64, int num_threads) {
    check_dtype(dtype);
    py::gil_scoped_release release;
    if (dtype == "float64")
        contrastx::cpu::gaussian_matvec(ptr<const double>(x), ptr<const double>(c),
                                        ptr<const double>(v), ptr<double>(out), n, m, d, b, sigma,
                                        num_threads);
    else
        contrastx::cpu::gaussian_matvec(ptr<const float>(x), ptr<const float>(c),
                                        ptr<const float>(v), ptr<float>(out), n, m, d, b, sigma,
                                        accumulate_f64, num_threads);
}

#ifdef CONTRASTX_WITH_CUDA
void gaussian_matvec_cuda(std::uintptr_t x, std::uintptr_t c, std::uintptr_t v,
                          std::uintptr_t out, i64 n, i64 m, i64 d, i64 b, double sigma,
                          const std::string& dtype, bool accumulate_f64, std::uintptr_t stream) {
    check_dtype(dtype);
    py::gil_scoped_release release;
    if (dtype == "float64")
        contrastx::cuda::gaussian_matvec(ptr<const double>(x), ptr<const double>(c),
                                         ptr<const double>(v), ptr<double>(out), n, m, d, b, sigma,
                                         stream);
    else
        contrastx::cuda::gaussian_matvec(ptr<const float>(x), ptr<const float>(c),
                                         ptr<const float>(v), ptr<float>(out), n, m, d, b, sigma,
                                         accumulate_f64, stream);
}
#endif

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
    info["simd"] = contrastx::cpu::simd_level();
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
    m.def("gaussian_matvec_cpu", &gaussian_matvec_cpu, py::arg("x"), py::arg("c"), py::arg("v"),
          py::arg("out"), py::arg("n"), py::arg("m"), py::arg("d"), py::arg("b"), py::arg("sigma"),
          py::arg("dtype"), py::arg("accumulate_f64") = false, py::arg("num_threads") = 0,
          "out (n, b) = K(x, c) @ v on host pointers (C-contiguous, row-major).");
#ifdef CONTRASTX_WITH_CUDA
    m.def("gaussian_matvec_cuda", &gaussian_matvec_cuda, py::arg("x"), py::arg("c"),
          py::arg("v"), py::arg("out"), py::arg("n"), py::arg("m"), py::arg("d"), py::arg("b"),
          py::arg("sigma"), py::arg("dtype"), py::arg("accumulate_f64") = false,
          py::arg("stream") = 0,
          "out (n, b) = K(x, c) @ v on device pointers of the current device, on `stream`.");
#endif
}
