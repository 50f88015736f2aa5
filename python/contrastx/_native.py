"""Lazy access to the compiled extension ``contrastx._C``.

Importing :mod:`contrastx` never fails because of the extension: it is imported on first
use, and a missing or broken build is reported by :func:`native_info` and by a
``RuntimeError`` (naming what is missing) when a native backend is requested explicitly.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

__all__ = [
    "CPU_ISA_ENV",
    "cpu_available",
    "cpu_isa",
    "cpu_isa_levels",
    "cuda_available",
    "cuda_status",
    "load",
    "load_error",
    "native_info",
    "require_cpu",
    "require_cuda",
    "set_cpu_isa",
    "use_cpu_isa",
]

#: Environment variable read when the extension is first loaded: the instruction-set level of
#: the CPU kernels ("avx512", "avx2" or "baseline"; at most the best this CPU supports).
CPU_ISA_ENV = "CONTRASTX_CPU_ISA"
_ISA_ORDER = ("baseline", "avx2", "avx512")

_lock = threading.Lock()
_module: ModuleType | None = None
_error: str | None = None
_tried = False


def load() -> ModuleType | None:
    """Import ``contrastx._C`` once; return it, or ``None`` if it cannot be imported."""
    global _module, _error, _tried
    if _tried:
        return _module
    with _lock:
        if not _tried:
            try:
                from . import _C  # type: ignore[attr-defined]

                _module = _C
                _apply_isa_env(_C)
            except Exception as exc:  # ImportError, OSError (bad .so), anything at init
                _module = None
                _error = f"{type(exc).__name__}: {exc}"
            _tried = True
    return _module


def _apply_isa_env(mod: ModuleType) -> None:
    requested = os.environ.get(CPU_ISA_ENV, "").strip().lower()
    if not requested:
        return
    try:
        mod.set_cpu_isa(requested)
    except ValueError as exc:
        warnings.warn(
            f"{CPU_ISA_ENV}={requested!r} ignored: {exc}; the CPU kernels use {mod.cpu_isa()!r}",
            RuntimeWarning,
            stacklevel=3,
        )


def load_error() -> str | None:
    """Why ``contrastx._C`` could not be imported (``None`` if it imported fine)."""
    load()
    return _error


def cpu_available() -> bool:
    """True when the native CPU kernels can be called."""
    return load() is not None


def cuda_available() -> bool:
    """True when CUDA kernels are compiled in and a CUDA device is visible right now."""
    mod = load()
    if mod is None or not getattr(mod, "cuda_compiled", False):
        return False
    return mod.cuda_device_count() > 0


def require_cpu() -> ModuleType:
    """Return the extension module or raise ``RuntimeError`` explaining why it is missing."""
    mod = load()
    if mod is None:
        raise RuntimeError(
            "the native CPU kernels are unavailable: the extension contrastx._C could not be "
            f"imported ({_error}). Reinstall contrastx with its C++ extension "
            "(pip install .) or use backend='torch'."
        )
    return mod


def require_cuda() -> ModuleType:
    """Return the extension module if its CUDA kernels are usable, else raise ``RuntimeError``."""
    mod = require_cpu()
    if not getattr(mod, "cuda_compiled", False):
        raise RuntimeError(
            "the native CUDA kernels are unavailable: contrastx._C was built without CUDA "
            "(no CUDA compiler at build time, or CONTRASTX_CUDA=OFF). Rebuild with nvcc on PATH "
            "and CONTRASTX_CUDA=ON, or use backend='torch'."
        )
    rt = mod.cuda_runtime_info()
    if rt["device_count"] == 0:
        raise RuntimeError(
            f"the native CUDA kernels are compiled but unusable: {cuda_status(True, rt)} "
            f"(CUDA runtime: {rt['error'] or 'no device'}). Use backend='torch'."
        )
    return mod


def cuda_status(compiled: bool, runtime: dict[str, Any]) -> str:
    """One line for people: whether the CUDA kernels can run here, and if not, why.

    Parameters
    ----------
    compiled : bool
        Whether the extension was built with CUDA.
    runtime : dict
        The extension's ``cuda_runtime_info()``: ``device_count``, ``error`` (the CUDA
        runtime's own words), ``driver_version``, ``runtime_version``.

    Returns
    -------
    str
        ``"N CUDA device(s) usable"``, ``"no CUDA GPU visible"`` (with the likely reason when
        the runtime names one), or why compiled-in kernels cannot run.
    """
    if not compiled:
        return "not compiled in (contrastx._C was built without CUDA)"
    count = int(runtime.get("device_count", 0))
    if count > 0:
        return f"{count} CUDA device{'s' if count > 1 else ''} usable"
    error = str(runtime.get("error") or "")
    driver = int(runtime.get("driver_version", 0) or 0)
    if "InsufficientDriver" in error and driver > 0:
        return (
            f"no usable CUDA GPU: the NVIDIA driver supports CUDA {_cuda_version(driver)}, "
            f"older than the CUDA runtime {_cuda_version(runtime.get('runtime_version', 0))} "
            "contrastx._C was built with (update the driver or rebuild with an older toolkit)"
        )
    if "InsufficientDriver" in error or "NoDevice" in error or driver == 0 or not error:
        return "no CUDA GPU visible"
    return f"no CUDA GPU visible ({error})"


def _cuda_version(encoded: object) -> str:
    """CUDA's integer version (``12040``) as ``"12.4"``."""
    v = int(encoded or 0)
    return f"{v // 1000}.{v % 1000 // 10}"


