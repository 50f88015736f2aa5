"""Shared by the native-op tests: skips (``@pytest.mark.usefixtures("native_cpu")`` etc.),
the awkward sizes every backend is tested at (``gauss_shape``, ``supcon_shape``, ...), and the
inputs and comparisons of the loss tests (``loss_cases``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import TypeVar

import pytest
import torch
from contrastx import _native

T = TypeVar("T")


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


@pytest.fixture
def cuda_kernels(cuda_device: None) -> None:
    """Skip unless torch sees a CUDA GPU and contrastx's CUDA kernels are usable."""
    info = _native.native_info()
    if not info["cuda_kernels"]:
        pytest.skip(
            "contrastx CUDA kernels unusable: compiled="
            f"{info['cuda_compiled']}, runtime error={info['cuda_runtime_error']}"
        )


@pytest.fixture
def one_and_many_threads() -> Iterator[Callable[[Callable[[], T]], tuple[T, T]]]:
    """``run(fn)``: ``fn()`` on one torch thread and on ``max(2, default)`` threads.

    The thread count is restored afterwards, also when ``fn`` fails.
    """
    default = torch.get_num_threads()

    def run(fn: Callable[[], T]) -> tuple[T, T]:
        torch.set_num_threads(1)
        one = fn()
        torch.set_num_threads(max(2, default))
        return one, fn()

    yield run
    torch.set_num_threads(default)


# --- sizes shared by the native, torch and emulated-CUDA tests ------------------------------------
# Off the CPU blocks (32 / 256 rows, 128 centres, SIMD width 8 / 16, 6 x 16 Gram blocks,
# 4096-row segments) and the CUDA tiles (128 rows, 16 / 32 centres, 16 features, 1 / 4 / 16
# columns), with the empty and featureless cases.

GAUSS_SHAPES = [  # (N, M, d, B) of K(X, C) V
    (1, 1, 1, 1),
    (1, 1, 1, 300),
    (37, 129, 5, 1),
    (33, 17, 2, 300),
    (100, 300, 3, 7),
    (65, 257, 17, 1),
    (130, 131, 33, 9),
    (31, 5, 1, 64),
    (200, 1000, 4, 3),
    (6, 5, 0, 2),
    (6, 0, 3, 4),
    (0, 10, 3, 4),
]
T_SHAPES = [  # (N, M, d, B) of K^T diag(w) U; 9000 and 5000 rows: three and two row segments
    (1, 1, 1, 1),
    (1, 3, 2, 300),
    (37, 129, 5, 1),
    (33, 17, 2, 300),
    (300, 130, 3, 7),
    (9000, 257, 4, 1),
    (5000, 131, 17, 9),
    (40, 20, 0, 3),
    (0, 20, 3, 2),
]
# (N, M, d) of K^T diag(w) K (Gram tiles: 32 / 64 centres, 32-row chunks); 8200 rows: two row
# segments on a GPU.
GRAM_SHAPES = [(1, 1, 1), (2, 7, 3), (37, 129, 5), (300, 17, 2), (600, 131, 17), (513, 200, 4)]
GRAM_SHAPES += [(8200, 40, 3), (100, 70, 0), (0, 9, 2)]
# (M rows, D features, classes); 61 distinct labels of 61 rows: no positives, loss 0.
SUPCON_SHAPES = [(2, 1, 1), (3, 2, 2), (33, 5, 3), (129, 17, 7), (130, 64, 40), (257, 3, 2)]
SUPCON_SHAPES += [(61, 33, 61)]
# (N, D) of VICReg: covariance tiles of 16 features, 32-row chunks, 64-column G padding, the
# CUDA backward's 32 rows x 64 features per block.
VICREG_SHAPES = [(2, 1), (3, 2), (37, 5), (64, 64), (130, 17), (301, 9), (40, 133)]


