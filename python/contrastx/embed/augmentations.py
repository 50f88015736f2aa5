"""Event augmentations for self-supervised contrastive learning (primary paper, Sec. V-B a).

All augmentations act on a batch of *raw* particles, a tensor (N, 19, 3) of
``(pT [GeV], eta, phi)``, are vectorised over events (no Python loop per event),
return a new tensor, draw every random number from the ``torch.Generator`` they are
given (so two calls with equally seeded generators agree), and leave padded slots
(pT == 0) exactly zero. Compose them with :class:`Compose`, or build one from a
short spec string with :func:`parse_augmentation` (e.g. ``"mask:0.5,rotate"``).

* :class:`NaiveMasking`: every feature zeroed with probability p (the paper's
  choice, p = 0.5). Masking is applied to the raw input, so a masked pT removes the
  object (the encoder then treats the slot as padding; the MET slot stays attended).
* :class:`GaussianResampling`: Gaussian noise on eta and/or phi of filled objects.
* :class:`PtSmearing`: multiplicative Gaussian pT smearing (the "variant for pT").
* :class:`PhiRotation`: all objects of an event rotated in phi by one angle drawn
  uniformly in [0, 2 pi), wrapped to [-pi, pi).
* :class:`DetectorCropping`: keep only objects within Delta R <= R* of a centre
  (the leading visible object, or a random point); MET is always kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..events.layout import ETA, PHI, PT
from .encoders import check_input

__all__ = [
    "Augmentation",
    "Compose",
    "DetectorCropping",
    "GaussianResampling",
    "Identity",
    "NaiveMasking",
    "PhiRotation",
    "PtSmearing",
    "parse_augmentation",
    "wrap_phi",
]


def wrap_phi(phi: torch.Tensor) -> torch.Tensor:
    """Wrap angles to [-pi, pi)."""
    return torch.remainder(phi + math.pi, 2 * math.pi) - math.pi


def _uniform(shape: Sequence[int], x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(*shape, generator=g, device=x.device, dtype=x.dtype)


def _normal(shape: Sequence[int], x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    return torch.randn(*shape, generator=g, device=x.device, dtype=x.dtype)


def _check_probability(name: str, p: float) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]; got {p}")
    return p


def _check_positive(name: str, v: float) -> float:
    v = float(v)
    if not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be finite and >= 0; got {v}")
    return v


class Augmentation:
    """Base class: ``aug(x, generator=None) -> Tensor`` on raw (N, 19, 3) particles."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = check_input(x)
        return self.apply(x, generator)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Identity(Augmentation):
    """No change (a copy)."""

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return x.clone()


