"""Numerical operations with a pure-torch reference and native (C++/CUDA) kernels."""

from .._native import cpu_isa, cpu_isa_levels, set_cpu_isa, use_cpu_isa
from .contrastive import (
    nt_xent_loss_fused,
    supcon_loss_fused,
    supcon_loss_reference,
    vicreg_loss_fused,
    vicreg_loss_reference,
)
from .gaussian import (
    gaussian_kernel,
    gaussian_kernel_exp_sum,
    gaussian_kernel_exp_sum_reference,
    gaussian_kernel_matvec,
    gaussian_kernel_matvec_reference,
    gaussian_kernel_t_matvec,
    gaussian_kernel_t_matvec_reference,
    gaussian_weighted_gram,
    gaussian_weighted_gram_reference,
)
from .nystrom import (
    gaussian_kernel_tile,
    kernel_t_matvec,
    weighted_gram,
    weighted_gram_rhs,
    whitened_tile,
)
from .selections import QuantizedRows, RowSelection, selected_gram_matvec, selected_row_sums
from .similarity import cosine_similarity_matrix, covariance, off_diagonal

__all__ = [
    "QuantizedRows",
    "RowSelection",
    "cosine_similarity_matrix",
    "covariance",
    "cpu_isa",
    "cpu_isa_levels",
    "gaussian_kernel",
    "gaussian_kernel_exp_sum",
    "gaussian_kernel_exp_sum_reference",
    "gaussian_kernel_matvec",
    "gaussian_kernel_matvec_reference",
    "gaussian_kernel_t_matvec",
    "gaussian_kernel_t_matvec_reference",
    "gaussian_kernel_tile",
    "gaussian_weighted_gram",
    "gaussian_weighted_gram_reference",
    "kernel_t_matvec",
    "nt_xent_loss_fused",
    "off_diagonal",
    "selected_gram_matvec",
    "selected_row_sums",
    "set_cpu_isa",
    "supcon_loss_fused",
    "supcon_loss_reference",
    "use_cpu_isa",
    "vicreg_loss_fused",
    "vicreg_loss_reference",
    "weighted_gram",
    "weighted_gram_rhs",
    "whitened_tile",
]
