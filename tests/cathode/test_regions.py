"""Signal region / sideband windows: masks, validation, clear errors on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from contrastx.cathode import Regions


def lhco_like() -> Regions:
    return Regions.around(3.44, 3.56, outer=(3.3, 3.7))


def test_around_builds_both_sidebands_and_masks_are_half_open():
    regions = lhco_like()
    assert regions.signal_region == (3.44, 3.56)
    assert regions.sidebands == ((3.3, 3.44), (3.56, 3.7))
    m = np.array([3.3, 3.4399, 3.44, 3.5599, 3.56, 3.6999, 3.7, 3.2])
    sr = regions.signal_mask(m)
    sb = regions.sideband_mask(m)
    assert sr.tolist() == [False, False, True, True, False, False, False, False]
    assert sb.tolist() == [True, True, False, False, True, True, False, False]
    assert not (sr & sb).any()  # touching windows never share an event
    assert regions.counts(m) == {
        "signal_region": 2,
        "sidebands[0]": 2,
        "sidebands[1]": 2,
        "outside": 2,
    }


def test_one_sided_sideband_and_explicit_windows_are_sorted():
    assert Regions.around(1.0, 2.0, outer=(1.0, 3.0)).sidebands == ((2.0, 3.0),)
    regions = Regions((1.0, 2.0), [(2.5, 3.0), [0.0, 0.5]])
    assert regions.sidebands == ((0.0, 0.5), (2.5, 3.0))
    assert regions.span == (0.0, 3.0)


@pytest.mark.parametrize(
    ("sr", "sbs", "message"),
    [
        ((2.0, 1.0), ((0.0, 0.5),), "signal_region must have lo < hi"),
        ((1.0, 1.0), ((0.0, 0.5),), "signal_region must have lo < hi"),
        ((1.0, float("nan")), ((0.0, 0.5),), "signal_region must be finite"),
        ((1.0, 2.0), (), "at least one"),
        ((1.0, 2.0), ((0.5, 1.5),), r"sidebands\[0\] = \(0.5, 1.5\) overlaps the signal_region"),
        ((1.0, 2.0), ((2.5, 3.5), (3.0, 4.0)), "overlap"),
        ((1.0, 2.0), ((3.0, 2.5),), r"sidebands\[0\] must have lo < hi"),
        ((1.0, 2.0, 3.0), ((3.0, 4.0),), "must be a pair"),
    ],
)
def test_invalid_windows_are_refused_with_the_window_named(sr, sbs, message):
    with pytest.raises(ValueError, match=message):
        Regions(sr, sbs)


def test_around_needs_outer_to_contain_the_signal_region():
    with pytest.raises(ValueError, match="must contain the signal region"):
        Regions.around(1.0, 2.0, outer=(1.5, 3.0))
    with pytest.raises(ValueError, match="no sidebands"):
        Regions.around(1.0, 2.0, outer=(1.0, 2.0))
    with pytest.raises(TypeError, match="two numbers"):
        Regions.around(1.0, 2.0, outer=("a", 3.0))


def test_check_names_the_empty_window_and_lists_counts():
    regions = lhco_like()
    m_no_sr = np.array([3.31, 3.35, 3.6, 3.65])
    with pytest.raises(ValueError, match=r"signal_region \[3.44, 3.56\) holds 0 event") as err:
        regions.check(m_no_sr)
    assert "sidebands[0] 2" in str(err.value) and "sidebands[1] 2" in str(err.value)
    m_no_high_sb = np.array([3.31, 3.5, 3.5])
    with pytest.raises(ValueError, match=r"sidebands\[1\] \[3.56, 3.7\) holds 0 event"):
        regions.check(m_no_high_sb)
    with pytest.raises(ValueError, match="fewer than 2"):
        regions.check(np.array([3.31, 3.5, 3.6]), min_events=2)


def test_events_outside_every_window_are_allowed_but_not_all_of_them():
    regions = lhco_like()
    counts = regions.check(np.array([3.31, 3.5, 3.6, 5.0, 1.0]))
    assert counts["outside"] == 2
    with pytest.raises(ValueError, match=r"all 3 events lie outside every window"):
        regions.check(np.array([1.0, 2.0, 5.0]))
    with pytest.raises(ValueError, match="m is empty"):
        regions.check(np.array([]))


@pytest.mark.parametrize(
    ("m", "error", "message"),
    [
        (np.array([3.4, np.nan, 3.5]), ValueError, r"1 non-finite value\(s\).*index 1"),
        (np.array([3.4, np.inf]), ValueError, "non-finite"),
        (np.ones((3, 2)), ValueError, r"must be 1-D.*shape \(3, 2\)"),
        (np.array(["a", "b"]), TypeError, "numeric"),
        (np.array([True, False]), TypeError, "numeric"),
    ],
)
def test_bad_m_gets_a_clear_error(m, error, message):
    with pytest.raises(error, match=message):
        lhco_like().signal_mask(m)


def test_dict_round_trip_through_json():
    regions = Regions((1.0, 2.0), ((0.0, 1.0), (2.0, 2.5)))
    again = Regions.from_dict(json.loads(json.dumps(regions.to_dict())))
    assert again == regions
    with pytest.raises(ValueError, match="unknown key"):
        Regions.from_dict({**regions.to_dict(), "sideband": []})
    with pytest.raises(ValueError, match="missing key 'sidebands'"):
        Regions.from_dict({"signal_region": [1.0, 2.0]})


def test_lhco_split_counts():
    """The issue's split on the real data file's m values (skipped when absent)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "shared" / "lhco-rd-sr"
    files = [root / "innerdata_train.npy", root / "innerdata_val.npy"]
    if not all(f.exists() for f in files):
        pytest.skip("LHCO R&D signal-region files not present")
    m = np.concatenate([np.load(f, mmap_mode="r")[:, 0] for f in files])
    counts = lhco_like().check(m)
    assert counts["signal_region"] == 35_478
    assert counts["sidebands[0]"] + counts["sidebands[1]"] == 84_522