def cpu_isa_levels() -> tuple[str, ...]:
    """Instruction-set levels the CPU kernels can use here, lowest first.

    ``"baseline"`` (SSE2 on x86-64, or the only level of builds for other CPUs), ``"avx2"``
    (x86-64-v3: AVX2 + FMA) and ``"avx512"`` (x86-64-v4), up to the best this CPU supports.
    """
    best = require_cpu().cpu_isa_best()
    return _ISA_ORDER[: _ISA_ORDER.index(best) + 1]


def cpu_isa() -> str:
    """The instruction-set level the CPU kernels use now (see :func:`cpu_isa_levels`)."""
    return str(require_cpu().cpu_isa())


def set_cpu_isa(level: str | None) -> None:
    """Make the CPU kernels use ``level`` (``None``: the best this CPU supports).

    Process-wide; kernels already running finish on the level they started with.  Lower
    levels are for tests and benchmarks (for example the AVX2 code on an AVX-512 machine);
    results agree between levels to rounding, not bitwise.  The environment variable
    ``CONTRASTX_CPU_ISA`` sets the level when the extension is loaded.

    Raises
    ------
    ValueError
        For an unknown level or one this CPU (or this build) does not support.
    """
    mod = require_cpu()
    mod.set_cpu_isa(mod.cpu_isa_best() if level is None else level)


@contextmanager
def use_cpu_isa(level: str | None) -> Iterator[str]:
    """Context manager: :func:`set_cpu_isa` for the block, the previous level restored after."""
    previous = cpu_isa()
    set_cpu_isa(level)
    try:
        yield cpu_isa()
    finally:
        set_cpu_isa(previous)


def native_info() -> dict[str, Any]:
    """What the native extension contains and what is usable now.

    Returns
    -------
    dict
        ``extension_loaded`` (bool), ``import_error`` (str or None), ``cpu_kernels`` (native
        CPU kernels callable), ``cpu_isa`` (instruction-set level in use) and ``cpu_isa_best``,
        ``openmp`` and ``openmp_max_threads``, ``cuda_compiled``,
        ``cuda_architectures``, ``cuda_version`` (of the nvcc used to build), ``cuda_kernels``
        (compiled and a device is visible to the extension's CUDA runtime),
        ``cuda_device_count``, ``cuda_status`` (one line for people: usable, or why not, see
        :func:`cuda_status`), ``cuda_runtime_error`` (the CUDA runtime's raw error),
        ``cuda_runtime_version``,
        ``cuda_driver_version``, ``torch_version``, ``torch_cuda_available``,
        ``torch_cuda_device_count``, and the extension's ``build`` dictionary (compiler,
        build type, SIMD level selected on this CPU, ...).
    """
    mod = load()
    info: dict[str, Any] = {
        "extension_loaded": mod is not None,
        "import_error": _error,
        "cpu_kernels": mod is not None,
        "openmp": False,
        "openmp_max_threads": 0,
        "cpu_isa": None,
        "cpu_isa_best": None,
        "cuda_compiled": False,
        "cuda_architectures": "",
        "cuda_version": "",
        "cuda_kernels": False,
        "cuda_device_count": 0,
        "cuda_status": cuda_status(False, {}) if mod is not None else "extension not loaded",
        "cuda_runtime_error": None,
        "cuda_runtime_version": 0,
        "cuda_driver_version": 0,
        "build": {},
    }
    if mod is not None:
        build = dict(mod.build_info())
        rt = dict(mod.cuda_runtime_info())
        info.update(
            openmp=bool(build["openmp"]),
            openmp_max_threads=int(mod.openmp_max_threads()),
            cpu_isa=str(mod.cpu_isa()),
            cpu_isa_best=str(mod.cpu_isa_best()),
            cuda_compiled=bool(build["cuda_compiled"]),
            cuda_architectures=build["cuda_architectures"],
            cuda_version=build["cuda_version"],
            cuda_device_count=int(rt["device_count"]),
            cuda_runtime_error=rt["error"] or None,
            cuda_runtime_version=int(rt["runtime_version"]),
            cuda_driver_version=int(rt["driver_version"]),
            build=build,
        )
        info["cuda_kernels"] = info["cuda_compiled"] and info["cuda_device_count"] > 0
        info["cuda_status"] = cuda_status(info["cuda_compiled"], rt)
    try:
        import torch

        info["torch_version"] = torch.__version__
        info["torch_cuda_available"] = bool(torch.cuda.is_available())
        info["torch_cuda_device_count"] = (
            int(torch.cuda.device_count()) if info["torch_cuda_available"] else 0
        )
    except Exception as exc:  # torch missing or broken: still report the extension
        info["torch_version"] = None
        info["torch_cuda_available"] = False
        info["torch_cuda_device_count"] = 0
        info["torch_error"] = f"{type(exc).__name__}: {exc}"
    return info
