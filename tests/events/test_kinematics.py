import numpy as np
import pytest
from contrastx.events import layout
from contrastx.events.kinematics import (
    boost,
    boost_from_rest,
    delta_phi,
    delta_r,
    four_vector,
    invariant_mass,
    mass,
    particles_to_four_vectors,
    pt_eta_phi,
    transverse_mass,
    two_body_decay,
    two_body_momentum,
    wrap_phi,
)

M_Z = 91.19


def z_to_ee_at_rest() -> np.ndarray:
    p = np.zeros((1, 19, 3))
    p[0, 1] = (M_Z / 2, 0.0, 0.5)
    p[0, 2] = (M_Z / 2, 0.0, 0.5 - np.pi)
    return p


def test_wrap_phi_range_and_values():
    assert wrap_phi(np.pi) == -np.pi
    assert wrap_phi(-np.pi) == -np.pi
    assert wrap_phi(3 * np.pi) == pytest.approx(-np.pi)
    assert wrap_phi(0.5) == 0.5
    assert wrap_phi(2 * np.pi + 0.25) == pytest.approx(0.25)
    x = np.random.default_rng(0).uniform(-50, 50, 10_000)
    w = wrap_phi(np.concatenate([x, [-1e-17, -1e-300, 2 * np.pi - 1e-16]]))
    assert (w >= -np.pi).all() and (w < np.pi).all()
    assert np.allclose(np.cos(w[: x.size]), np.cos(x)) and np.allclose(
        np.sin(w[: x.size]), np.sin(x)
    )


def test_wrap_phi_within_one_turn_is_the_modulo_formula_bit_for_bit():
    # Angles already in [-pi, pi] (arctan2's output) skip np.mod: the same bits as the
    # general formula, at the edges too, and with one angle outside (the general path).
    def formula(phi):
        out = np.mod(phi + np.pi, 2 * np.pi) - np.pi
        return np.where(out >= np.pi, out - 2 * np.pi, out)

    rng = np.random.default_rng(1)
    edges = [np.pi, -np.pi, np.nextafter(np.pi, 0), np.nextafter(-np.pi, 0), 0.0, -0.0, -1e-17]
    inside = np.concatenate([np.arctan2(rng.normal(size=5000), rng.normal(size=5000)), edges])
    for x in (inside, np.append(inside, 7.0), np.array([np.pi]), np.array([])):
        assert wrap_phi(x).tobytes() == formula(x).tobytes()


def test_delta_phi_and_delta_r():
    assert delta_phi(3.0, -3.0) == pytest.approx(6.0 - 2 * np.pi)
    assert delta_phi(-3.0, 3.0) == pytest.approx(2 * np.pi - 6.0)
    assert delta_phi(0.1, 0.3) == pytest.approx(-0.2)
    assert delta_r(0.0, 3.0, 0.3, -3.0) == pytest.approx(np.hypot(0.3, 2 * np.pi - 6.0))


def test_four_vector_by_hand():
    assert four_vector(3.0, 0.0, 0.0).tolist() == [3.0, 3.0, 0.0, 0.0]
    e, px, py, pz = four_vector(10.0, 1.0, np.pi / 2, 5.0)
    assert px == pytest.approx(0.0, abs=1e-12) and py == pytest.approx(10.0)
    assert pz == pytest.approx(10.0 * np.sinh(1.0))
    assert e == pytest.approx(np.sqrt((10.0 * np.cosh(1.0)) ** 2 + 25.0))
    assert mass(four_vector(10.0, 1.0, 0.3, 5.0)) == pytest.approx(5.0)
    kin = pt_eta_phi([5.0, 3.0, 4.0, 0.0])
    assert kin.tolist() == pytest.approx([5.0, 0.0, np.arctan2(4.0, 3.0)])


def test_roundtrip_and_zero_vector():
    rng = np.random.default_rng(1)
    pt, eta, phi = (
        rng.exponential(30, 1000) + 0.1,
        rng.normal(0, 2, 1000),
        wrap_phi(rng.uniform(-4, 4, 1000)),
    )
    back = pt_eta_phi(four_vector(pt, eta, phi, rng.uniform(0, 10, 1000)))
    assert np.allclose(back, np.stack([pt, eta, phi], axis=-1), atol=1e-9)
    assert pt_eta_phi(np.zeros(4)).tolist() == [0.0, 0.0, 0.0]
    assert particles_to_four_vectors(np.zeros((2, 19, 3))).shape == (2, 19, 4)
    with pytest.raises(ValueError, match="size 3"):
        particles_to_four_vectors(np.zeros((2, 19, 4)))


def test_invariant_mass_z_at_rest():
    p = z_to_ee_at_rest()
    assert invariant_mass(p, layout.ELECTRON_SLOTS)[0] == pytest.approx(M_Z)
    assert invariant_mass(p)[0] == pytest.approx(M_Z)  # empty slots drop out
    assert invariant_mass(p, np.array([1, 2]))[0] == pytest.approx(M_Z)
    assert invariant_mass(p, layout.MUON_SLOTS)[0] == 0.0
    per_event = np.zeros((1, 19), dtype=bool)
    per_event[0, 1] = True
    assert invariant_mass(p, per_event)[0] == pytest.approx(0.0, abs=1e-6)  # one massless object
    with pytest.raises(ValueError, match="slot_mask"):
        invariant_mass(p, np.array([0.5]))


