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
