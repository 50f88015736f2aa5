"""Vectorised relativistic kinematics on ADC2021-style arrays.

Four-vectors are arrays whose last axis holds ``(E, px, py, pz)`` in GeV;
object kinematics are ``(pT, eta, phi)`` as in :mod:`contrastx.events.layout`.
Every function broadcasts over any leading axes, so a whole sample of
``(N, 19, 3)`` events or a batch of ``(N, 4)`` decaying particles is handled in
one call without Python loops. Computations are carried out in float64.

Conventions: natural units (c = 1), massless objects unless a mass is given,
``phi`` in ``[-pi, pi)``, ``eta = 0`` for an object with zero transverse momentum
(as for the MET slot and for padding).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .layout import ETA, PHI, PT

__all__ = [
    "boost",
    "boost_from_rest",
    "delta_phi",
    "delta_r",
    "four_vector",
    "invariant_mass",
    "mass",
    "particles_to_four_vectors",
    "pt_eta_phi",
    "transverse_mass",
    "two_body_decay",
    "two_body_momentum",
    "wrap_phi",
]

_TWO_PI = 2.0 * np.pi


def wrap_phi(phi: ArrayLike) -> np.ndarray:
    """Wrap azimuthal angles into ``[-pi, pi)``.

    Parameters
    ----------
    phi : array_like
        Angles in radians, any value.

    Returns
    -------
    numpy.ndarray
        ``phi`` shifted by a multiple of ``2 pi`` into ``[-pi, pi)`` (float64).

    Examples
    --------
    >>> float(wrap_phi(np.pi))
    -3.141592653589793
    """
    phi = np.asarray(phi, dtype=np.float64)
    shifted = phi + np.pi
    if shifted.size and 0.0 <= shifted.min() and shifted.max() <= _TWO_PI:
        # Already within one turn (e.g. arctan2's output): np.mod would return its
        # argument unchanged, except 2 pi -> 0; the same bits without the division.
        shifted = np.where(shifted == _TWO_PI, 0.0, shifted)
    else:
        shifted = np.mod(shifted, _TWO_PI)
    out = shifted - np.pi
    # np.mod can round up to exactly 2 pi for tiny negative arguments.
    return np.where(out >= np.pi, out - _TWO_PI, out)


def delta_phi(phi1: ArrayLike, phi2: ArrayLike) -> np.ndarray:
    """Azimuthal difference ``phi1 - phi2`` wrapped into ``[-pi, pi)``."""
    return wrap_phi(np.asarray(phi1, dtype=np.float64) - np.asarray(phi2, dtype=np.float64))


def delta_r(eta1: ArrayLike, phi1: ArrayLike, eta2: ArrayLike, phi2: ArrayLike) -> np.ndarray:
    """Angular distance ``sqrt(d_eta^2 + d_phi^2)`` with the wrapped ``d_phi``."""
    deta = np.asarray(eta1, dtype=np.float64) - np.asarray(eta2, dtype=np.float64)
    return np.hypot(deta, delta_phi(phi1, phi2))


def four_vector(pt: ArrayLike, eta: ArrayLike, phi: ArrayLike, m: ArrayLike = 0.0) -> np.ndarray:
    """Four-vectors ``(E, px, py, pz)`` from ``(pT, eta, phi[, m])``.

    Parameters
    ----------
    pt, eta, phi : array_like
        Transverse momentum [GeV], pseudorapidity and azimuth; broadcast together.
    m : array_like, default 0
        Mass [GeV]; 0 gives massless vectors.

    Returns
    -------
    numpy.ndarray, shape (..., 4)
        ``(E, px, py, pz)``; a zero ``pT`` gives a zero vector (for ``m = 0``).

    Examples
    --------
    >>> four_vector(3.0, 0.0, 0.0).tolist()
    [3.0, 3.0, 0.0, 0.0]
    """
    pt, eta, phi, m = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (pt, eta, phi, m))
    )
    out = np.empty((*pt.shape, 4))
    out[..., 0] = np.sqrt((pt * np.cosh(eta)) ** 2 + m * m)
    out[..., 1] = pt * np.cos(phi)
    out[..., 2] = pt * np.sin(phi)
    out[..., 3] = pt * np.sinh(eta)
    return out


def pt_eta_phi(p4: ArrayLike) -> np.ndarray:
    """``(pT, eta, phi)`` of four-vectors ``(E, px, py, pz)``.

    Parameters
    ----------
    p4 : array_like, shape (..., 4)

    Returns
    -------
    numpy.ndarray, shape (..., 3)
        ``pT``, pseudorapidity (0 where ``pT = 0``) and ``phi`` in ``[-pi, pi)``.
    """
    p4 = np.asarray(p4, dtype=np.float64)
    px, py, pz = p4[..., 1], p4[..., 2], p4[..., 3]
    out = np.empty((*p4.shape[:-1], 3))
    pt = np.hypot(px, py)
    moving = pt > 0
    out[..., 0] = pt
    out[..., 1] = np.where(moving, np.arcsinh(pz / np.where(moving, pt, 1.0)), 0.0)
    out[..., 2] = np.where(moving, wrap_phi(np.arctan2(py, px)), 0.0)
    return out


def mass(p4: ArrayLike) -> np.ndarray:
    """Invariant mass ``sqrt(E^2 - |p|^2)`` of four-vectors (negative squares clipped to 0)."""
    p4 = np.asarray(p4, dtype=np.float64)
    m2 = p4[..., 0] ** 2 - (p4[..., 1] ** 2 + p4[..., 2] ** 2 + p4[..., 3] ** 2)
    return np.sqrt(np.maximum(m2, 0.0))


def particles_to_four_vectors(particles: ArrayLike) -> np.ndarray:
    """Massless four-vectors of every slot of ``(..., 19, 3)`` particles.

    Padded slots (``pT = 0``) become zero vectors, so they drop out of sums.
    The MET slot is converted like any other object (``eta = 0``); exclude it
    explicitly when summing visible objects.

    Returns
    -------
    numpy.ndarray, shape (..., 19, 4)
    """
    p = np.asarray(particles, dtype=np.float64)
    if p.shape[-1] != 3:
        raise ValueError(f"particles must end in a (pT, eta, phi) axis of size 3; got {p.shape}")
    return four_vector(p[..., PT], p[..., ETA], p[..., PHI])


def _slot_mask_array(slot_mask: Any, n_slots: int) -> np.ndarray:
    if slot_mask is None:
        return np.ones(n_slots, dtype=bool)
    if isinstance(slot_mask, slice):
        out = np.zeros(n_slots, dtype=bool)
        out[slot_mask] = True
        return out
    arr = np.asarray(slot_mask)
    if arr.dtype == bool:
        if arr.shape[-1] != n_slots:
            raise ValueError(
                f"a boolean slot_mask must end in an axis of {n_slots}; got {arr.shape}"
            )
        return arr
    if np.issubdtype(arr.dtype, np.integer) and arr.ndim == 1:
        out = np.zeros(n_slots, dtype=bool)
        out[arr] = True
        return out
    raise ValueError(
        "slot_mask must be None, a slice, integer slot indices or a boolean array over slots; "
        f"got dtype {arr.dtype} and shape {arr.shape}"
    )


def invariant_mass(particles: ArrayLike, slot_mask: Any = None) -> np.ndarray:
    """Invariant mass of the selected, filled slots of each event (objects massless).

    Parameters
    ----------
    particles : array_like, shape (..., 19, 3)
        Events in the ADC2021 layout (or any ``(..., K, 3)`` set of objects).
    slot_mask : None, slice, int array or bool array, optional
        Which slots to sum: ``None`` for all, a slice such as
        ``layout.ELECTRON_SLOTS``, integer slot indices, or a boolean array of
        shape ``(K,)`` or ``(..., K)`` (a per-event selection). Empty slots
        contribute nothing.

    Returns
    -------
    numpy.ndarray, shape (...)
        The mass of the summed four-vector; 0 when nothing is selected.

    Examples
    --------
    A Z boson at rest decaying to two electrons:

    >>> from contrastx.events import layout
    >>> p = np.zeros((1, 19, 3))
    >>> p[0, 1] = (45.595, 0.0, 0.0)
    >>> p[0, 2] = (45.595, 0.0, -np.pi)
    >>> round(float(invariant_mass(p, layout.ELECTRON_SLOTS)[0]), 3)
    91.19
    """
    p4 = particles_to_four_vectors(particles)
    mask = _slot_mask_array(slot_mask, p4.shape[-2])
    total = (p4 * mask[..., None]).sum(axis=-2)
    return mass(total)


def transverse_mass(pt1: ArrayLike, phi1: ArrayLike, pt2: ArrayLike, phi2: ArrayLike) -> np.ndarray:
    """Transverse mass of two massless objects, e.g. a lepton and the MET.

    ``m_T = sqrt(2 pT1 pT2 (1 - cos(phi1 - phi2)))``; for a W -> l nu decay
    ``m_T <= m_W`` with a Jacobian edge at ``m_W``.
    """
    pt1 = np.asarray(pt1, dtype=np.float64)
    pt2 = np.asarray(pt2, dtype=np.float64)
    cos = np.cos(np.asarray(phi1, dtype=np.float64) - np.asarray(phi2, dtype=np.float64))
    return np.sqrt(np.maximum(2.0 * pt1 * pt2 * (1.0 - cos), 0.0))


def boost(p4: ArrayLike, beta: ArrayLike) -> np.ndarray:
    """Lorentz-boost four-vectors by velocity ``beta`` (``|beta| < 1``).

    A particle at rest boosted by ``beta`` moves with velocity ``+beta``.

    Parameters
    ----------
    p4 : array_like, shape (..., 4)
    beta : array_like, shape (..., 3)
        Boost velocity; broadcasts against ``p4``'s leading axes.

    Returns
    -------
    numpy.ndarray, shape (..., 4)
    """
    p4 = np.asarray(p4, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    b2 = np.sum(beta * beta, axis=-1)
    if np.any(b2 >= 1.0):
        raise ValueError("boost velocity must satisfy |beta| < 1")
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = np.sum(beta * p4[..., 1:], axis=-1)
    g2 = np.where(b2 > 0, (gamma - 1.0) / np.where(b2 > 0, b2, 1.0), 0.0)
    e = gamma * (p4[..., 0] + bp)
    p3 = p4[..., 1:] + (g2 * bp + gamma * p4[..., 0])[..., None] * beta
    return np.concatenate([e[..., None], p3], axis=-1)


def boost_from_rest(p4_rest: ArrayLike, parent: ArrayLike) -> np.ndarray:
    """Transform four-vectors from a parent's rest frame to the frame of ``parent``.

    Equivalent to :func:`boost` with ``beta = p_parent / E_parent`` but written
    with ``gamma = E / M`` so that it stays accurate for very boosted parents.

    Parameters
    ----------
    p4_rest : array_like, shape (..., 4)
        Four-vectors in the parent's rest frame.
    parent : array_like, shape (..., 4)
        The parent's four-vector in the target frame (mass > 0).
    """
    q = np.asarray(p4_rest, dtype=np.float64)
    big_p = np.asarray(parent, dtype=np.float64)
    big_m = mass(big_p)
    if np.any(big_m <= 0):
        raise ValueError("boost_from_rest needs parents with positive mass")
    # The dot product summed in the order np.sum uses over a length-3 axis.
    pq = big_p[..., 1] * q[..., 1] + big_p[..., 2] * q[..., 2] + big_p[..., 3] * q[..., 3]
    shape = np.broadcast_shapes(q.shape, big_p.shape)
    out = np.empty(shape)
    out[..., 0] = (big_p[..., 0] * q[..., 0] + pq) / big_m
    coef = pq / (big_m * (big_p[..., 0] + big_m)) + q[..., 0] / big_m
    out[..., 1:] = q[..., 1:] + coef[..., None] * big_p[..., 1:]
    return out


def two_body_momentum(big_m: ArrayLike, m1: ArrayLike, m2: ArrayLike) -> np.ndarray:
    """Daughter momentum in the rest frame of a two-body decay ``M -> m1 m2``.

    ``p* = sqrt((M^2 - (m1 + m2)^2) (M^2 - (m1 - m2)^2)) / (2 M)``; kinematically
    forbidden decays (``M < m1 + m2``) raise ``ValueError``.
    """
    big_m = np.asarray(big_m, dtype=np.float64)
    m1 = np.asarray(m1, dtype=np.float64)
    m2 = np.asarray(m2, dtype=np.float64)
    a = big_m**2 - (m1 + m2) ** 2
    if np.any(a < 0):
        raise ValueError("two-body decay is kinematically forbidden (M < m1 + m2)")
    b = big_m**2 - (m1 - m2) ** 2
    return np.sqrt(a * b) / (2.0 * big_m)


def two_body_decay(
    parent: ArrayLike,
    m1: ArrayLike,
    m2: ArrayLike,
    cos_theta: ArrayLike,
    phi: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Decay ``parent -> 1 + 2`` with given rest-frame angles, boosted to the lab.

    Daughter 1 is emitted along ``(theta, phi)`` in the parent's rest frame
    (axes parallel to the lab axes), daughter 2 opposite. Draw
    ``cos_theta ~ U(-1, 1)`` and ``phi ~ U(-pi, pi)`` for an isotropic decay.

    Parameters
    ----------
    parent : array_like, shape (..., 4)
        Parent four-vectors in the lab frame; its mass is ``sqrt(p^2)``.
    m1, m2 : array_like
        Daughter masses, broadcast against the parent's leading axes.
    cos_theta, phi : array_like
        Emission angles of daughter 1 in the rest frame.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Lab-frame four-vectors of daughters 1 and 2, each of shape (..., 4);
        their sum equals ``parent``.
    """
    parent = np.asarray(parent, dtype=np.float64)
    big_m = mass(parent)
    m1 = np.asarray(m1, dtype=np.float64)
    m2 = np.asarray(m2, dtype=np.float64)
    pstar = two_body_momentum(big_m, m1, m2)
    cos_theta = np.asarray(cos_theta, dtype=np.float64)
    sin_theta = np.sqrt(np.maximum(1.0 - cos_theta**2, 0.0))
    phi = np.asarray(phi, dtype=np.float64)
    direction = np.stack(
        np.broadcast_arrays(sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta), axis=-1
    )
    p3 = pstar[..., None] * direction
    d1 = np.empty((*p3.shape[:-1], 4))
    d2 = np.empty_like(d1)
    d1[..., 0] = np.sqrt(pstar**2 + m1**2)
    d2[..., 0] = np.sqrt(pstar**2 + m2**2)
    d1[..., 1:] = p3
    np.negative(p3, out=d2[..., 1:])
    return boost_from_rest(d1, parent), boost_from_rest(d2, parent)
