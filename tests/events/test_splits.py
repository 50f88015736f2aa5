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
