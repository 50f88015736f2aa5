"""The embedding side on any event layout: training, model and embedding files, embedding,
augmentations and baselines on the diphoton layout; ADC2021 paths unchanged."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from contrastx.cli import embed as embed_cli
from contrastx.cli import train as train_cli
from contrastx.embed import (
    VAE,
    LeadingPtBaseline,
    RawBaseline,
    TrainConfig,
    Trainer,
    build_model,
    embed,
    fit_vae,
    load_model,
    read_embedding,
    save_model,
    write_embedding,
)
from contrastx.embed.augmentations import (
    Compose,
    DetectorCropping,
    GaussianResampling,
    NaiveMasking,
    PhiRotation,
    PtSmearing,
    parse_augmentation,
)
from contrastx.embed.encoders import LayoutScaler
from contrastx.embed.training import PRESETS
from contrastx.events import ADC2021, DIPHOTON, Events, Preprocessor, read_events, write_events
from contrastx.events.layout import EventFeature, EventLayout, ObjectFeature, ObjectGroup
from contrastx.options import OptionsError

CPU_PRESET = "supcon-kl-particle-transformer-cpu"


def _tiny_pt(**overrides) -> TrainConfig:
    """The CPU particle-transformer preset cut to one epoch of 100-event batches (three
    classes: 33 each plus one of a class drawn per batch)."""
    return TrainConfig.from_preset(
        CPU_PRESET, **{"epochs": 1, "batch_size": 100, "progress": False, **overrides}
    )


@pytest.fixture(scope="module")
def pt_trainer(diphoton_sample):
    return Trainer(_tiny_pt()).fit(diphoton_sample)


# ----------------------------------------------------------------------- preprocessing
def test_layout_scaler_matches_the_preprocessor(diphoton_sample):
    ev = diphoton_sample
    pre = Preprocessor("layout", DIPHOTON).fit(ev[:400])
    scaler = LayoutScaler(pre.state_dict())
    objects, pad, feats, raw = scaler(
        torch.from_numpy(ev.particles), torch.from_numpy(ev.event_features)
    )
    ref = pre.encoder_inputs(ev)
    np.testing.assert_array_equal(objects.numpy(), ref.objects)
    np.testing.assert_array_equal(pad.numpy(), ~ref.mask)
    np.testing.assert_array_equal(feats.numpy(), ref.event_features)
    np.testing.assert_array_equal(raw.numpy(), ev.particles[:, DIPHOTON.encoder_slots])
    assert scaler.preprocessing_state() == pre.state_dict()
    with pytest.raises(ValueError, match=r"event-level encoder features \(n_jets, ht\)"):
        scaler(torch.from_numpy(ev.particles))
    with pytest.raises(ValueError, match="needs a 'layout' preprocessing state"):
        LayoutScaler({"kind": "pt", "mean": 1.0, "std": 1.0})


# ----------------------------------------------------------------------- training (API)
def test_particle_transformer_trains_on_diphoton_and_round_trips(
    pt_trainer, diphoton_sample, tmp_path
):
    ev = diphoton_sample
    tr = pt_trainer
    assert len(tr.history_) == 1 and np.isfinite(tr.history_[0]["train_loss"])
    model = tr.model_
    assert model.layout == DIPHOTON and model.gaussian is not None
    # the encoder is sized from the layout: 12 features, the two encoder event features
    assert (model.encoder.options.n_features, model.encoder.options.n_event_features) == (12, 2)
    z = tr.embed(ev)
    assert z.shape == (len(ev), 6) and np.isfinite(z).all()
    # the model reads the event-level features: changing H_T changes the embedding
    other = Events(
        ev.particles,
        ev.labels,
        ev.process_names,
        layout=DIPHOTON,
        event_features=ev.event_features * np.array([1, 2, 1], np.float32),
    )
    assert not np.allclose(tr.embed(other), z)
    # ... but not m_gg, which the layout keeps out of the encoder
    m_gg = ev.event_features.copy()
    m_gg[:, DIPHOTON.event_feature_index("m_gg")] += 10.0
    same = Events(ev.particles, ev.labels, ev.process_names, layout=DIPHOTON, event_features=m_gg)
    np.testing.assert_array_equal(tr.embed(same), z)

    path = tr.save(tmp_path / "pt.pt")
    loaded = load_model(path)
    assert loaded.layout == DIPHOTON and loaded.preprocessing["kind"] == "layout"
    np.testing.assert_array_equal(loaded.embed(ev), z)
    np.testing.assert_allclose(loaded.embed(ev, batch_size=7), z, rtol=0, atol=1e-6)


def test_every_encoder_and_augmentation_trains_on_a_layout(diphoton_sample):
    for encoder, kw in (("mlp", {}), ("transformer", {"n_layers": 1, "d_model": 16})):
        cfg = TrainConfig(
            encoder=encoder,
            encoder_kwargs=kw,
            method="simclr",
            preprocessing="layout",
            augmentation="mask:0.3,gauss:0.1,smear:0.1,rotate,crop:2.0",
            latent_dim=4,
            epochs=1,
            batch_size=128,
            lr=0.1,
            progress=False,
        )
        tr = Trainer(cfg).fit(diphoton_sample)
        assert tr.model_.layout == DIPHOTON
        assert np.isfinite(tr.history_[0]["train_loss"])
        assert embed(tr.model_, diphoton_sample).shape == (len(diphoton_sample), 4)


def test_pair_features_read_the_raw_kinematics(diphoton_sample):
    kw = {**PRESETS[CPU_PRESET]["encoder_kwargs"], "interaction_columns": [0, 1, 2]}
    tr = Trainer(_tiny_pt(encoder_kwargs=kw)).fit(diphoton_sample)
    assert tr.model_.encoder.pair_embed is not None
    assert np.isfinite(tr.embed(diphoton_sample)).all()


def test_layout_settings_are_checked(diphoton_sample, small_sample):
    with pytest.raises(OptionsError, match="preprocessing must be 'layout' for the particle"):
        TrainConfig(encoder="particle_transformer")
    with pytest.raises(ValueError, match="layout 'diphoton' need preprocessing 'layout'"):
        Trainer(TrainConfig(epochs=1, batch_size=64, progress=False)).fit(diphoton_sample)
    pre = Preprocessor("layout", DIPHOTON).fit(diphoton_sample).state_dict()
    bad = {"encoder": "particle_transformer", "preprocessing": pre}
    with pytest.raises(ValueError, match="n_features = 11 does not match layout 'diphoton'"):
        build_model({**bad, "encoder_kwargs": {"n_features": 11}})
    # the particle transformer trains on ADC2021 events too, with the layout preprocessing
    tr = Trainer(_tiny_pt()).fit(small_sample)
    assert tr.model_.layout == ADC2021 and tr.model_.encoder.options.n_features == 3


def test_presets_include_the_particle_transformer():
    for name in ("supcon-kl-particle-transformer", CPU_PRESET):
        cfg = TrainConfig.from_preset(name)
        assert (cfg.encoder, cfg.method, cfg.preprocessing, cfg.resolved_head) == (
            "particle_transformer", "supcon_kl", "layout", "projection",
        )  # fmt: skip
        assert cfg.sampling == "balanced" and cfg.latent_dim == 6
    paper = TrainConfig.from_preset("supcon-kl-particle-transformer")
    assert (paper.batch_size, paper.epochs, paper.patience, paper.warmup_epochs) == (
        8192, 100, 10, 5,
    )  # fmt: skip


# ----------------------------------------------------------------------- layout checks
def test_a_layout_mismatch_is_a_clear_error(
    pt_trainer, small_sample, diphoton_sample, layout_events
):
    with pytest.raises(
        ValueError,
        match=r"trained on events in layout 'diphoton' .* but events are in layout 'adc2021'",
    ):
        pt_trainer.embed(small_sample)
    mlp = build_model({"encoder": "mlp", "latent_dim": 4})
    with pytest.raises(ValueError, match=r"layout 'adc2021' .* events are in layout 'diphoton'"):
        embed(mlp, diphoton_sample)
    # a layout of one's own with the same name but another definition
    mine = EventLayout.from_dict({**DIPHOTON.to_dict(), "description": "x"})
    assert mine == DIPHOTON  # the description is not part of the layout
    groups = (ObjectGroup("jet", "j", 2, eta_max=2.5),)
    other = EventLayout(
        name="diphoton",
        groups=groups,
        features=(ObjectFeature("pt"), ObjectFeature("eta"), ObjectFeature("phi")),
    )
    ev = layout_events(other, 20, seed=1)
    with pytest.raises(ValueError, match="same name, different definition"):
        pt_trainer.embed(ev)
    # a particle array will not do for a layout with event-level encoder features
    with pytest.raises(ValueError, match="pass Events"):
        pt_trainer.embed(diphoton_sample.particles)


def test_layout_without_event_features_embeds_arrays(layout_events):
    layout = EventLayout(
        name="dijet",
        groups=(ObjectGroup("jet", "j", 3, eta_max=2.5), ObjectGroup("MET", "MET", 1, eta_max=0)),
        features=(ObjectFeature("pt", log=True), ObjectFeature("eta"), ObjectFeature("phi")),
        event_features=(EventFeature("ht", log=True, encoder=False),),
    )
    ev = layout_events(layout, 300, seed=4, n_processes=2)
    cfg = TrainConfig(
        preprocessing="layout", latent_dim=2, epochs=1, batch_size=100, progress=False
    )
    tr = Trainer(cfg).fit(ev)
    np.testing.assert_array_equal(tr.embed(ev.particles), tr.embed(ev))


# ----------------------------------------------------------------------- CLIs
def test_train_and_embed_cli_on_diphoton(tmp_path, capsys, diphoton_sample, small_sample):
    src = write_events(tmp_path / "dipho.h5", diphoton_sample)
    model = tmp_path / "pt.pt"
    args = ["--events", str(src), "--out", str(model), "--preset", CPU_PRESET]
    args += ["--epochs", "1", "--batch-size", "100", "--no-progress"]
    assert train_cli.main(args) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "600 events in layout 'diphoton'" in err  # every labelled process by default
    loaded = load_model(model)
    assert loaded.layout == DIPHOTON and loaded.class_names == ["p0", "p1", "p2"]
    assert loaded.training_events is not None and loaded.training_events.matches(src)

    out = tmp_path / "emb.h5"
    assert embed_cli.main(["--model", str(model), "--events", str(src), "--out", str(out)]) == 0
    d = read_embedding(out)
    assert d.layout == DIPHOTON and d.embedding.shape == (600, 6)
    np.testing.assert_array_equal(d.embedding, loaded.embed(read_events(src)))
    np.testing.assert_array_equal(d.labels, diphoton_sample.labels)
    with h5py.File(out) as f:
        assert f.attrs["layout_sha256"] == DIPHOTON.fingerprint
        assert EventLayout.from_json(f.attrs["layout"]) == DIPHOTON

    # a file of another layout: one line naming both layouts and both files
    adc = write_events(tmp_path / "adc.h5", small_sample)
    out2 = tmp_path / "emb2.h5"
    rc = embed_cli.main(["--model", str(model), "--events", str(adc), "--out", str(out2)])
    err = capsys.readouterr().err
    assert rc == 2 and not out2.exists()
    assert (
        f"contrastx-embed: error: model {model} was trained on events in layout 'diphoton'" in err
    )
    assert f"the events of {adc} are in layout 'adc2021'" in err
    # the ADC2021 presets refuse diphoton events with the fix in the message
    rc = train_cli.main(["--events", str(src), "--out", str(tmp_path / "m.pt"), "--no-progress"])
    assert rc == 2 and "need preprocessing 'layout'" in capsys.readouterr().err


# ----------------------------------------------------------------------- files
def test_model_files_record_the_layout(tmp_path, small_sample, pt_trainer):
    mlp = build_model({"encoder": "mlp", "latent_dim": 4})
    path = save_model(tmp_path / "adc.pt", mlp, {"encoder": "mlp", "latent_dim": 4})
    payload = torch.load(path, weights_only=True)
    assert json.loads(payload["layout"])["name"] == "adc2021"
    assert payload["layout_sha256"] == ADC2021.fingerprint
    # files written before layouts were recorded are ADC2021 models
    del payload["layout"], payload["layout_sha256"]
    torch.save(payload, tmp_path / "old.pt")
    old = load_model(tmp_path / "old.pt")
    assert old.layout == ADC2021
    np.testing.assert_array_equal(old.embed(small_sample), embed(mlp, small_sample))
    # a damaged record is refused, naming the file
    p2 = pt_trainer.save(tmp_path / "pt.pt")
    payload = torch.load(p2, weights_only=True)
    payload["layout_sha256"] = "0" * 64
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad\.pt: the layout record does not match"):
        load_model(tmp_path / "bad.pt")
    payload["layout"], payload["layout_sha256"] = ADC2021.to_json(), ADC2021.fingerprint
    torch.save(payload, tmp_path / "bad2.pt")
    with pytest.raises(ValueError, match=r"bad2\.pt: the layout record \('adc2021'\) is not"):
        load_model(tmp_path / "bad2.pt")


def test_embedding_files_record_the_layout(tmp_path):
    z, y = np.zeros((3, 2), np.float32), np.zeros(3, np.int64)
    write_embedding(tmp_path / "a.h5", z, y, ["p0"], layout=DIPHOTON)
    assert read_embedding(tmp_path / "a.h5").layout == DIPHOTON
    write_embedding(tmp_path / "b.h5", z, y, ["p0"])
    assert read_embedding(tmp_path / "b.h5").layout is None  # not recorded
    with h5py.File(tmp_path / "a.h5", "a") as f:
        f.attrs["layout_sha256"] = "0" * 64
    with pytest.raises(ValueError, match=r"a\.h5: the layout attribute does not match"):
        read_embedding(tmp_path / "a.h5")
    with pytest.raises(TypeError, match="layout must be an EventLayout"):
        write_embedding(tmp_path / "c.h5", z, y, ["p0"], layout="diphoton")


# ----------------------------------------------------------------------- augmentations
AUGMENTATIONS = [
    NaiveMasking(0.5, layout=DIPHOTON),
    GaussianResampling(0.3, layout=DIPHOTON),
    PtSmearing(0.2, layout=DIPHOTON),
    PhiRotation(layout=DIPHOTON),
    DetectorCropping(1.0, layout=DIPHOTON),
    DetectorCropping(1.0, center="random", layout=DIPHOTON),
    parse_augmentation("rotate,mask:0.3", DIPHOTON),
]


@pytest.mark.parametrize("aug", AUGMENTATIONS, ids=repr)
def test_augmentations_on_a_layout(diphoton_sample, aug):
    x = torch.from_numpy(diphoton_sample.particles)
    a = aug(x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, aug(x, torch.Generator().manual_seed(5)))
    assert a.shape == x.shape and torch.isfinite(a).all()
    pad = x[..., 0] == 0
    assert (a[pad] == 0).all()  # padding stays zero
    one_hot = torch.as_tensor(DIPHOTON.one_hot_features)
    kept = a[..., 0] > 0  # cropping drops whole objects (all zero)
    # types never change (cropped objects are padding, all zero)
    if isinstance(aug, DetectorCropping):
        torch.testing.assert_close(a[..., one_hot][kept], x[..., one_hot][kept])
        assert (a[~kept] == 0).all()
    else:
        torch.testing.assert_close(a[..., one_hot], x[..., one_hot])
    met = DIPHOTON.group_slots("MET")
    assert (a[:, met, DIPHOTON.feature_index("eta")] == 0).all()
    if not repr(aug).startswith(("NaiveMasking", "Compose")):  # masking zeroes any feature
        cols = [DIPHOTON.feature_index(f) for f in ("mass", "btag", "tau21", "tau32")]
        torch.testing.assert_close(a[..., cols][kept], x[..., cols][kept])
    assert (a[..., DIPHOTON.feature_index("phi")].abs() <= np.pi + 1e-6).all()
    if isinstance(aug, DetectorCropping):  # the photons are not encoder inputs: kept
        photons = DIPHOTON.group_slots("photon")
        torch.testing.assert_close(a[:, photons], x[:, photons])
    assert "layout='diphoton'" in repr(aug)


def test_augmentations_need_their_columns_and_one_layout():
    layout = EventLayout(
        name="pt_only",
        groups=(ObjectGroup("jet", "j", 2, eta_max=2.5),),
        features=(ObjectFeature("pt"), ObjectFeature("eta")),
    )
    with pytest.raises(ValueError, match="PhiRotation needs the object feature 'phi'"):
        PhiRotation(layout=layout)
    with pytest.raises(ValueError, match="one layout"):
        Compose([NaiveMasking(layout=DIPHOTON), NaiveMasking()])
    with pytest.raises(ValueError, match=r"\(N, 13, 12\)"):
        PhiRotation(layout=DIPHOTON)(torch.zeros(2, 19, 3))
    assert repr(parse_augmentation("mask:0.5,rotate")) == (
        "Compose(augmentations=[NaiveMasking(p=0.5), PhiRotation()])"
    )


# ----------------------------------------------------------------------- baselines
def test_baselines_on_a_layout(diphoton_sample, tmp_path):
    ev = diphoton_sample
    enc = DIPHOTON.encoder_slots
    raw = embed(RawBaseline(DIPHOTON), ev)
    expected = np.concatenate(
        [ev.particles[:, enc].reshape(len(ev), -1), ev.event_features[:, :2]], axis=1
    )
    np.testing.assert_array_equal(raw, expected)
    pre = Preprocessor("layout", DIPHOTON).fit(ev)
    scaled = RawBaseline(DIPHOTON, preprocessing=pre.state_dict())
    inputs = pre.encoder_inputs(ev)
    flat = np.concatenate([inputs.objects.reshape(len(ev), -1), inputs.event_features], axis=1)
    np.testing.assert_array_equal(embed(scaled, ev), flat)
    assert scaled.latent_dim == RawBaseline(DIPHOTON).latent_dim == 11 * 12 + 2

    lead = embed(LeadingPtBaseline(DIPHOTON), ev)
    groups = ["jet", "large_r_jet", "electron", "muon", "MET"]  # the photons are left out
    assert lead.shape == (len(ev), 5)
    for j, g in enumerate(groups):
        np.testing.assert_array_equal(
            lead[:, j], ev.feature("pt")[:, DIPHOTON.group_slots(g)][:, 0]
        )

    for model, cfg in (
        (scaled, {"kind": "raw"}),
        (LeadingPtBaseline(DIPHOTON), {"kind": "leading_pt"}),
    ):
        path = save_model(tmp_path / f"{cfg['kind']}.pt", model, cfg)
        loaded = load_model(path)
        assert loaded.layout == DIPHOTON
        np.testing.assert_array_equal(loaded.embed(ev), embed(model, ev))

    vae, hist = fit_vae(ev, preprocessing="layout", epochs=2, batch_size=100, seed=0)
    assert vae.layout == DIPHOTON and vae.decoder[-1].out_features == 11 * 12 + 2
    z = embed(vae, ev)
    assert z.shape == (len(ev), 6) and np.isfinite(hist).all()
    loaded = load_model(save_model(tmp_path / "vae.pt", vae, vae.config()))
    np.testing.assert_array_equal(loaded.embed(ev), z)
    with pytest.raises(ValueError, match="need preprocessing 'layout' for the VAE"):
        fit_vae(ev, epochs=1)
    assert isinstance(VAE(), VAE) and VAE().layout == ADC2021
