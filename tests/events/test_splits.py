import numpy as np
import pytest
from contrastx.events import Splits, make_splits


def test_partition_and_sizes():
    s = make_splits(1003, n_folds=5, test_fraction=0.2, seed=3)
    allidx = np.concatenate([s.test, *s.folds])
    assert np.array_equal(np.sort(allidx), np.arange(1003))  # a partition
    assert s.test.size == round(0.2 * 1003)
    sizes = [f.size for f in s.folds]
    assert max(sizes) - min(sizes) <= 1
    for k in range(5):
        tr, va = s.train(k), s.validation(k)
        assert np.intersect1d(tr, va).size == 0 and np.intersect1d(tr, s.test).size == 0
        assert tr.size + va.size + s.test.size == 1003


def test_deterministic_by_seed(tmp_path):
    a, b, c = make_splits(500, seed=1), make_splits(500, seed=1), make_splits(500, seed=2)
    assert np.array_equal(a.test, b.test) and all(
        np.array_equal(x, y) for x, y in zip(a.folds, b.folds)
    )
    assert not np.array_equal(a.test, c.test)
    back = Splits.load(a.save(tmp_path / "s.npz"))
    assert np.array_equal(back.test, a.test) and back.seed == 1 and back.n_folds == 5
    assert np.array_equal(back.train(2), a.train(2))


def test_stratified():
    labels = np.repeat([0, 1, 2, 3], [600, 300, 80, 20])
    s = make_splits(1000, labels=labels, seed=0)
    for lab, n in zip(range(4), [600, 300, 80, 20]):
        assert (labels[s.test] == lab).sum() == round(0.2 * n)
        for f in s.folds:
            assert abs((labels[f] == lab).sum() - 0.8 * n / 5) <= 1


def test_errors():
    with pytest.raises(ValueError, match="empty"):
        make_splits(0)
    with pytest.raises(ValueError, match="test_fraction"):
        make_splits(10, test_fraction=1.0)
    with pytest.raises(ValueError, match="too few"):
        make_splits(3, n_folds=5, test_fraction=0.0)
    with pytest.raises(IndexError):
        make_splits(100).train(5)


# ------------------------------------------------------------------ composition_rows
_COCKTAIL = {"W": 0.592, "QCD": 0.338, "Z": 0.067, "ttbar": 0.003}
_NAMES = ("W", "QCD", "Z", "ttbar", "Ato4l")


def _balanced_labels() -> np.ndarray:
    # A balanced sample, process-ordered like a Pythia file, plus signal events.
    return np.repeat(np.arange(5), [5000, 5000, 5000, 5000, 800])


def test_composition_rows_gives_the_largest_sample_of_the_composition() -> None:
    from contrastx.events import composition_rows

    labels = _balanced_labels()
    rows = composition_rows(labels, _NAMES, _COCKTAIL, seed=4)
    counts = np.bincount(labels[rows], minlength=5)
    # W is the limit: 5000 / 0.592 = 8445 events in all.
    assert counts.sum() == 8445 and counts[0] == 5000 and counts[4] == 0
    np.testing.assert_allclose(counts[:4] / counts.sum(), list(_COCKTAIL.values()), atol=2e-4)
    assert np.all(np.diff(rows) > 0)  # sorted, distinct
    np.testing.assert_array_equal(rows, composition_rows(labels, _NAMES, _COCKTAIL, seed=4))
    assert not np.array_equal(rows, composition_rows(labels, _NAMES, _COCKTAIL, seed=5))
    capped = composition_rows(labels, _NAMES, _COCKTAIL, n_max=2000, seed=4)
    assert capped.size == 2000
    assert np.bincount(labels[capped], minlength=5).tolist() == [1184, 676, 134, 6, 0]


@pytest.mark.parametrize(
    ("fractions", "match"),
    [
        ({"W": 0.5, "QCD": 0.4}, "sum to 1"),
        ({"W": 0.5, "QCD": 0.5, "gamma": 0.0}, "> 0"),
        ({"W": 0.5, "top": 0.5}, r"no process \['top'\]"),
        ({}, "at least one"),
    ],
)
def test_composition_rows_rejects_bad_fractions(fractions: dict, match: str) -> None:
    from contrastx.events import composition_rows

    with pytest.raises(ValueError, match=match):
        composition_rows(_balanced_labels(), _NAMES, fractions, what="bkg.h5")


def test_composition_rows_refuses_to_drop_a_process() -> None:
    from contrastx.events import composition_rows

    with pytest.raises(ValueError, match=r"no event of \['ttbar'\]"):
        composition_rows(_balanced_labels(), _NAMES, _COCKTAIL, n_max=100)


def test_largest_remainder_counts_sum_exactly() -> None:
    from contrastx.events import largest_remainder_counts

    assert largest_remainder_counts(10, [0.592, 0.338, 0.067, 0.003]).tolist() == [6, 3, 1, 0]
    assert largest_remainder_counts(7, [1, 1, 1]).tolist() == [3, 2, 2]
    with pytest.raises(ValueError, match="not all zero"):
        largest_remainder_counts(3, [0, 0])
