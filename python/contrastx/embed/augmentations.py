"""Event augmentations for self-supervised contrastive learning (primary paper, Sec. V-B a).

All augmentations act on a batch of *raw* events of one event layout (ADC2021 unless
built with ``layout=``): a tensor (N, 19, 3) of ``(pT [GeV], eta, phi)`` for ADC2021,
(N, n_objects, n_features) for another layout, whose pT, eta and phi columns they find
by name. They are vectorised over events (no Python loop per event), return a new
tensor, draw every random number from the ``torch.Generator`` they are given (so two
calls with equally seeded generators agree), and leave padded slots (pT == 0) exactly
zero. Slots without an eta (a group with acceptance 0, such as MET) keep eta = 0, and
one-hot object-type columns are never changed. Compose them with :class:`Compose`, or
build one from a short spec string with :func:`parse_augmentation` (e.g.
``"mask:0.5,rotate"``).

* :class:`NaiveMasking`: every feature zeroed with probability p (the paper's
  choice, p = 0.5; one-hot type columns are kept). Masking is applied to the raw
  input, so a masked pT removes the object (the encoder then treats the slot as
  padding; the ADC2021 MET slot stays attended).
* :class:`GaussianResampling`: Gaussian noise on eta and/or phi of filled objects.
* :class:`PtSmearing`: multiplicative Gaussian pT smearing (the "variant for pT").
* :class:`PhiRotation`: all objects of an event rotated in phi by one angle drawn
  uniformly in [0, 2 pi), wrapped to [-pi, pi).
* :class:`DetectorCropping`: keep only objects within Delta R <= R* of a centre
  (the leading visible object, or a random point); objects without an eta (MET) are
  always kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..events.layout import ADC2021, EventLayout
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


def _draw_device(x: torch.Tensor, g: torch.Generator | None) -> torch.device:
    """Where to draw: the generator's device (a CPU generator also serves CUDA batches, so
    a seeded run draws the same numbers on either), else the batch's."""
    return x.device if g is None else g.device


