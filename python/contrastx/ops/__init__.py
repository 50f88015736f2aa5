"""Numerical operations with a pure-torch reference and native (C++/CUDA) kernels."""

from .gaussian import gaussian_kernel, gaussian_kernel_matvec, gaussian_kernel_matvec_reference
from .nystrom import (
    gaussian_kernel_tile,
    kernel_t_matvec,
    weighted_gram,
    weighted_gram_rhs,
    whitened_tile,
)

__all__ = [
    "gaussian_kernel",
    "gaussian_kernel_matvec",
    "gaussian_kernel_matvec_reference",
    "gaussian_kernel_tile",
    "kernel_t_matvec",
    "weighted_gram",
    "weighted_gram_rhs",
    "whitened_tile",
]
