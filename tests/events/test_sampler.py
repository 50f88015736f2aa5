import numpy as np
import pytest
from contrastx.events import ClassBalancedBatchSampler


def test_batches_are_balanced_and_reproducible():
    labels = np.repeat([0, 1, 2, 3], [700, 250, 45, 5])
    s = ClassBalancedBatchSampler(labels, 64, seed=3)
    batches = list(s)
    assert len(batches) == len(s) == 1000 // 64
    for b in batches:
        assert len(b) == 64
        assert np.bincount(labels[b], minlength=4).tolist() == [16, 16, 16, 16]
    # the majority class is drawn without replacement across the epoch
    major = np.concatenate([np.array(b)[labels[b] == 0] for b in batches])
    assert np.unique(major).size == major.size
    assert list(ClassBalancedBatchSampler(labels, 64, seed=3)) == batches
    s.set_epoch(1)
    assert list(s) != batches


def test_errors():
    with pytest.raises(ValueError, match="multiple of the number of classes"):
        ClassBalancedBatchSampler(np.array([0, 1, 2]), 64)
    with pytest.raises(ValueError, match="non-empty"):
        ClassBalancedBatchSampler(np.array([], dtype=int), 4)


def test_remainder_spread_over_classes():
    """8192 over 13 classes (the second paper): 630 of each plus 2 extra per batch."""
    labels = np.repeat(np.arange(13), [3000] * 12 + [40])
    with pytest.raises(ValueError, match="or pass allow_remainder=True"):
        ClassBalancedBatchSampler(labels, 8192)
    s = ClassBalancedBatchSampler(labels, 8192, n_batches=26, seed=1, allow_remainder=True)
    batches = list(s)
    assert len(batches) == 26
    totals = np.zeros(13, dtype=np.int64)
    for b in batches:
        counts = np.bincount(labels[b], minlength=13)
        assert len(b) == 8192 and counts.min() == 630 and counts.max() == 631
        assert (counts == 631).sum() == 2
        totals += counts
    assert totals.max() - totals.min() <= 13  # the extras go round the classes
    # without replacement within a class until its 3000 events are used up (4 batches)
    zero = np.concatenate([np.array(b)[labels[b] == 0] for b in batches[:4]])
    assert np.unique(zero).size == zero.size
    assert (
        list(ClassBalancedBatchSampler(labels, 8192, n_batches=26, seed=1, allow_remainder=True))
        == batches
    )
    with pytest.raises(ValueError, match=r"at least the number of classes \(13\)"):
        ClassBalancedBatchSampler(labels, 12, allow_remainder=True)


def test_multiples_unchanged_by_allow_remainder():
    labels = np.repeat([0, 1, 2, 3], [700, 250, 45, 5])
    plain = list(ClassBalancedBatchSampler(labels, 64, seed=3))
    assert list(ClassBalancedBatchSampler(labels, 64, seed=3, allow_remainder=True)) == plain
