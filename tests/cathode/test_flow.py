"""ConditionalFlow: likelihood on an analytic toy, early stopping, epoch ensembles, files.

Several tests are defects of the reference implementation (sk_cathode): its epoch
ensemble counted the pre-training loss as an epoch and so picked the wrong epochs, its
ensembles could not sample, and its early stopping compared with the loss a fixed number
of epochs earlier instead of the best so far.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from contrastx.cathode import (
    FLOW_PRESETS,
    ConditionalFlow,
    EarlyStopping,
    FlowOptions,
    best_epochs,
)
from contrastx.cathode import flow as flow_mod
from contrastx.options import OptionsError, from_mapping, to_dict

from .conftest import TOY_OFFSET, TOY_SLOPE, toy_log_prob, toy_sample

SMALL = dict(
    kind="maf",
    transforms=2,
    hidden_features=(16, 16),
    epochs=3,
    batch_size=128,
    lr=1e-2,
    patience=None,
    n_best_epochs=2,
    n_flows=1,
    logit=False,
)

# Stated tolerance: the fitted ensemble's mean held-out log-likelihood (nats per event) is
# within this of the true one (it is the KL divergence estimated on 4000 shared events).
LOGLIK_TOLERANCE = 0.03


# --------------------------------------------------------------------------- options
def test_options_validate_and_round_trip():
    opts = FlowOptions(kind="nsf", transforms=4, hidden_features=[32, 32], patience=None)
    assert opts.hidden_features == (32, 32)
    assert from_mapping(FlowOptions, to_dict(opts)) == opts
    with pytest.raises(OptionsError, match=r"cathode\.flow\.kind must be one of"):
        FlowOptions(kind="realnvp")
    with pytest.raises(OptionsError, match="hidden_features must list at least one"):
        FlowOptions(hidden_features=())
    with pytest.raises(OptionsError, match=r"cathode\.flow\.patience must be >= 1"):
        FlowOptions(patience=0)
    with pytest.raises(OptionsError, match="validation_fraction must be < 1"):
        FlowOptions(validation_fraction=1.0)
    with pytest.raises(OptionsError, match=r"unknown key cathode\.flow\.seed"):
        from_mapping(FlowOptions, {"seed": 1})  # seed and device are fit arguments


# --------------------------------------------------------------------------- pure logic
def test_presets_are_valid_options():
    for name, table in FLOW_PRESETS.items():
        opts = from_mapping(FlowOptions, table, where=f"preset {name}")
        assert to_dict(opts)["kind"] in ("maf", "nsf")
    original = from_mapping(FlowOptions, FLOW_PRESETS["cathode"])
    assert (original.kind, original.transforms, original.hidden_features) == ("maf", 15, (128, 128))
    assert (original.n_flows, original.n_best_epochs, original.patience) == (1, 10, None)


def test_early_stopping_compares_with_the_best_so_far():
    # New bests at epochs 3, 5 and 7, each between worse epochs. Comparing with the loss
    # `patience` epochs earlier would stop at epoch 6 (2.0 >= 1.0 of epoch 3) although
    # epoch 7 improves again; the best-so-far rule stops 3 epochs after epoch 7.
    losses = [5.0, 4.0, 1.0, 3.0, 0.9, 2.0, 0.8, 1.5, 1.4, 1.3, 1.2]
    stopper = EarlyStopping(patience=3)
    stops = [stopper.update(v) for v in losses]
    assert stops.index(True) + 1 == 10
    assert (stopper.best, stopper.best_epoch) == (0.8, 7)


def test_early_stopping_resets_on_a_new_best_and_ignores_nan():
    stopper = EarlyStopping(patience=2)
    assert [stopper.update(v) for v in [3.0, 3.5, 2.0, 2.5, float("nan")]] == [
        False,
        False,
        False,
        False,
        True,
    ]
    assert stopper.best_epoch == 3
    never = EarlyStopping(patience=None)
    assert not any(never.update(v) for v in [1.0] + [2.0] * 50)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)


def test_best_epochs_are_one_based_and_never_the_pre_training_loss():
    val = [3.0, 1.0, 2.0, 0.5, 4.0]  # loss after epochs 1..5
    assert best_epochs(val, 3) == [4, 2, 3]
    assert best_epochs(val, 10) == [4, 2, 3, 1, 5]
    # ties go to the earlier epoch; non-finite losses are never chosen
    assert best_epochs([1.0, float("nan"), 1.0, float("inf")], 3) == [1, 3]
    with pytest.raises(ValueError, match="no epoch"):
        best_epochs([float("nan")], 1)


# --------------------------------------------------------------------------- analytic toy
def test_conditional_toy_loglik_matches_truth_and_a_wrong_flow_fails(toy_flow):
    flow, x, m = toy_flow
    x_test, m_test = toy_sample(4000, seed=99)
    truth = toy_log_prob(x_test, m_test).mean()
    gap = truth - flow.log_prob(x_test, m_test).mean()
    assert abs(gap) < LOGLIK_TOLERANCE, gap

    # The same flow trained with m shuffled (no information about m, i.e. unconditional)
    # must fail the same tolerance: the toy's x carries ~0.8 nats about m.
    wrong = ConditionalFlow(flow.options).fit(
        x, np.random.default_rng(5).permutation(m), seed=0, progress=False
    )
    wrong_gap = truth - wrong.log_prob(x_test, m_test).mean()
    assert wrong_gap > 10 * LOGLIK_TOLERANCE, wrong_gap


def test_default_spline_flow_on_the_conditional_toy():
    """The default kind (NSF) on the same toy; splines fit a Gaussian less exactly than
    affine transforms, so its stated tolerance is 0.05 nats."""
    x, m = toy_sample(3000, seed=1)
    opts = FlowOptions(
        kind="nsf", transforms=2, hidden_features=(32, 32), epochs=12, batch_size=256,
        lr=1e-2, n_best_epochs=3, logit=False,
    )  # fmt: skip
    flow = ConditionalFlow(opts).fit(x, m, seed=0, progress=False)
    x_test, m_test = toy_sample(4000, seed=99)
    gap = toy_log_prob(x_test, m_test).mean() - flow.log_prob(x_test, m_test).mean()
    assert abs(gap) < 0.05, gap


def test_samples_follow_the_conditional_mean(toy_flow):
    flow = toy_flow[0]
    for m0 in (0.2, 0.8):
        s = flow.sample(np.full(4000, m0), seed=3)
        np.testing.assert_allclose(s.mean(axis=0), TOY_OFFSET + m0 * TOY_SLOPE, atol=0.06)


def test_log_prob_is_normalised_in_the_original_space_with_the_logit():
    """The scaler's Jacobian is included: the density integrates to 1 over x."""
    rng = np.random.default_rng(2)
    m = rng.uniform(0, 1, 1500)
    x = np.stack([rng.beta(2 + 3 * m, 3), rng.exponential(0.2 + 0.2 * m)], axis=1)
    opts = FlowOptions(**{**SMALL, "logit": True, "epochs": 4})
    flow = ConditionalFlow(opts).fit(x, m, seed=1, progress=False)
    lo, hi = flow.scaler_.low_, flow.scaler_.high_
    n = 300
    g0 = lo[0] + (np.arange(n) + 0.5) * (hi[0] - lo[0]) / n
    g1 = lo[1] + (np.arange(n) + 0.5) * (hi[1] - lo[1]) / n
    grid = np.stack(np.meshgrid(g0, g1, indexing="ij"), axis=-1).reshape(-1, 2)
    cell = (hi[0] - lo[0]) * (hi[1] - lo[1]) / n**2
    total = np.exp(flow.log_prob(grid, np.full(len(grid), 0.5))).sum() * cell
    assert total == pytest.approx(1.0, abs=0.03)


