"""Choosing between the native (C++/CUDA) kernels and the pure-torch reference of an op.

Every op with a native kernel takes ``backend`` in :data:`BACKENDS` and asks
:func:`resolve_backend` which path to run, so the rules and the errors are the same everywhere:

* ``"torch"``: the torch reference, always available.
* ``"auto"``: the native kernel when one exists for the tensors' device and dtype and the
  extension is usable, else the torch reference (never an error).
* ``"native"``: the native kernel, or an error saying why it cannot run.
"""

from __future__ import annotations

import torch

from .. import _native

__all__ = ["BACKENDS", "NATIVE_DTYPES", "require_device", "resolve_backend"]

#: The values every ``backend`` argument accepts.
BACKENDS = ("auto", "native", "torch")
#: The dtypes of the native kernels, with the names the extension uses for them.
NATIVE_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


def resolve_backend(
    backend: str,
    device: torch.device | str,
    *,
    op: str,
    dtype: torch.dtype | None = None,
    cuda_ok: bool = True,
    needs_grad: bool = False,
) -> str:
    """Return ``"native"`` or ``"torch"``: the path ``op`` takes for tensors on ``device``.

    Parameters
    ----------
    backend : {"auto", "native", "torch"}
        The caller's choice.
    device : torch.device or str
        Device of the op's tensors.
    op : str
        What the kernel computes, for error messages (``"the Gaussian kernel product"``).
    dtype : torch.dtype, optional
        Dtype of the op's tensors, when the op accepts others than float32 and float64.
    cuda_ok : bool
        Whether the op has a CUDA kernel (else its native kernel runs on CPU tensors only).
    needs_grad : bool
        An input requires a gradient the native kernel cannot give: ``"auto"`` takes torch.

    Returns
    -------
    str
        ``"native"`` or ``"torch"``.

    Raises
    ------
    ValueError
        ``backend`` is not one of :data:`BACKENDS`.
    TypeError
        ``backend="native"`` with a dtype other than float32 or float64.
    RuntimeError
        ``backend="native"`` and the op has no native kernel for ``device``, or the
        extension (or its CUDA part) is unavailable; the message says which.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if backend == "torch":
        return "torch"
    dev = torch.device(device).type
    dtype_ok = dtype is None or dtype in NATIVE_DTYPES
    if backend == "auto":
        if needs_grad or not dtype_ok:
            return "torch"
        if dev == "cpu":
            return "native" if _native.cpu_available() else "torch"
        if dev == "cuda" and cuda_ok:
            return "native" if _native.cuda_available() else "torch"
        return "torch"
    if not dtype_ok:
        raise TypeError(f"backend='native' for {op} needs float32 or float64 inputs; got {dtype}")
    if dev == "cpu":
        _native.require_cpu()
    elif dev == "cuda" and cuda_ok:
        _native.require_cuda()
    else:
        where = "CPU and CUDA tensors" if cuda_ok else "CPU tensors"
        raise RuntimeError(
            f"backend='native' for {op} supports {where}; got a tensor on {dev}. "
            "Use backend='torch' or 'auto'."
        )
    return "native"


def require_device(device: str | torch.device | None) -> torch.device:
    """A torch device (``None``: the CPU), with a clear error when CUDA is asked for but absent.

    Raises
    ------
    RuntimeError
        A CUDA device is requested but this torch has no CUDA, or the index is beyond the
        visible GPUs.
    """
    dev = torch.device("cpu" if device is None else device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {dev} requested but CUDA is not available in this torch")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"device {dev} requested but only {torch.cuda.device_count()} GPU(s) are visible"
            )
    return dev
