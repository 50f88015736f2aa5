"""Training configurations (ID / IP / EP / background-only), the split and pseudo-data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from contrastx.signal_aware import (
    PseudoDataInstance,
    draw_instance,
    split_rows,
    training_configuration,
    training_configurations,
)

BKG = ("gamma_gamma", "ggF", "VBF", "VH", "ttH")
PROCS = (*BKG, "X_hh_300", "X_hh_400", "A_Zh_500", "t_ch")
GROUPS = {**{p: p for p in BKG}, "X_hh_300": "X_hh", "X_hh_400": "X_hh", "A_Zh_500": "A_Zh",
          "t_ch": "t_ch"}  # fmt: skip


def test_each_configuration_holds_out_what_the_paper_says():
    cid = training_configuration("ID", PROCS, GROUPS, BKG)
    assert cid.trained == PROCS and cid.held_out == () and cid.name == "ID"
    ip = training_configuration("IP", PROCS, GROUPS, BKG, "X_hh_400")
    assert ip.held_out == ("X_hh_400",) and "X_hh_300" in ip.trained and ip.name == "IP-X_hh_400"
    ep = training_configuration("EP", PROCS, GROUPS, BKG, "X_hh_400")
    assert ep.held_out == ("X_hh_300", "X_hh_400") and ep.name == "EP-X_hh"
    assert ep.held_out_groups == ("X_hh",)
    bo = training_configuration("background-only", PROCS, GROUPS, BKG)
    assert bo.trained == BKG and set(bo.held_out) == set(PROCS) - set(BKG)
    rec = ep.record()
    assert rec["kind"] == "EP" and rec["held_out"] == ["X_hh_300", "X_hh_400"]


def test_configuration_mistakes_are_clear_errors():
    with pytest.raises(ValueError, match="use EP"):
        training_configuration("IP", PROCS, GROUPS, BKG, "A_Zh_500")
    with pytest.raises(ValueError, match="give the signal"):
        training_configuration("EP", PROCS, GROUPS, BKG)
    with pytest.raises(ValueError, match="unknown configuration"):
        training_configuration("XX", PROCS, GROUPS, BKG)
    with pytest.raises(ValueError, match="background process"):
        training_configuration("EP", PROCS, GROUPS, BKG, "ggF")
    with pytest.raises(ValueError, match="not in the event file"):
        training_configuration("EP", PROCS, GROUPS, BKG, "X_hh_999")


def test_configurations_share_id_and_background_only_and_skip_impossible_ip():
    per = training_configurations(
        ("ID", "IP", "EP", "background-only"), ("X_hh_400", "A_Zh_500"), PROCS, GROUPS, BKG
    )
    assert per["X_hh_400"]["ID"] is per["A_Zh_500"]["ID"]
    assert "IP" in per["X_hh_400"] and "IP" not in per["A_Zh_500"]
    assert per["A_Zh_500"]["EP"].held_out == ("A_Zh_500",)


def _labels(counts: dict[int, int], seed: int = 0) -> np.ndarray:
    y = np.concatenate([np.full(n, k) for k, n in counts.items()])
    return np.random.default_rng(seed).permutation(y)


def test_split_is_per_process_disjoint_and_60_20_20_of_the_encoder_half():
    y = _labels({0: 1000, 1: 400, 2: 200})
    sp = split_rows(y, ("a", "b", "c"), seed=3)
    parts = [sp.encoder_train, sp.encoder_test, sp.pseudo, sp.unused]
    allrows = np.concatenate(parts)
    assert np.unique(allrows).size == allrows.size == y.size  # disjoint, complete
    for k, n in ((0, 1000), (1, 400), (2, 200)):
        assert (y[sp.pseudo] == k).sum() == n // 2
        assert (y[sp.encoder_test] == k).sum() == round(0.2 * n / 2)
        assert (y[sp.encoder_train] == k).sum() == n // 2 - round(0.2 * n / 2)
    capped = split_rows(y, ("a", "b", "c"), seed=3, max_encoder_events=100)
    assert (y[capped.encoder_train] == 0).sum() == 80 and (y[capped.encoder_test] == 0).sum() == 20
    assert (y[capped.unused] == 0).sum() == 400 and np.array_equal(capped.pseudo, sp.pseudo)
    again = split_rows(y, ("a", "b", "c"), seed=3)
    assert np.array_equal(again.encoder_train, sp.encoder_train)
    with pytest.raises(ValueError, match="too few"):
        split_rows(np.array([0, 0]), ("a",), seed=0)


def _instance_inputs(seed: int = 1):
    """Backgrounds 0 (flat in m) and 1 (peaked), signal 2 (peaked); SR = label-free mask."""
    rng = np.random.default_rng(seed)
    y = _labels({0: 4000, 1: 600, 2: 2000}, seed)
    in_sr = np.where(y == 0, rng.random(y.size) < 0.2, rng.random(y.size) < 0.95)
    sp = split_rows(y, ("cont", "higgs", "sig"), seed=seed)
    return y, in_sr, sp


def test_pseudo_data_yields_follow_the_weights_and_injections_are_nested():
    y, in_sr, sp = _instance_inputs()
    yields = {"cont": 1500.4, "higgs": 30.6}
    inst = draw_instance(
        y, ("cont", "higgs", "sig"), in_sr, sp.pseudo, yields, ["sig"], [0.0, 1.0, 3.0],
        seed=5, instance=0, min_eval_signal=50,
    )  # fmt: skip
    assert (y[inst.background] == 0).sum() == 1500 and (y[inst.background] == 1).sum() == 31
    assert np.isin(inst.background, sp.pseudo).all()
    assert inst.n_background_sr == int(in_sr[inst.background].sum())
    # Evaluation background: the rest of the pseudo half, weighted to the expected yields.
    assert not np.isin(inst.eval_background, inst.background).any()
    for k, p in ((0, "cont"), (1, "higgs")):
        sel = y[inst.eval_background] == k
        assert math.isclose(inst.eval_background_weights[sel].sum(), yields[p], rel_tol=1e-12)
    r1, r3 = inst.injected("sig", 1.0), inst.injected("sig", 3.0)
    assert np.isin(r1, r3).all() and inst.injected("sig", 0.0).size == 0
    assert int(in_sr[r3].sum()) == round(3.0 * math.sqrt(inst.n_background_sr))
    assert (y[r3] == 2).all() and np.isin(r3, sp.pseudo).all()
    ev_sig = inst.eval_signal("sig")
    assert not np.isin(ev_sig, r3).any() and in_sr[ev_sig].all()
    # Instances differ, the same instance repeats.
    other = draw_instance(y, ("cont", "higgs", "sig"), in_sr, sp.pseudo, yields, ["sig"],
                          [0.0, 1.0, 3.0], seed=5, instance=1, min_eval_signal=50)  # fmt: skip
    same = draw_instance(y, ("cont", "higgs", "sig"), in_sr, sp.pseudo, yields, ["sig"],
                         [0.0, 1.0, 3.0], seed=5, instance=0, min_eval_signal=50)  # fmt: skip
    assert not np.array_equal(other.background, inst.background)
    assert np.array_equal(same.injected("sig", 3.0), r3)


def test_pseudo_data_round_trips_and_refuses_impossible_requests(tmp_path):
    y, in_sr, sp = _instance_inputs()
    names = ("cont", "higgs", "sig")
    inst = draw_instance(y, names, in_sr, sp.pseudo, {"cont": 1000.0}, ["sig"], [0.0, 2.0],
                         seed=1, instance=2, min_eval_signal=10)  # fmt: skip
    inst.save(tmp_path / "i.npz")
    back = PseudoDataInstance.load(tmp_path / "i.npz")
    assert np.array_equal(back.injected("sig", 2.0), inst.injected("sig", 2.0))
    assert back.summary() == inst.summary()
    with pytest.raises(ValueError, match="lower the luminosity"):
        draw_instance(y, names, in_sr, sp.pseudo, {"cont": 5000.0}, ["sig"], [1.0],
                      seed=1, instance=0)  # fmt: skip
    with pytest.raises(ValueError, match="lower the injections"):
        draw_instance(y, names, in_sr, sp.pseudo, {"cont": 1000.0}, ["sig"], [100.0],
                      seed=1, instance=0)  # fmt: skip
    with pytest.raises(KeyError, match="not one of"):
        inst.injected("sig", 5.0)