# --------------------------------------------------------------------------- ensembles
def test_members_are_the_lowest_validation_loss_epochs_by_construction(toy_flow):
    flow, x, m = toy_flow
    opts = flow.options
    assert len(flow.members_) == opts.n_flows * opts.n_best_epochs
    for k, record in enumerate(flow.history_):
        assert len(record["val_loss"]) == len(record["train_loss"]) == opts.epochs
        assert math.isfinite(record["initial_val_loss"])
        chosen = [e for f, e in flow.best_epochs_ if f == k]
        assert chosen == best_epochs(record["val_loss"], opts.n_best_epochs)
        assert record["best_epochs"] == chosen
    # Re-evaluating each member on the validation events reproduces the recorded loss of
    # its epoch: the member really is that epoch's weights (no off-by-one).
    val = flow.validation_mask_
    z = torch.as_tensor(flow.scaler_.transform(x[val]), dtype=torch.float32)
    c = torch.as_tensor(flow.context_scaler_.transform(m[val, None]), dtype=torch.float32)
    for (k, epoch), member in zip(flow.best_epochs_, flow.members_):
        loss = flow_mod._eval_loss(member, z, c, None)
        assert loss == pytest.approx(flow.history_[k]["val_loss"][epoch - 1], rel=1e-6)


def test_ensemble_log_prob_is_the_mixture_of_its_members(toy_flow):
    flow = toy_flow[0]
    x, m = toy_sample(50, seed=4)
    z = torch.as_tensor(flow.scaler_.transform(x), dtype=torch.float32)
    c = torch.as_tensor(flow.context_scaler_.transform(m[:, None]), dtype=torch.float32)
    with torch.no_grad():
        per_member = np.stack([mem(c).log_prob(z).double().numpy() for mem in flow.members_])
    k = len(flow.members_)
    mixture = np.log(np.exp(per_member).mean(axis=0)) + flow.scaler_.log_abs_det_jacobian(x)
    np.testing.assert_allclose(flow.log_prob(x, m), mixture, rtol=1e-6)
    assert k == 6 and np.ptp(per_member, axis=0).max() > 0  # members differ


