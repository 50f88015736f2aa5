"""Contrastive losses, one per file: NT-Xent, SupCon, VICReg, VICReg + CE, SupCon + KL."""

from .ntxent import NTXentLoss, nt_xent_loss
from .supcon import SupConLoss, supcon_loss
from .supcon_kl import SupConKLLoss, supcon_kl_loss
from .vicreg import VICRegLoss, covariance_loss, invariance_loss, variance_loss, vicreg_loss
from .vicreg_ce import VICRegCELoss, vicreg_ce_loss

__all__ = [
    "NTXentLoss",
    "SupConKLLoss",
    "SupConLoss",
    "VICRegCELoss",
    "VICRegLoss",
    "covariance_loss",
    "invariance_loss",
    "nt_xent_loss",
    "supcon_kl_loss",
    "supcon_loss",
    "variance_loss",
    "vicreg_ce_loss",
    "vicreg_loss",
]
