"""contrastx-info says in words whether CUDA is usable; the raw runtime error stays in the dict."""

from __future__ import annotations

import json

import pytest
from contrastx import _native
from contrastx.cli import info as info_cli

NO_DRIVER = {
    "device_count": 0,
    "error": "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA "
    "runtime version",
    "driver_version": 0,
    "runtime_version": 13000,
}


@pytest.mark.parametrize(
    ("compiled", "runtime", "status"),
    [
        (True, NO_DRIVER, "no CUDA GPU visible"),
        (True, {**NO_DRIVER, "error": "cudaErrorNoDevice: no CUDA-capable device"}, None),
        (True, {**NO_DRIVER, "device_count": 2, "error": ""}, "2 CUDA devices usable"),
        (True, {**NO_DRIVER, "device_count": 1, "error": ""}, "1 CUDA device usable"),
        (False, {}, "not compiled in (contrastx._C was built without CUDA)"),
    ],
)
def test_cuda_status(compiled, runtime, status):
    assert _native.cuda_status(compiled, runtime) == (status or "no CUDA GPU visible")


def test_old_driver_is_not_reported_as_no_gpu():
    status = _native.cuda_status(True, {**NO_DRIVER, "driver_version": 12040})
    assert "driver supports CUDA 12.4, older than the CUDA runtime 13.0" in status


def test_other_runtime_errors_are_kept_in_the_status():
    rt = {**NO_DRIVER, "error": "cudaErrorDevicesUnavailable: busy", "driver_version": 13000}
    expected = "no CUDA GPU visible (cudaErrorDevicesUnavailable: busy)"
    assert _native.cuda_status(True, rt) == expected


def test_info_text_says_no_gpu_and_json_keeps_the_raw_error(monkeypatch, capsys):
    mod = _native.load()
    if mod is None or not mod.cuda_compiled:
        pytest.skip("needs an extension built with CUDA")

    class NoGpu:
        def __getattr__(self, name):
            return getattr(mod, name)

        def cuda_runtime_info(self):
            return dict(NO_DRIVER)

    monkeypatch.setattr(_native, "_module", NoGpu())
    assert info_cli.main([]) == 0
    text = capsys.readouterr().out
    assert "cuda_status" in text and "no CUDA GPU visible" in text
    assert "InsufficientDriver" not in text
    assert info_cli.main(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cuda_status"] == "no CUDA GPU visible"
    assert data["cuda_runtime_error"].startswith("cudaErrorInsufficientDriver")
    with pytest.raises(RuntimeError, match="compiled but unusable: no CUDA GPU visible"):
        _native.require_cuda()
