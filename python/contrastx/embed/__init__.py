"""Contrastive embeddings: encoders, heads, losses, augmentations, training, evaluation.

The everyday entry points:

* :class:`TrainConfig` / :class:`Trainer` (or ``contrastx-train``) to train a model;
* :func:`load_model` to read a trained model file, :func:`embed` to embed events;
* :func:`write_embedding` / :func:`read_embedding` (or ``contrastx-embed``) for the
  embedding files that NPLM reads;
* :func:`linear_evaluation` and the baselines (:class:`RawBaseline`,
  :class:`LeadingPtBaseline`, :class:`VAE` with :func:`fit_vae`).
"""

from . import augmentations, losses
from .baselines import VAE, LeadingPtBaseline, RawBaseline, fit_vae
from .embedding_file import EmbeddingData, read_embedding, write_embedding
from .encoders import InputScaler, LayoutScaler, MLPEncoder, TransformerEncoder
from .evaluation import LinearEvalResult, linear_evaluation
from .heads import DINOHead, GaussianBlock, ProjectionHead, kl_to_standard_normal
from .model import EmbeddingModel, build_model, embed
from .model_file import LoadedModel, TrainingEvents, load_model, save_model, training_events
from .optim import LARS, warmup_cosine, warmup_cosine_scheduler
from .training import PRESETS, TrainConfig, Trainer, default_temperature

__all__ = [
    "LARS",
    "PRESETS",
    "VAE",
    "DINOHead",
    "EmbeddingData",
    "EmbeddingModel",
    "GaussianBlock",
    "InputScaler",
    "LayoutScaler",
    "LeadingPtBaseline",
    "LinearEvalResult",
    "LoadedModel",
    "MLPEncoder",
    "ProjectionHead",
    "RawBaseline",
    "TrainConfig",
    "Trainer",
    "TrainingEvents",
    "TransformerEncoder",
    "augmentations",
    "build_model",
    "default_temperature",
    "embed",
    "fit_vae",
    "kl_to_standard_normal",
    "linear_evaluation",
    "load_model",
    "losses",
    "read_embedding",
    "save_model",
    "training_events",
    "warmup_cosine",
    "warmup_cosine_scheduler",
    "write_embedding",
]