def uniform_like(shape: Sequence[int], x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    """Uniform [0, 1) draws of ``shape`` with ``x``'s dtype and device, taken from ``g``
    on ``g``'s device (so a CPU generator serves a CUDA batch with the CPU run's numbers)."""
    r = torch.rand(*shape, generator=g, device=_draw_device(x, g), dtype=x.dtype)
    return r.to(x.device)


def _normal(shape: Sequence[int], x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    r = torch.randn(*shape, generator=g, device=_draw_device(x, g), dtype=x.dtype)
    return r.to(x.device)


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


def _slots(slots: Sequence[int], x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(list(slots), dtype=torch.long, device=x.device)


class Augmentation:
    """Base class: ``aug(x, generator=None) -> Tensor`` on raw particles of its layout.

    Parameters
    ----------
    layout : EventLayout
        The layout of the events it augments (default ADC2021).
    """

    layout: EventLayout = ADC2021

    def __init__(self, layout: EventLayout = ADC2021) -> None:
        if not isinstance(layout, EventLayout):
            raise TypeError(f"layout must be an EventLayout; got {type(layout).__name__}")
        self.layout = layout

    def _column(self, name: str) -> int:
        """Index of the object feature ``name``, with a message naming the augmentation."""
        if name not in self.layout.feature_names:
            raise ValueError(
                f"{type(self).__name__} needs the object feature {name!r}; layout "
                f"{self.layout.name!r} has {', '.join(self.layout.feature_names)}"
            )
        return self.layout.feature_index(name)

    @property
    def _eta_slots(self) -> list[int]:
        """Slots that have an eta (acceptance not 0; MET has none)."""
        return [i for i, m in enumerate(self.layout.slot_eta_max) if m != 0]

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = check_input(x, self.layout)
        return self.apply(x, generator)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        items = {k: v for k, v in vars(self).items() if k != "layout" and not k.startswith("_")}
        if self.layout != ADC2021:
            items["layout"] = self.layout.name
        args = ", ".join(f"{k}={v!r}" for k, v in items.items())
        return f"{type(self).__name__}({args})"


class Identity(Augmentation):
    """No change (a copy)."""

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return x.clone()


class NaiveMasking(Augmentation):
    """Zero every feature independently with probability ``p`` (paper default 0.5).

    One-hot object-type columns (layouts that have them) are never zeroed.
    """

    def __init__(self, p: float = 0.5, *, layout: EventLayout = ADC2021) -> None:
        super().__init__(layout)
        self.p = _check_probability("p", p)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        keep = uniform_like(x.shape, x, generator) >= self.p
        one_hot = self.layout.one_hot_features
        if one_hot.any():
            keep[..., torch.as_tensor(one_hot, device=x.device)] = True
        return x * keep


class GaussianResampling(Augmentation):
    """Add N(0, sigma^2) to eta and/or phi of filled objects (phi wrapped; MET eta stays 0).

    Parameters
    ----------
    sigma : float
        Standard deviation of the shift.
    features : sequence of {"eta", "phi"}
    layout : EventLayout
    """

    def __init__(
        self,
        sigma: float = 0.1,
        features: Sequence[str] = ("eta", "phi"),
        *,
        layout: EventLayout = ADC2021,
    ) -> None:
        super().__init__(layout)
        self.sigma = _check_positive("sigma", sigma)
        features = tuple(features)
        bad = set(features) - {"eta", "phi"}
        if bad or not features:
            raise ValueError(
                f"features must be a non-empty subset of ('eta', 'phi'); got {features} "
                "(use PtSmearing for pT)"
            )
        self.features = features
        self._pt = self._column("pt")
        self._cols = {f: self._column(f) for f in features}

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        out = x.clone()
        filled = (x[..., self._pt] > 0).to(x.dtype)
        noise = _normal((x.shape[0], x.shape[1], 2), x, generator) * self.sigma * filled[..., None]
        if "eta" in self._cols:
            eta = self._cols["eta"]
            slots = _slots(self._eta_slots, x)  # MET has no eta
            out[:, slots, eta] = x[:, slots, eta] + noise[:, slots, 0]
        if "phi" in self._cols:
            phi = self._cols["phi"]
            moved = wrap_phi(x[..., phi] + noise[..., 1])
            out[..., phi] = torch.where(filled > 0, moved, x[..., phi])
        return out


class PtSmearing(Augmentation):
    """Multiply the pT of every filled object by ``1 + sigma * N(0, 1)``, floored at 0.01.

    The floor keeps a filled object filled (pT > 0), so padding is never created.
    """

    def __init__(self, sigma: float = 0.1, *, layout: EventLayout = ADC2021) -> None:
        super().__init__(layout)
        self.sigma = _check_positive("sigma", sigma)
        self._pt = self._column("pt")

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        out = x.clone()
        factor = (1.0 + self.sigma * _normal(x.shape[:2], x, generator)).clamp_min(0.01)
        out[..., self._pt] = x[..., self._pt] * factor  # padding stays 0
        return out


class PhiRotation(Augmentation):
    """Rotate all objects of an event by one angle in [0, 2 pi); phi wrapped to [-pi, pi)."""

    def __init__(self, *, layout: EventLayout = ADC2021) -> None:
        super().__init__(layout)
        self._pt, self._phi = self._column("pt"), self._column("phi")

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        out = x.clone()
        phi = self._phi
        angle = uniform_like((x.shape[0], 1), x, generator) * (2 * math.pi)
        filled = x[..., self._pt] > 0
        out[..., phi] = torch.where(filled, wrap_phi(x[..., phi] + angle), x[..., phi])
        return out


class DetectorCropping(Augmentation):
    """Keep only objects within Delta R <= ``radius`` of a centre in (eta, phi).

    Parameters
    ----------
    radius : float
        R*, the cut-off in Delta R = sqrt(Delta eta^2 + Delta phi^2) (Delta phi wrapped).
    center : {"leading", "random"}
        The leading visible object (highest pT among the encoder's slots that have an
        eta: slots 1-18 for ADC2021; events without one are unchanged), or a point
        drawn uniformly in ``|eta| < eta_max``, phi in [-pi, pi).
    eta_max : float
        Range of the random centre.
    layout : EventLayout

    Objects without an eta (the MET slot) are always kept, and so are the slots the
    encoder does not see. Dropped objects become padding (all zero); the slot order is
    kept.
    """

    def __init__(
        self,
        radius: float = 1.5,
        center: str = "leading",
        eta_max: float = 2.5,
        *,
        layout: EventLayout = ADC2021,
    ) -> None:
        super().__init__(layout)
        self.radius = _check_positive("radius", radius)
        if center not in ("leading", "random"):
            raise ValueError(f"center must be 'leading' or 'random'; got {center!r}")
        self.center = center
        self.eta_max = _check_positive("eta_max", eta_max)
        self._pt, self._eta, self._phi = (self._column(f) for f in ("pt", "eta", "phi"))
        encoder = set(self.layout.encoder_slots.tolist())
        self._visible = [i for i in self._eta_slots if i in encoder]

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n = x.shape[0]
        pt, eta, phi = self._pt, self._eta, self._phi
        slots = _slots(self._visible, x)
        vis = x[:, slots]
        filled = vis[..., pt] > 0
        if self.center == "leading":
            lead = vis[..., pt].argmax(dim=1)
            rows = torch.arange(n, device=x.device)
            eta_c, phi_c = vis[rows, lead, eta], vis[rows, lead, phi]
            has_vis = filled.any(dim=1)
        else:
            eta_c = (2 * uniform_like((n,), x, generator) - 1) * self.eta_max
            phi_c = (2 * uniform_like((n,), x, generator) - 1) * math.pi
            has_vis = torch.ones(n, dtype=torch.bool, device=x.device)
        d_eta = vis[..., eta] - eta_c[:, None]
        d_phi = wrap_phi(vis[..., phi] - phi_c[:, None])
        inside = d_eta.square() + d_phi.square() <= self.radius**2
        keep = inside | ~has_vis[:, None]
        out = x.clone()
        out[:, slots] = vis * keep[..., None].to(x.dtype)
        return out


class Compose(Augmentation):
    """Apply augmentations in order, all drawing from the same generator.

    The augmentations must share one layout (the composition's).
    """

    def __init__(self, augmentations: Sequence[Augmentation]) -> None:
        self.augmentations = list(augmentations)
        for a in self.augmentations:
            if not isinstance(a, Augmentation):
                raise TypeError(f"Compose takes Augmentation objects; got {type(a).__name__}")
        layouts = {a.layout.fingerprint: a.layout for a in self.augmentations}
        if len(layouts) > 1:
            names = ", ".join(repr(v.name) for v in layouts.values())
            raise ValueError(f"Compose takes augmentations of one layout; got layouts {names}")
        super().__init__(next(iter(layouts.values()), ADC2021))

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


def parse_augmentation(spec: str, layout: EventLayout = ADC2021) -> Augmentation:
    """Build an augmentation from a spec: comma-separated ``name[:arg[:arg]]`` items.

    Names: ``none``, ``mask[:p]``, ``gauss[:sigma]``, ``smear[:sigma]``, ``rotate``,
    ``crop[:radius[:leading|random]]``. ``layout`` is the layout of the events the
    augmentation is for (default ADC2021).

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
        augs.append(cls(*values, layout=layout))
    return augs[0] if len(augs) == 1 else Compose(augs)