def test_ensemble_samples_come_from_every_member_and_are_seeded(toy_flow):
    flow = toy_flow[0]
    m = np.linspace(0, 1, 600)
    a = flow.sample(m, seed=7)
    np.testing.assert_array_equal(a, flow.sample(m, seed=7))
    assert not np.array_equal(a, flow.sample(m, seed=8))
    assert a.shape == (600, 2) and np.isfinite(a).all()
    assert flow.sample(np.array([]), seed=0).shape == (0, 2)


def test_early_stopping_in_fit_stops_patience_epochs_after_the_best(monkeypatch):
    """Scripted validation losses; the pre-training loss (first, 0.1) is the lowest.

    It must neither count as the best for early stopping (which would stop at epoch 3)
    nor be picked as an ensemble member.
    """
    scripted = iter([0.1, 5.0, 4.0, 1.0, 3.0, 0.9, 2.0, 0.8, 1.5, 1.4, 1.3, 1.2, 1.1])

    def fake_eval(*args):
        return next(scripted)

    monkeypatch.setattr(flow_mod, "_eval_loss", fake_eval)
    x, m = toy_sample(600, seed=2)
    opts = FlowOptions(**{**SMALL, "epochs": 12, "patience": 3, "n_best_epochs": 3})
    flow = ConditionalFlow(opts).fit(x, m, seed=0, progress=False)
    record = flow.history_[0]
    assert record["initial_val_loss"] == 0.1  # recorded, but not an epoch
    assert record["val_loss"] == [5.0, 4.0, 1.0, 3.0, 0.9, 2.0, 0.8, 1.5, 1.4, 1.3]
    assert record["stopped_early"]
    assert record["best_epochs"] == [7, 5, 3]
    assert flow.best_epochs_ == [(0, 7), (0, 5), (0, 3)]


# --------------------------------------------------------------------------- files
def test_save_load_round_trips_log_prob_and_samples_exactly(toy_flow, tmp_path):
    flow = toy_flow[0]
    path = flow.save(tmp_path / "sub" / "flow.pt")
    again = ConditionalFlow.load(path)
    x, m = toy_sample(300, seed=11)
    np.testing.assert_array_equal(again.log_prob(x, m), flow.log_prob(x, m))
    np.testing.assert_array_equal(again.sample(m, seed=5), flow.sample(m, seed=5))
    assert again.options == flow.options
    assert again.history_ == flow.history_
    assert again.best_epochs_ == flow.best_epochs_


def test_corrupted_or_modified_files_are_refused(toy_flow, tmp_path):
    flow = toy_flow[0]
    path = flow.save(tmp_path / "flow.pt")

    payload = torch.load(path, weights_only=True)
    key = next(iter(payload["members"][0]))
    payload["members"][0][key] = payload["members"][0][key] + 1e-3  # a changed weight
    torch.save(payload, tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="checksum mismatch"):
        ConditionalFlow.load(tmp_path / "weights.pt")

    payload = torch.load(path, weights_only=True)
    payload["meta"] = payload["meta"].replace('"n_features": 2', '"n_features": 3')
    torch.save(payload, tmp_path / "meta.pt")
    with pytest.raises(ValueError, match="checksum mismatch"):
        ConditionalFlow.load(tmp_path / "meta.pt")

    data = path.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated\.pt"):
        ConditionalFlow.load(tmp_path / "truncated.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable"):
        ConditionalFlow.load(tmp_path / "garbage.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a contrastx-cathode-flow file"):
        ConditionalFlow.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        ConditionalFlow.load(tmp_path / "missing.pt")


# --------------------------------------------------------------------------- misc
def test_weights_are_a_weighted_mean_so_a_constant_factor_changes_nothing():
    x, m = toy_sample(500, seed=3)
    opts = FlowOptions(**SMALL)
    plain = ConditionalFlow(opts).fit(x, m, seed=4, progress=False)
    scaled = ConditionalFlow(opts).fit(x, m, seed=4, progress=False, weights=np.full(500, 3.0))
    np.testing.assert_allclose(
        scaled.history_[0]["val_loss"], plain.history_[0]["val_loss"], rtol=1e-4
    )
    # zero weight on every validation event is an error, not a NaN loss
    w = np.ones(500)
    w[plain.validation_mask_] = 0.0
    with pytest.raises(ValueError, match="weights sum to zero on the training or the validation"):
        ConditionalFlow(opts).fit(x, m, seed=4, progress=False, weights=w)


