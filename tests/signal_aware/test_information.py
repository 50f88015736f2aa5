"""Appendix A's information study: classes, raw features, BDT and supervised confusion."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from contrastx.embed import TrainConfig, Trainer
from contrastx.events.container import Events
from contrastx.events.layout import ADC2021, DIPHOTON
from contrastx.signal_aware.information import (
    BTAG_THRESHOLD,
    RAW_FEATURES,
    SM_CLASS,
    SUPERVISED_LATENT_DIM,
    bdt_confusion,
    information_classes,
    raw_physics_features,
    supervised_config,
    supervised_confusion,
)
from torch import nn

COL = {name: DIPHOTON.feature_index(name) for name in DIPHOTON.feature_names}
SLOT = {g.name: DIPHOTON.group_slots(g.name).start for g in DIPHOTON.groups}
PROCESSES = (
    "gamma_gamma",
    "ggF",
    "VBF",
    "VH",
    "ttH",
    "X_hh_300",
    "X_hh_400",
    "A_Zh_300",
    "A_Zh_500",
    "t_ch",
)
PYTHIA_FILE = Path("/work/cache/pythia/diphoton-nompi.h5")

# A tiny particle transformer: the supervised tests train it for a few epochs in seconds.
TINY_ENCODER = {
    "embed_dims": [16],
    "n_heads": 2,
    "ffn_ratio": 1,
    "n_particle_blocks": 1,
    "n_class_blocks": 1,
    "dropout": 0.0,
    "attn_dropout": 0.0,
    "activation_dropout": 0.0,
    "mlp_dims": [16],
}


def encoder_config(**overrides) -> TrainConfig:
    """A contrastive (SupCon + KL) particle-transformer config, scaled down for tests."""
    values = dict(
        method="supcon_kl",
        encoder="particle_transformer",
        preprocessing="layout",
        latent_dim=6,
        epochs=3,
        batch_size=32,
        lr=3e-3,
        optimizer="adam",
        weight_decay=0.0,
        warmup_epochs=0,
        sampling="balanced",
        augmentation=None,
        encoder_kwargs=dict(TINY_ENCODER),
        progress=False,
        seed=0,
    )
    values.update(overrides)
    return TrainConfig(**values)


def make_event(
    jets=(),
    large=(),
    electrons=(),
    muons=(),
    met=(0.0, 0.0),
    photons=((60.0, 0.1, 0.0), (40.0, -0.2, 2.0)),
    n_jets=None,
    ht=None,
    m_gg=125.0,
):
    """One diphoton-layout event from object lists (each group sorted by pT here).

    jets: (pT, eta, phi, mass, btag); large: (pT, eta, phi, mass, tau21, tau32);
    electrons, muons, photons: (pT, eta, phi); met: (pT, phi). ``n_jets`` and ``ht``
    default to the jets given.
    """
    p = np.zeros((DIPHOTON.n_objects, DIPHOTON.n_features), dtype=np.float32)

    def fill(group, objects, columns):
        for i, obj in enumerate(sorted(objects, key=lambda o: -o[0])):
            for col, value in zip(columns, obj):
                p[SLOT[group] + i, COL[col]] = value

    fill("jet", jets, ("pt", "eta", "phi", "mass", "btag"))
    fill("large_r_jet", large, ("pt", "eta", "phi", "mass", "tau21", "tau32"))
    fill("electron", electrons, ("pt", "eta", "phi"))
    fill("muon", muons, ("pt", "eta", "phi"))
    fill("MET", [(met[0], 0.0, met[1])] if met[0] > 0 else [], ("pt", "eta", "phi"))
    fill("photon", photons, ("pt", "eta", "phi"))
    n = len(jets) if n_jets is None else n_jets
    h = sum(j[0] for j in jets) if ht is None else ht
    return p, np.array([n, h, m_gg], dtype=np.float32)


def make_events(rows, labels, process_names=PROCESSES, metadata=None) -> Events:
    particles = np.stack([r[0] for r in rows])
    DIPHOTON.fill_one_hot(particles)
    return Events(
        particles,
        labels=np.asarray(labels),
        process_names=process_names,
        layout=DIPHOTON,
        event_features=np.stack([r[1] for r in rows]),
        metadata=metadata or {},
    )


def random_event(rng, kind: str):
    """A random event of an easily told-apart kind: 'sm', 'hh' (b jets), 'zh' (leptons)."""
    photons = (
        (rng.uniform(40, 90), rng.uniform(-2, 2), rng.uniform(-3, 3)),
        (rng.uniform(26, 39), rng.uniform(-2, 2), rng.uniform(-3, 3)),
    )
    met = (rng.uniform(5, 30), rng.uniform(-3, 3))
    if kind == "sm":
        jets = [(rng.uniform(25, 50), rng.uniform(-3, 3), rng.uniform(-3, 3), 5.0, 0.0)]
        jets = jets[: rng.integers(0, 2)]
        return make_event(jets=jets, met=met, photons=photons)
    if kind == "hh":
        jets = [
            (rng.uniform(60, 200), rng.uniform(-2, 2), rng.uniform(-3, 3), 15.0, 1.0)
            for _ in range(4)
        ]
        large = [(rng.uniform(250, 400), rng.uniform(-1.5, 1.5), 0.3, 125.0, 0.3, 0.5)]
        return make_event(jets=jets, large=large, met=met, photons=photons)
    leptons = [(rng.uniform(20, 80), rng.uniform(-2, 2), rng.uniform(-3, 3)) for _ in range(2)]
    return make_event(electrons=leptons, met=(rng.uniform(60, 150), 0.5), photons=photons)


def toy_sample(n_per_kind: int, seed: int) -> Events:
    """Events of four processes: gamma_gamma and ggF ('sm'), X_hh_300 ('hh'), A_Zh_300 ('zh')."""
    rng = np.random.default_rng(seed)
    plan = [("gamma_gamma", "sm"), ("ggF", "sm"), ("X_hh_300", "hh"), ("A_Zh_300", "zh")]
    rows, labels = [], []
    for process, kind in plan:
        for _ in range(n_per_kind):
            rows.append(random_event(rng, kind))
            labels.append(PROCESSES.index(process))
    order = rng.permutation(len(rows))
    return make_events([rows[i] for i in order], np.asarray(labels)[order])


# --------------------------------------------------------------------------- classes
def test_classes_merge_backgrounds_and_mass_points():
    rng = np.random.default_rng(0)
    present = ["gamma_gamma", "ggF", "VH", "X_hh_300", "X_hh_400", "A_Zh_500"]
    labels = [PROCESSES.index(p) for p in present for _ in range(3)]
    ev = make_events([random_event(rng, "sm") for _ in labels], labels)

    y, names = information_classes(ev)

    # VBF, ttH, A_Zh_300 and t_ch are declared but have no events: no class of their own
    assert names == (SM_CLASS, "X_hh", "A_Zh")
    expected = {"gamma_gamma": 0, "ggF": 0, "VH": 0, "X_hh_300": 1, "X_hh_400": 1, "A_Zh_500": 2}
    assert y.dtype == np.int64
    assert y.tolist() == [expected[ev.process_names[k]] for k in ev.labels]


def test_classes_follow_the_backgrounds_given():
    rng = np.random.default_rng(1)
    present = ["t_ch", "ggF", "gamma_gamma", "X_hh_300"]
    labels = [PROCESSES.index(p) for p in present]
    ev = make_events([random_event(rng, "sm") for _ in labels], labels)

    y, names = information_classes(ev, backgrounds=("gamma_gamma",))

    # ggF is now a class of its own; signal groups in the generator's registry order
    assert names == (SM_CLASS, "ggF", "X_hh", "t_ch")
    assert y.tolist() == [3, 1, 0, 2]


def test_classes_without_background_events():
    rng = np.random.default_rng(2)
    labels = [PROCESSES.index("A_Zh_300"), PROCESSES.index("X_hh_400")]
    ev = make_events([random_event(rng, "zh") for _ in labels], labels)
    y, names = information_classes(ev)
    assert names == ("X_hh", "A_Zh") and y.tolist() == [1, 0]


def test_classes_refuse_bad_input():
    rng = np.random.default_rng(3)
    ev = make_events([random_event(rng, "sm") for _ in range(3)], [0, 5, -1])
    with pytest.raises(ValueError, match="1 of 3 events have no process label"):
        information_classes(ev)
    ok = ev[:2]
    with pytest.raises(TypeError, match="backgrounds must be a sequence of strings"):
        information_classes(ok, backgrounds="gamma_gamma")
    with pytest.raises(ValueError, match="at least one background"):
        information_classes(ok, backgrounds=())
    with pytest.raises(TypeError, match="events must be Events"):
        information_classes(ok.particles)
    # a signal group called like the merged background class
    odd = make_events(
        [random_event(rng, "sm") for _ in range(2)],
        [0, 1],
        process_names=("gamma_gamma", "mystery"),
        metadata={"process_groups": {"mystery": "SM"}},
    )
    with pytest.raises(ValueError, match="signal group called 'SM'"):
        information_classes(odd)


# ---------------------------------------------------------------------- raw features
def test_raw_features_of_a_hand_made_event():
    event = make_event(
        jets=[
            (100.0, 0.5, 0.1, 10.0, 1.0),
            (60.0, -1.0, 2.0, 8.0, 0.0),
            (30.0, 2.0, -2.0, 5.0, 1.0),
        ],
        large=[(250.0, 0.3, 0.2, 120.0, 0.3, 0.6), (210.0, -1.0, 3.0, 40.0, 0.7, 0.8)],
        electrons=[(25.0, 1.0, 1.0)],
        muons=[(20.0, -1.5, -1.0)],
        met=(40.0, 1.5),
        photons=((80.0, 0.2, 0.0), (60.0, -0.4, math.pi / 2)),
        n_jets=5,  # two more accepted jets than the four slots hold
        ht=230.0,
        m_gg=124.0,
    )
    empty = make_event(photons=((70.0, 0.0, 1.0), (50.0, 1.0, 1.0 - math.pi)))
    x, names = raw_physics_features(make_events([event, empty], [0, 0]))

    assert names == list(RAW_FEATURES) and len(names) == 9
    assert "m_gg" not in names
    assert x.shape == (2, 9) and x.dtype == np.float64
    got = dict(zip(names, x[0]))
    assert got["n_jets"] == 5 and got["ht"] == pytest.approx(230.0)
    assert got["n_bjets"] == 2  # scores 1, 0, 1
    assert got["n_leptons"] == 2
    assert got["met"] == pytest.approx(40.0)
    assert got["pt_gg"] == pytest.approx(100.0, rel=1e-6)  # 80 and 60 GeV at right angles
    assert got["jet1_pt"] == pytest.approx(100.0)
    assert got["large_r_jet1_mass"] == pytest.approx(120.0)
    assert got["large_r_jet1_tau21"] == pytest.approx(0.3)
    # no jets, leptons or MET: zeros; back-to-back photons: pT difference
    none = dict(zip(names, x[1]))
    assert none["pt_gg"] == pytest.approx(20.0, rel=1e-5)
    assert [none[k] for k in names if k != "pt_gg"] == [0.0] * 8


def test_raw_features_count_btags_at_the_threshold():
    jets = [(90.0, 0.0, 0.0, 5.0, BTAG_THRESHOLD), (70.0, 0.0, 1.0, 5.0, 0.51)]
    x, names = raw_physics_features(make_events([make_event(jets=jets)], [0]))
    assert x[0, names.index("n_bjets")] == 1  # strictly above the threshold


def test_raw_features_do_not_see_m_gg():
    a = make_events([make_event(m_gg=110.0), make_event(m_gg=150.0)], [0, 0])
    x, _ = raw_physics_features(a)
    assert np.array_equal(x[0], x[1])


def test_raw_features_need_the_diphoton_layout():
    ev = Events(np.zeros((2, ADC2021.n_objects, ADC2021.n_features)), layout=ADC2021)
    with pytest.raises(ValueError, match="layout 'adc2021' has no object group 'large_r_jet'"):
        raw_physics_features(ev)


# ------------------------------------------------------------------------------ BDT
def test_bdt_separable_problem_is_perfect():
    rng = np.random.default_rng(4)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    y = np.repeat(np.arange(3), 60)
    x = centres[y] + rng.normal(0, 0.5, (y.size, 2))
    yt = np.repeat(np.arange(3), 20)
    xt = centres[yt] + rng.normal(0, 0.5, (yt.size, 2))

    r = bdt_confusion(x, y, xt, yt, ["SM", "A", "B"], seed=0, max_iter=30)

    assert r["class_names"] == ["SM", "A", "B"]
    assert r["accuracy"] == 1.0
    assert np.array_equal(np.array(r["matrix"]), np.eye(3))
    assert r["n_train"] == 180 and r["n_test"] == 60


def test_bdt_rows_are_normalised_and_classes_balanced():
    # overlapping classes, 9 : 1: without class weights the minority class would mostly
    # be called background
    rng = np.random.default_rng(5)
    y = np.r_[np.zeros(900, int), np.ones(100, int)]
    x = rng.normal(0, 1, (y.size, 1)) + y[:, None] * 1.0
    yt = np.r_[np.zeros(900, int), np.ones(100, int)]
    xt = rng.normal(0, 1, (yt.size, 1)) + yt[:, None] * 1.0

    r = bdt_confusion(x, y, xt, yt, ["SM", "X"], seed=1, max_iter=20)

    m = np.array(r["matrix"])
    assert m.shape == (2, 2)
    assert np.allclose(m.sum(axis=1), 1.0)
    assert r["accuracy"] == pytest.approx(np.mean(np.diag(m)))
    assert m[1, 1] > 0.5  # the rare class is found more often than not
    assert 0.55 < r["accuracy"] < 0.9


def test_bdt_is_reproducible_from_its_seed():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 300)
    x = rng.normal(0, 1, (300, 3)) + y[:, None]
    a = bdt_confusion(x, y, x, y, ["a", "b", "c"], seed=3, max_iter=10)
    b = bdt_confusion(x, y, x, y, ["a", "b", "c"], seed=3, max_iter=10)
    assert a == b


def test_bdt_refuses_bad_input():
    x = np.zeros((4, 2))
    y = np.array([0, 1, 0, 1])
    names = ["SM", "X"]
    with pytest.raises(ValueError, match="y_test has no events of class\\(es\\) 'X'"):
        bdt_confusion(x, y, x, np.zeros(4, int), names, seed=0)
    with pytest.raises(ValueError, match="y_train must lie in \\[0, 1\\]"):
        bdt_confusion(x, np.array([0, 1, 2, 1]), x, y, names, seed=0)
    with pytest.raises(ValueError, match="y_train must have shape \\(4,\\)"):
        bdt_confusion(x, y[:3], x, y, names, seed=0)
    with pytest.raises(ValueError, match="x_train has 2 features but x_test has 3"):
        bdt_confusion(x, y, np.zeros((4, 3)), y, names, seed=0)
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="x_train contains NaN or inf \\(first at event 2"):
        bdt_confusion(bad, y, x, y, names, seed=0)
    with pytest.raises(ValueError, match="y_train must be integer class indices"):
        bdt_confusion(x, y.astype(float), x, y, names, seed=0)
    with pytest.raises(ValueError, match="duplicates"):
        bdt_confusion(x, y, x, y, ["SM", "SM"], seed=0)
    with pytest.raises(TypeError, match="seed must be an integer"):
        bdt_confusion(x, y, x, y, names, seed=0.5)
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        bdt_confusion(x, y, x, y, names, seed=0, max_iter=0)


# ------------------------------------------------------------------ fully supervised
def test_supervised_config_is_the_encoders_with_cross_entropy():
    base = encoder_config(patience=4, lr=5e-4)
    cfg = supervised_config(base)
    assert (cfg.method, cfg.alpha, cfg.augmentation, cfg.head) == ("vicreg_ce", 0.0, None, None)
    assert cfg.latent_dim == SUPERVISED_LATENT_DIM and cfg.test_fraction == 0.0
    unchanged = ("encoder", "encoder_kwargs", "lr", "batch_size", "epochs", "patience")
    assert all(getattr(cfg, k) == getattr(base, k) for k in (*unchanged, "sampling", "seed"))
    assert supervised_config(base, latent_dim=12).latent_dim == 12
    with pytest.raises(TypeError, match="train_config must be a TrainConfig"):
        supervised_config({"method": "supcon"})


def test_vicreg_ce_with_alpha_zero_is_plain_cross_entropy():
    """What supervised_confusion relies on: the training loss is the batch's cross-entropy."""
    torch.manual_seed(0)
    ev = toy_sample(20, seed=7)
    y, names = information_classes(ev)
    train = Events(ev.particles, y, names, layout=DIPHOTON, event_features=ev.event_features)
    cfg = supervised_config(encoder_config(epochs=1))
    trainer = Trainer(cfg).fit(train)
    model = trainer.model_.eval()
    x = torch.from_numpy(train.particles)
    feats = torch.from_numpy(train.event_features)
    labels = torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        loss = trainer.compute_loss(model, x, labels, None, gen, feats)
        ce = nn.functional.cross_entropy(model(x, event_features=feats)["logits"], labels)
    assert float(loss) == pytest.approx(float(ce), rel=1e-5)