def test_invariant_mass_of_boosted_decay():
    # Z with pT 40 GeV, y 1.2 -> e e; massless electrons in the layout give back m_Z
    n = 200
    rng = np.random.default_rng(2)
    mt = np.hypot(M_Z, 40.0)
    z = np.tile([mt * np.cosh(1.2), 40.0, 0.0, mt * np.sinh(1.2)], (n, 1))
    d1, d2 = two_body_decay(z, 0.0, 0.0, rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n))
    p = np.zeros((n, 19, 3))
    p[:, 5], p[:, 6] = pt_eta_phi(d1), pt_eta_phi(d2)
    assert np.allclose(invariant_mass(p, layout.MUON_SLOTS), M_Z)


def test_transverse_mass():
    assert transverse_mass(40.0, 0.0, 40.0, np.pi) == pytest.approx(80.0)
    assert transverse_mass(40.0, 1.0, 25.0, 1.0) == 0.0
    assert transverse_mass(30.0, 0.0, 20.0, np.pi / 2) == pytest.approx(np.sqrt(2 * 30 * 20))
    # W -> l nu decays: m_T <= m_W, with the Jacobian edge reaching close to m_W
    n = 20_000
    rng = np.random.default_rng(3)
    m_w = 80.4
    mt = np.hypot(m_w, 25.0)
    w = np.tile([mt * np.cosh(-0.7), 0.0, 25.0, mt * np.sinh(-0.7)], (n, 1))
    lep, nu = two_body_decay(w, 0.0, 0.0, rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n))
    kl, kn = pt_eta_phi(lep), pt_eta_phi(nu)
    m_t = transverse_mass(kl[:, 0], kl[:, 2], kn[:, 0], kn[:, 2])
    assert m_t.max() <= m_w + 1e-9
    assert m_t.max() > 79.0


def test_boost_preserves_mass_and_inverts():
    rng = np.random.default_rng(4)
    p = four_vector(rng.exponential(20, 500), rng.normal(0, 2, 500), rng.uniform(-3, 3, 500), 3.0)
    beta = rng.normal(0, 0.4, (500, 3))
    beta /= np.maximum(1.0, np.linalg.norm(beta, axis=1) / 0.95)[:, None]
    q = boost(p, beta)
    assert np.allclose(mass(q), 3.0, rtol=1e-6)
    assert np.allclose(boost(q, -beta), p, rtol=1e-9, atol=1e-9)
    at_rest = boost(np.array([2.0, 0.0, 0.0, 0.0]), np.array([0.6, 0.0, 0.0]))
    assert at_rest.tolist() == pytest.approx([2.5, 1.5, 0.0, 0.0])  # gamma 1.25, p = gamma m beta
    with pytest.raises(ValueError, match=r"\|beta\| < 1"):
        boost(p[:1], np.array([[1.0, 0.0, 0.0]]))


def test_boost_from_rest_matches_boost():
    rng = np.random.default_rng(5)
    parent = four_vector(
        rng.exponential(50, 100), rng.normal(0, 2, 100), rng.uniform(-3, 3, 100), 80.0
    )
    q = four_vector(rng.exponential(10, 100), rng.normal(0, 1, 100), rng.uniform(-3, 3, 100), 1.0)
    assert np.allclose(boost_from_rest(q, parent), boost(q, parent[:, 1:] / parent[:, :1]))
    with pytest.raises(ValueError, match="positive mass"):
        boost_from_rest(q[:1], np.array([[1.0, 1.0, 0.0, 0.0]]))


def test_two_body_momentum_by_hand():
    assert two_body_momentum(91.19, 0.0, 0.0) == pytest.approx(45.595)
    # t -> b W: sqrt((mt^2 - (mb + mW)^2)(mt^2 - (mW - mb)^2)) / (2 mt)
    assert two_body_momentum(172.5, 4.8, 80.4) == pytest.approx(67.40940700711614)
    with pytest.raises(ValueError, match="forbidden"):
        two_body_momentum(10.0, 6.0, 6.0)


def test_two_body_decay_conserves_four_momentum():
    rng = np.random.default_rng(6)
    n = 1000
    parent = four_vector(rng.exponential(100, n), rng.normal(0, 2, n), rng.uniform(-3, 3, n), 172.5)
    cos_t, phi = rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n)
    b, w = two_body_decay(parent, 4.8, 80.4, cos_t, phi)
    assert np.allclose(b + w, parent, rtol=1e-10, atol=1e-8)
    assert np.allclose(mass(b), 4.8, rtol=1e-5) and np.allclose(mass(w), 80.4, rtol=1e-8)
    # at rest, daughter 1 flies along (theta, phi) with the two-body momentum
    d1, d2 = two_body_decay(np.array([91.19, 0.0, 0.0, 0.0]), 0.0, 0.0, 0.0, np.pi / 2)
    assert d1 == pytest.approx([45.595, 0.0, 45.595, 0.0], abs=1e-9)
    assert d2 == pytest.approx([45.595, 0.0, -45.595, 0.0], abs=1e-9)