def test_per_feature_logit_flags():
    x, m = toy_sample(300, seed=8)
    x[:, 1] = np.abs(x[:, 1])  # a bounded (non-negative) feature
    flow = ConditionalFlow(FlowOptions(**{**SMALL, "logit": (False, True)}))
    flow.fit(x, m, seed=0, progress=False)
    assert flow.scaler_.logit_.tolist() == [False, True]
    samples = flow.sample(np.full(2000, 0.5), seed=0)
    assert (samples[:, 1] >= flow.scaler_.low_[1]).all()  # inside the logit bounds
    with pytest.raises(ValueError, match=r"logit lists 3 flag\(s\) but x has 2"):
        ConditionalFlow(FlowOptions(**{**SMALL, "logit": (True,) * 3})).fit(x, m)


def test_progress_logs_one_line_per_epoch_with_eta(caplog):
    x, m = toy_sample(400, seed=5)
    with caplog.at_level(logging.INFO, logger="contrastx.cathode.flow"):
        ConditionalFlow(FlowOptions(**SMALL)).fit(x, m, seed=0, progress=False)
    lines = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()]
    assert len([s for s in lines if s.startswith("flow 1/1 epoch")]) == SMALL["epochs"]
    assert all("ETA" in s and "events/s" in s for s in lines if s.startswith("flow 1/1 epoch"))


def test_progress_bar_on_request(capsys):
    x, m = toy_sample(400, seed=5)
    ConditionalFlow(FlowOptions(**SMALL)).fit(x, m, seed=0, progress=True)
    assert "flow 1/1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("x", "m", "kwargs", "error", "message"),
    [
        (np.ones((0, 2)), np.ones(0), {}, ValueError, "x is empty"),
        (np.ones((10, 2)), np.ones(9), {}, ValueError, "x has 10 events but m has 9"),
        (np.full((10, 2), np.nan), np.ones(10), {}, ValueError, "non-finite"),
        (np.ones((10, 2)), np.r_[np.ones(9), np.nan], {}, ValueError, "m holds 1 non-finite"),
        (np.ones(10), np.ones(10), {}, ValueError, "x must be 2-D"),
        (np.ones((10, 2)), np.ones((10, 1)), {}, ValueError, "m must be 1-D"),
        (np.ones((2, 2)), np.ones(2), {}, ValueError, "too few to split"),
        (None, None, {"weights": np.ones(5)}, ValueError, r"weights must have shape \(40,\)"),
        (None, None, {"weights": -np.ones(40)}, ValueError, "finite and >= 0"),
        (None, None, {"seed": 1.5}, TypeError, "seed must be an integer"),
        (None, None, {"device": "banana"}, ValueError, "device must be"),
    ],
)
def test_bad_input_gets_a_clear_error(x, m, kwargs, error, message):
    if x is None:
        x, m = toy_sample(40, seed=0)
    with pytest.raises(error, match=message):
        ConditionalFlow(FlowOptions(**SMALL)).fit(x, m, progress=False, **kwargs)


def test_unfitted_and_mismatched_calls_are_refused(toy_flow):
    with pytest.raises(RuntimeError, match="not fitted"):
        ConditionalFlow().sample(np.ones(3))
    with pytest.raises(TypeError, match="FlowOptions"):
        ConditionalFlow({"kind": "maf"})
    flow = toy_flow[0]
    with pytest.raises(ValueError, match="x has 3 events but m has 2"):
        flow.log_prob(np.ones((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match=r"must have 2 feature\(s\)"):
        flow.log_prob(np.ones((3, 4)), np.ones(3))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_request_without_cuda_is_a_clear_error():
    x, m = toy_sample(40, seed=0)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        ConditionalFlow(FlowOptions(**SMALL)).fit(x, m, device="cuda", progress=False)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fit_and_sample_on_cuda_match_the_cpu_copy(tmp_path):
    x, m = toy_sample(2000, seed=6)
    opts = FlowOptions(**{**SMALL, "epochs": 5})
    gpu = ConditionalFlow(opts).fit(x, m, seed=0, device="cuda", progress=False)
    assert gpu.device_.type == "cuda"
    cpu = ConditionalFlow.load(gpu.save(tmp_path / "f.pt"), device="cpu")
    xt, mt = toy_sample(500, seed=7)
    np.testing.assert_allclose(gpu.log_prob(xt, mt), cpu.log_prob(xt, mt), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gpu.sample(mt, seed=1), cpu.sample(mt, seed=1), atol=1e-3)
