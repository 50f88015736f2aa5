import numpy as np
import pytest
from contrastx.events import Events, inject_signal, n_signal_for_fraction


def _pool(make_events, n, label, seed):
    ev = make_events(n, seed=seed)
    return Events(ev.particles, labels=np.full(n, label))


def test_fraction_convention_matches_paper():
    assert [n_signal_for_fraction(100_000, f) for f in (0.001, 0.005, 0.01)] == [100, 500, 1000]


def test_inject_fraction(make_events):
    bkg = _pool(make_events, 2000, 0, 1)
    sig = _pool(make_events, 300, 4, 2)  # label 4 = Ato4l
    mixed = inject_signal(bkg, sig, fraction=0.05, seed=7)
    assert mixed.counts() == {"W": 2000, "Ato4l": 100}
    # injected events are distinct members of the signal pool
    inj = mixed.select("Ato4l").particles.reshape(100, -1)
    pool = {row.tobytes() for row in sig.particles.reshape(300, -1)}
    assert all(row.tobytes() in pool for row in inj) and len({r.tobytes() for r in inj}) == 100
    assert mixed.metadata["injection"]["n_signal"] == 100
    again = inject_signal(bkg, sig, fraction=0.05, seed=7)
    assert np.array_equal(again.particles, mixed.particles)
    other = inject_signal(bkg, sig, fraction=0.05, seed=8)
    assert not np.array_equal(other.particles, mixed.particles)
    # shuffled: the signal is not simply appended at the end
    assert (mixed.labels[:2000] == 4).any()


def test_inject_count_and_errors(make_events):
    bkg = _pool(make_events, 100, 0, 1)
    sig = _pool(make_events, 10, 5, 2)
    assert inject_signal(bkg, sig, count=10, shuffle=False).labels[-10:].tolist() == [5] * 10
    with pytest.raises(ValueError, match="only 10"):
        inject_signal(bkg, sig, count=11)
    with pytest.raises(ValueError, match="exactly one"):
        inject_signal(bkg, sig)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        inject_signal(bkg, sig, fraction=1.5)