class NaiveMasking(Augmentation):
    """Zero every feature independently with probability ``p`` (paper default 0.5)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = _check_probability("p", p)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        keep = _uniform(x.shape, x, generator) >= self.p
        return x * keep


class GaussianResampling(Augmentation):
    """Add N(0, sigma^2) to eta and/or phi of filled objects (phi wrapped; MET eta stays 0).

    Parameters
    ----------
    sigma : float
        Standard deviation of the shift.
    features : sequence of {"eta", "phi"}
    """

    def __init__(self, sigma: float = 0.1, features: Sequence[str] = ("eta", "phi")) -> None:
        self.sigma = _check_positive("sigma", sigma)
        features = tuple(features)
        bad = set(features) - {"eta", "phi"}
        if bad or not features:
            raise ValueError(
                f"features must be a non-empty subset of ('eta', 'phi'); got {features} "
                "(use PtSmearing for pT)"
            )
        self.features = features

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        out = x.clone()
        filled = (x[..., PT] > 0).to(x.dtype)
        noise = _normal((x.shape[0], x.shape[1], 2), x, generator) * self.sigma * filled[..., None]
        if "eta" in self.features:
            out[:, 1:, ETA] = x[:, 1:, ETA] + noise[:, 1:, 0]  # MET (slot 0) has no eta
        if "phi" in self.features:
            out[..., PHI] = torch.where(
                filled > 0, wrap_phi(x[..., PHI] + noise[..., 1]), x[..., PHI]
            )
        return out


class PtSmearing(Augmentation):
    """Multiply the pT of every filled object by ``1 + sigma * N(0, 1)``, floored at 0.01.

    The floor keeps a filled object filled (pT > 0), so padding is never created.
    """

    def __init__(self, sigma: float = 0.1) -> None:
        self.sigma = _check_positive("sigma", sigma)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        out = x.clone()
        factor = (1.0 + self.sigma * _normal(x.shape[:2], x, generator)).clamp_min(0.01)
        out[..., PT] = x[..., PT] * factor  # padding stays 0
        return out


class PhiRotation(Augmentation):
    """Rotate all objects of an event by one angle in [0, 2 pi); phi wrapped to [-pi, pi)."""

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        out = x.clone()
        angle = _uniform((x.shape[0], 1), x, generator) * (2 * math.pi)
        filled = x[..., PT] > 0
        out[..., PHI] = torch.where(filled, wrap_phi(x[..., PHI] + angle), x[..., PHI])
        return out


class DetectorCropping(Augmentation):
    """Keep only objects within Delta R <= ``radius`` of a centre in (eta, phi).

    Parameters
    ----------
    radius : float
        R*, the cut-off in Delta R = sqrt(Delta eta^2 + Delta phi^2) (Delta phi wrapped).
    center : {"leading", "random"}
        The leading visible object (highest pT among slots 1-18; events without one
        are unchanged), or a point drawn uniformly in ``|eta| < eta_max``, phi in
        [-pi, pi).
    eta_max : float
        Range of the random centre.

    MET (slot 0) carries no eta and is always kept. Dropped objects become padding
    (all zero); the slot order is kept.
    """

    def __init__(self, radius: float = 1.5, center: str = "leading", eta_max: float = 2.5) -> None:
        self.radius = _check_positive("radius", radius)
        if center not in ("leading", "random"):
            raise ValueError(f"center must be 'leading' or 'random'; got {center!r}")
        self.center = center
        self.eta_max = _check_positive("eta_max", eta_max)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n = x.shape[0]
        vis = x[:, 1:]
        filled = vis[..., PT] > 0
        if self.center == "leading":
            lead = vis[..., PT].argmax(dim=1)
            rows = torch.arange(n, device=x.device)
            eta_c, phi_c = vis[rows, lead, ETA], vis[rows, lead, PHI]
            has_vis = filled.any(dim=1)
        else:
            eta_c = (2 * _uniform((n,), x, generator) - 1) * self.eta_max
            phi_c = (2 * _uniform((n,), x, generator) - 1) * math.pi
            has_vis = torch.ones(n, dtype=torch.bool, device=x.device)
        d_eta = vis[..., ETA] - eta_c[:, None]
        d_phi = wrap_phi(vis[..., PHI] - phi_c[:, None])
        inside = d_eta.square() + d_phi.square() <= self.radius**2
        keep = inside | ~has_vis[:, None]
        out = x.clone()
        out[:, 1:] = vis * keep[..., None].to(x.dtype)
        return out


class Compose(Augmentation):
    """Apply augmentations in order, all drawing from the same generator."""

    def __init__(self, augmentations: Sequence[Augmentation]) -> None:
        self.augmentations = list(augmentations)
        for a in self.augmentations:
            if not isinstance(a, Augmentation):
                raise TypeError(f"Compose takes Augmentation objects; got {type(a).__name__}")

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        for a in self.augmentations:
            x = a.apply(x, generator)
        return x if self.augmentations else x.clone()


_BUILDERS = {
    "none": (Identity, ()),
    "mask": (NaiveMasking, (float,)),
    "gauss": (GaussianResampling, (float,)),
    "smear": (PtSmearing, (float,)),
    "rotate": (PhiRotation, ()),
    "crop": (DetectorCropping, (float, str)),
}


def parse_augmentation(spec: str) -> Augmentation:
    """Build an augmentation from a spec: comma-separated ``name[:arg[:arg]]`` items.

    Names: ``none``, ``mask[:p]``, ``gauss[:sigma]``, ``smear[:sigma]``, ``rotate``,
    ``crop[:radius[:leading|random]]``.

    Examples
    --------
    >>> parse_augmentation("mask:0.5,rotate")
    Compose(augmentations=[NaiveMasking(p=0.5), PhiRotation()])
    """
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if not items:
        raise ValueError("empty augmentation spec")
    augs: list[Augmentation] = []
    for item in items:
        name, *args = item.split(":")
        if name not in _BUILDERS:
            raise ValueError(
                f"unknown augmentation {name!r} in {spec!r}; known: {', '.join(_BUILDERS)}"
            )
        cls, casts = _BUILDERS[name]
        if len(args) > len(casts):
            raise ValueError(f"augmentation {name!r} takes at most {len(casts)} argument(s)")
        try:
            values = [cast(a) for cast, a in zip(casts, args)]
        except ValueError:
            raise ValueError(f"bad argument in augmentation {item!r}") from None
        augs.append(cls(*values))
    return augs[0] if len(augs) == 1 else Compose(augs)
