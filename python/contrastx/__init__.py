"""contrastx: contrastive embeddings and signal-agnostic tests for LHC new-physics searches."""

from ._native import native_info

__version__ = "0.1.0"

__all__ = ["__version__", "native_info"]
