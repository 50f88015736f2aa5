"""Skips shared by the native-op tests: ``@pytest.mark.usefixtures("native_cpu")`` etc."""

from __future__ import annotations

import pytest
import torch
from contrastx import _native


@pytest.fixture
def native_cpu() -> None:
    """Skip unless the compiled extension contrastx._C imports."""
    if not _native.cpu_available():
        pytest.skip(f"contrastx._C not importable: {_native.load_error()}")


@pytest.fixture
def cuda_device() -> None:
    """Skip unless torch sees a CUDA GPU."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible")


@pytest.fixture(autouse=True)
def _skip_native_param_without_extension(request: pytest.FixtureRequest) -> None:
    """Tests parametrised with ``backend="native"`` skip when contrastx._C is missing."""
    spec = getattr(request.node, "callspec", None)
    if spec is not None and spec.params.get("backend") == "native":
        request.getfixturevalue("native_cpu")