def _shape_id(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


@pytest.fixture(params=GAUSS_SHAPES, ids=_shape_id)
def gauss_shape(request: pytest.FixtureRequest) -> tuple[int, int, int, int]:
    """``(N, M, d, B)`` of a Gaussian kernel product ``K(X, C) V``."""
    return request.param


@pytest.fixture(params=T_SHAPES, ids=_shape_id)
def t_shape(request: pytest.FixtureRequest) -> tuple[int, int, int, int]:
    """``(N, M, d, B)`` of a transposed product ``K^T diag(w) U``."""
    return request.param


@pytest.fixture(params=GRAM_SHAPES, ids=_shape_id)
def gram_shape(request: pytest.FixtureRequest) -> tuple[int, int, int]:
    """``(N, M, d)`` of a weighted Gram matrix ``K^T diag(w) K``."""
    return request.param


@pytest.fixture(params=SUPCON_SHAPES, ids=_shape_id)
def supcon_shape(request: pytest.FixtureRequest) -> tuple[int, int, int]:
    """``(M, D, classes)`` of a SupCon batch."""
    return request.param


@pytest.fixture(params=VICREG_SHAPES, ids=_shape_id)
def vicreg_shape(request: pytest.FixtureRequest) -> tuple[int, int]:
    """``(N, D)`` of a VICReg pair of views."""
    return request.param


# --- inputs and comparisons of the loss tests -----------------------------------------------------


def rows(m: int, d: int, dtype: torch.dtype, seed: int, device="cpu", scale=1.0) -> torch.Tensor:
    """``(m, d)`` standard normal rows times ``scale`` (drawn in float64)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(m, d, generator=g, dtype=torch.float64) * scale).to(dtype).to(device)


def labels(m: int, k: int, seed: int, device="cpu") -> torch.Tensor:
    """``m`` labels of ``k`` classes with one singleton; ``k >= m``: all distinct, arbitrary."""
    g = torch.Generator().manual_seed(seed + 1)
    if k >= m:
        return torch.randperm(m, generator=g).to(device) * 7 - 3  # distinct: no positives
    y = torch.randint(0, k, (m,), generator=g)
    y[-1] = 10_000  # one singleton anchor: no positive, still a negative
    return y.to(device)


def vicreg_views(n: int, d: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Two correlated ``(n, d)`` views stacked, column scales on both sides of gamma = 1."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.linspace(0.3, 2.0, d, dtype=torch.float64)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
    z2 = z1 + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return torch.cat([z1, z2]).to(dtype)


def loss_and_grad(fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor):
    """``fn(z)`` and its gradient with respect to ``z`` (both detached)."""
    z = z.detach().clone().requires_grad_(True)
    loss = fn(z)
    (grad,) = torch.autograd.grad(loss, z)
    return loss.detach(), grad


def assert_loss_close(loss, grad, loss_ref, grad_ref, rtol, grad_floor=0.0) -> None:
    """Loss relative to ``|loss_ref|``, gradient elements relative to ``max |grad_ref|``."""
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    loss_err = abs(float(loss) - float(loss_ref))
    assert loss_err <= rtol * max(abs(float(loss_ref)), 1e-300) + 1e-300, (loss, loss_ref)
    scale = max(float(grad_ref.abs().max()) if grad_ref.numel() else 0.0, grad_floor)
    err = float((grad.double().cpu() - grad_ref).abs().max()) if grad.numel() else 0.0
    assert err <= rtol * scale + 1e-300, f"grad error {err:.3g} vs scale {scale:.3g}"


@pytest.fixture
def cases() -> SimpleNamespace:
    """The loss tests' helpers: ``rows``, ``labels``, ``vicreg_views``, ``loss_and_grad``,
    ``assert_close`` (see the functions of the same names in this file)."""
    return SimpleNamespace(
        rows=rows,
        labels=labels,
        vicreg_views=vicreg_views,
        loss_and_grad=loss_and_grad,
        assert_close=assert_loss_close,
    )
