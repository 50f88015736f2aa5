"""One backend resolver and one exception vocabulary for every op.

Wrong Python type or dtype -> TypeError; wrong shape, device or value -> ValueError; a native
backend that cannot run -> RuntimeError; the same words for the same problem in every op.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from contrastx import _native
from contrastx.ops import (
    RowSelection,
    gaussian_kernel_matvec,
    gaussian_kernel_t_matvec,
    gaussian_weighted_gram,
    nt_xent_loss_fused,
    selected_row_sums,
    supcon_loss_fused,
    vicreg_loss_fused,
)
from contrastx.ops._backend import resolve_backend
from contrastx.ops._validation import check_positive
from contrastx.ops.nystrom import kernel_t_matvec, masked_gram_matvec, weighted_gram

GEN = torch.Generator().manual_seed(30)
X = torch.randn(12, 3, generator=GEN, dtype=torch.float64)
C = torch.randn(4, 3, generator=GEN, dtype=torch.float64)
V = torch.randn(4, 2, generator=GEN, dtype=torch.float64)
Y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1, 2])
SEL = RowSelection.from_lists([[0, 3], [5]], n_rows=12)

CALLS = {
    "gaussian_kernel_matvec": lambda b: gaussian_kernel_matvec(X, C, V, 1.0, backend=b),
    "gaussian_kernel_t_matvec": lambda b: gaussian_kernel_t_matvec(X, C, X[:, :2], 1.0, backend=b),
    "gaussian_weighted_gram": lambda b: gaussian_weighted_gram(X, C, 1.0, backend=b),
    "supcon_loss_fused": lambda b: supcon_loss_fused(X, Y, backend=b),
    "nt_xent_loss_fused": lambda b: nt_xent_loss_fused(X, X, backend=b),
    "vicreg_loss_fused": lambda b: vicreg_loss_fused(X, X, backend=b),
    "selected_row_sums": lambda b: selected_row_sums(X, SEL, backend=b),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_unknown_backend_same_message_everywhere(name):
    msg = r"backend must be one of \('auto', 'native', 'torch'\); got 'fast'"
    with pytest.raises(ValueError, match=msg):
        CALLS[name]("fast")


@pytest.mark.parametrize("name", sorted(CALLS))
def test_missing_extension_auto_falls_back_native_raises(name, monkeypatch):
    monkeypatch.setattr(_native, "_tried", True)
    monkeypatch.setattr(_native, "_module", None)
    monkeypatch.setattr(_native, "_error", "ImportError: simulated")
    torch.testing.assert_close(CALLS[name]("auto"), CALLS[name]("torch"), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match=r"contrastx\._C.*simulated"):
        CALLS[name]("native")


def test_resolve_backend_rules(monkeypatch):
    monkeypatch.setattr(_native, "cpu_available", lambda: True)
    monkeypatch.setattr(_native, "cuda_available", lambda: True)
    assert resolve_backend("torch", "meta", op="op") == "torch"
    assert resolve_backend("auto", "cpu", op="op") == "native"
    assert resolve_backend("auto", "cpu", op="op", needs_grad=True) == "torch"
    assert resolve_backend("auto", "cpu", op="op", dtype=torch.float16) == "torch"
    assert resolve_backend("auto", "cuda", op="op") == "native"
    assert resolve_backend("auto", "cuda", op="op", cuda_ok=False) == "torch"
    assert resolve_backend("auto", "meta", op="op") == "torch"
    with pytest.raises(TypeError, match="backend='native' for the op needs float32 or float64"):
        resolve_backend("native", "cpu", op="the op", dtype=torch.float16)
    with pytest.raises(RuntimeError, match="the op supports CPU tensors; got a tensor on cuda"):
        resolve_backend("native", "cuda", op="the op", cuda_ok=False)
    with pytest.raises(RuntimeError, match="supports CPU and CUDA tensors; got a tensor on meta"):
        resolve_backend("native", "meta", op="the op")
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("gpu", "cpu", op="the op")


def test_selection_native_on_another_device_names_the_op():
    z = torch.empty(12, 3, dtype=torch.float64, device="meta")
    with pytest.raises(RuntimeError, match="row-selection Gram products supports CPU tensors"):
        selected_row_sums(z, SEL, backend="native")


# --- the exception vocabulary: each of these raised the other class before -----------------


def test_not_a_tensor_is_a_type_error():
    with pytest.raises(TypeError, match=r"z must be a torch\.Tensor or QuantizedRows, got nd"):
        selected_row_sums(X.numpy(), SEL)
    with pytest.raises(TypeError, match=r"z must be a torch\.Tensor, got ndarray"):
        masked_gram_matvec(X.numpy(), torch.ones(12, 2), V)
    with pytest.raises(TypeError, match=r"whiten must be a torch\.Tensor, got list"):
        weighted_gram(X, C, 1.0, whiten=np.eye(4).tolist())


def test_mismatched_dtype_is_a_type_error_and_device_a_value_error():
    with pytest.raises(TypeError, match=r"z2 dtype torch\.float32 does not match z1 dtype"):
        nt_xent_loss_fused(X, X.float())
    with pytest.raises(TypeError, match=r"u dtype torch\.float32 does not match x dtype"):
        kernel_t_matvec(X, C, X.float(), 1.0)
    with pytest.raises(ValueError, match="u is on meta but x is on cpu"):
        kernel_t_matvec(X, C, torch.empty(12, 2, dtype=torch.float64, device="meta"), 1.0)
    with pytest.raises(ValueError, match="whiten is on meta but x is on cpu"):
        weighted_gram(X, C, 1.0, whiten=torch.empty(4, 4, dtype=torch.float64, device="meta"))


@pytest.mark.parametrize(
    ("value", "exc", "match"),
    [
        ("0.5", TypeError, "temperature must be a real number, got str"),
        (True, TypeError, "temperature must be a real number, got bool"),
        (torch.ones(2), ValueError, r"temperature must be a scalar, got a tensor of shape \(2,\)"),
        (0.0, ValueError, "temperature must be finite and > 0; got 0.0"),
        (float("nan"), ValueError, "temperature must be finite and > 0"),
    ],
)
def test_scalar_parameters(value, exc, match):
    with pytest.raises(exc, match=match):
        check_positive("temperature", value)
    with pytest.raises(exc, match=match):
        supcon_loss_fused(X, Y, value)


def test_scalar_parameters_accepted():
    assert check_positive("sigma", np.float32(0.5)) == 0.5
    assert check_positive("sigma", torch.tensor(2.0)) == 2.0
    assert check_positive("sigma", 3) == 3.0


@pytest.mark.parametrize(
    ("sigma", "exc"), [("wide", TypeError), (False, TypeError), (-1.0, ValueError)]
)
def test_sigma_same_vocabulary_in_both_kernel_modules(sigma, exc):
    with pytest.raises(exc, match="sigma must be"):
        weighted_gram(X, C, sigma)
    with pytest.raises(exc, match="sigma must be"):
        gaussian_kernel_matvec(X, C, V, sigma)


@pytest.mark.parametrize(
    ("sigma", "exc"), [("wide", TypeError), (None, TypeError), (0.0, ValueError)]
)
def test_nplm_sigma_check_speaks_the_same_vocabulary(sigma, exc):
    from contrastx.nplm.kernel import check_sigma

    with pytest.raises(exc, match="sigma must be"):
        check_sigma(sigma)
