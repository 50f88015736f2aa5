"""native_info(), the extension's build report and the contrastx-info command."""

from __future__ import annotations

import json
import subprocess
import sys

import contrastx
import pytest
import torch
from contrastx import _native
from contrastx.cli import info as info_cli

KEYS = {
    "extension_loaded": bool,
    "import_error": (str, type(None)),
    "cpu_kernels": bool,
    "openmp": bool,
    "openmp_max_threads": int,
    "cuda_compiled": bool,
    "cuda_architectures": str,
    "cuda_version": str,
    "cuda_kernels": bool,
    "cuda_device_count": int,
    "cuda_runtime_error": (str, type(None)),
    "cuda_runtime_version": int,
    "cuda_driver_version": int,
    "torch_version": (str, type(None)),
    "torch_cuda_available": bool,
    "torch_cuda_device_count": int,
    "build": dict,
}


def test_native_info_keys_and_types():
    info = contrastx.native_info()
    for key, typ in KEYS.items():
        assert key in info, key
        assert isinstance(info[key], typ), (key, info[key])


def test_cpu_kernels_available_in_installed_build():
    info = contrastx.native_info()
    assert info["extension_loaded"], info["import_error"]
    assert info["cpu_kernels"] is True
    assert info["import_error"] is None
    build = info["build"]
    assert build["cpu"] is True
    assert isinstance(build["compiler"], str) and build["compiler"]
    assert build["cuda_compiled"] == info["cuda_compiled"]
    assert build["version"] == contrastx.__version__
    if build["openmp"]:
        assert info["openmp_max_threads"] >= 1


def test_cuda_report_is_consistent():
    info = contrastx.native_info()
    assert info["cuda_device_count"] >= 0
    if not info["cuda_compiled"]:
        assert info["cuda_kernels"] is False
        assert info["cuda_architectures"] == ""
        assert info["cuda_device_count"] == 0
    else:
        assert info["cuda_architectures"]
        assert info["cuda_version"]
        assert info["cuda_kernels"] == (info["cuda_device_count"] > 0)
    if not torch.cuda.is_available():
        assert info["torch_cuda_device_count"] == 0


def test_cuda_device_count_never_raises():
    mod = _native.require_cpu()
    count = mod.cuda_device_count()
    assert isinstance(count, int) and count >= 0
    rt = mod.cuda_runtime_info()
    assert rt["device_count"] == count
    if count == 0:
        assert rt["error"]  # why there is no device (no driver, no GPU, or no CUDA build)


def test_require_cuda_message_without_usable_cuda():
    if contrastx.native_info()["cuda_kernels"]:
        pytest.skip("CUDA kernels are usable here")
    with pytest.raises(RuntimeError, match="native CUDA kernels"):
        _native.require_cuda()


def test_import_contrastx_without_extension():
    """Importing contrastx must not fail when contrastx._C cannot be imported."""
    code = (
        "import sys, json\n"
        "sys.modules['contrastx._C'] = None\n"  # makes `from . import _C` raise ImportError
        "import contrastx\n"
        "info = contrastx.native_info()\n"
        "print(json.dumps([info['extension_loaded'], info['cpu_kernels'], info['import_error']]))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, cpu, error = json.loads(res.stdout.strip().splitlines()[-1])
    assert loaded is False and cpu is False
    assert "contrastx._C" in error


def test_info_cli(capsys):
    assert info_cli.main([]) == 0
    text = capsys.readouterr().out
    assert "cpu_kernels" in text and "cuda_compiled" in text
    assert info_cli.main(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cpu_kernels"] is True