def test_supervised_confusion_learns_an_easy_problem():
    torch.manual_seed(0)
    ev = toy_sample(60, seed=8)
    y, names = information_classes(ev)
    assert names == (SM_CLASS, "X_hh", "A_Zh")
    train, test = ev[:180], ev[180:]

    r = supervised_confusion(
        train, y[:180], test, y[180:], names, encoder_config(epochs=4, lr=1e-2)
    )

    m = np.array(r["matrix"])
    assert r["class_names"] == list(names)
    assert m.shape == (3, 3) and np.allclose(m.sum(axis=1), 1.0)
    assert r["accuracy"] == pytest.approx(np.mean(np.diag(m)))
    assert r["n_train"] == 180 and r["n_test"] == 60
    assert r["accuracy"] > 0.9  # b jets, leptons and MET tell the classes apart


def test_supervised_confusion_refuses_bad_input():
    ev = toy_sample(5, seed=9)
    y, names = information_classes(ev)
    cfg = encoder_config(epochs=1)
    with pytest.raises(TypeError, match="train_events must be Events"):
        supervised_confusion(ev.particles, y, ev, y, names, cfg)
    with pytest.raises(ValueError, match="y_test must have shape \\(20,\\)"):
        supervised_confusion(ev, y, ev, y[:3], names, cfg)
    with pytest.raises(TypeError, match="train_config must be a TrainConfig"):
        supervised_confusion(ev, y, ev, y, names, dataclasses.asdict(cfg))


# ------------------------------------------------------------------- benchmark file
@pytest.mark.skipif(not PYTHIA_FILE.is_file(), reason="needs the Pythia diphoton benchmark file")
def test_on_the_pythia_benchmark_file():
    from contrastx.events.io import read_events

    ev = read_events(PYTHIA_FILE)
    rows = np.sort(np.random.default_rng(0).choice(len(ev), 2000, replace=False))
    ev = ev[rows]
    y, names = information_classes(ev)
    assert names[0] == SM_CLASS and "X_hh" in names and "gamma_gamma" not in names
    x, _ = raw_physics_features(ev)
    assert np.isfinite(x).all() and (x >= 0).all()
    r = bdt_confusion(x[::2], y[::2], x[1::2], y[1::2], names, seed=0, max_iter=50)
    assert r["accuracy"] > 2.0 / len(names)  # well above chance
