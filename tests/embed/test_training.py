import numpy as np
import pytest
import torch
from contrastx.embed.model_file import load_model
from contrastx.embed.training import (
    PRESETS,
    TrainConfig,
    Trainer,
    default_temperature,
    same_label_partners,
)
from contrastx.events import Events
from contrastx.events.generators import generate_sample


@pytest.fixture(scope="module")
def toy():
    # W vs ttbar: well separated in jet multiplicity
    return generate_sample({"W": 200, "ttbar": 200}, seed=0)


def test_loss_decreases_on_separable_toy(tiny_config, toy):
    tr = Trainer(tiny_config(epochs=4)).fit(toy)
    losses = [h["train_loss"] for h in tr.history_]
    assert losses[-1] < 0.75 * losses[0]
    assert all(np.isfinite(h["val_loss"]) for h in tr.history_)
    assert tr.class_names_ == ["W", "ttbar"]
    z = tr.embed(toy)
    assert z.shape == (400, 4) and np.isfinite(z).all()


METHOD_CASES = [
    ("simclr", "mlp", "mask:0.5"),
    ("supcon", "mlp", "mask:0.5"),
    ("vicreg", "mlp", "mask:0.5,rotate"),
    ("vicreg_ce", "transformer", None),
    ("supcon_kl", "transformer", None),
    ("supcon", "transformer", "mask:0.5"),
]


@pytest.mark.parametrize(("method", "encoder", "aug"), METHOD_CASES)
def test_every_method_trains(tiny_config, small_sample, method, encoder, aug):
    kw = {"encoder_kwargs": {"n_layers": 1}, "optimizer": "adam", "lr": 1e-3}
    cfg = tiny_config(
        method=method,
        encoder=encoder,
        augmentation=aug,
        epochs=1,
        **(kw if encoder != "mlp" else {}),
    )
    tr = Trainer(cfg).fit(small_sample)
    assert len(tr.history_) == 1 and np.isfinite(tr.history_[0]["train_loss"])
    assert tr.embed(small_sample[:10]).shape == (10, 4)


def test_resume_matches_uninterrupted_run(tiny_config, toy, tmp_path):
    cfg = tiny_config(augmentation="mask:0.5", method="supcon", epochs=3)
    full = Trainer(cfg).fit(toy, checkpoint=tmp_path / "a.pt")

    class Stop(Exception):
        pass

    def interrupt(epoch, record):
        if epoch == 0:
            raise Stop

    with pytest.raises(Stop):
        Trainer(cfg).fit(toy, checkpoint=tmp_path / "b.pt", on_epoch_end=interrupt)
    resumed = Trainer(cfg).fit(toy, checkpoint=tmp_path / "b.pt", resume=True)
    for (k, a), b in zip(full.model_.state_dict().items(), resumed.model_.state_dict().values()):
        assert torch.equal(a, b), k
    assert [h["train_loss"] for h in full.history_] == [h["train_loss"] for h in resumed.history_]
    with pytest.raises(ValueError, match="different config"):
        Trainer(tiny_config(augmentation="mask:0.5", epochs=4)).fit(
            toy, checkpoint=tmp_path / "b.pt", resume=True
        )


def test_save_load_identical_embeddings(tiny_config, toy, tmp_path):
    tr = Trainer(
        tiny_config(
            method="supcon_kl",
            encoder="transformer",
            optimizer="adam",
            lr=1e-3,
            encoder_kwargs={"n_layers": 1},
            epochs=1,
        )
    ).fit(toy)
    path = tr.save(tmp_path / "m.pt")
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.embed(toy), tr.embed(toy))
    assert loaded.preprocessing == tr.preprocessor_.state_dict()
    assert loaded.history == tr.history_ and loaded.class_names == ["W", "ttbar"]
    assert loaded.train_config["method"] == "supcon_kl" and loaded.latent_dim == 4
    with pytest.raises(ValueError, match=r"not a (readable )?contrastx model"):
        (tmp_path / "junk.pt").write_bytes(b"junk")
        load_model(tmp_path / "junk.pt")


def test_early_stopping_restores_best(tiny_config, toy, monkeypatch):
    vals = iter([1.0, 2.0, 3.0, 4.0, 5.0])
    snapshots = []

    def fake_validate(self, model, *a):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(vals)

    monkeypatch.setattr(Trainer, "_validate", fake_validate)
    tr = Trainer(tiny_config(epochs=5, patience=1)).fit(toy)
    assert len(tr.history_) == 2 and tr.stopped_early_ and tr.best_epoch_ == 0
    for k, v in tr.model_.state_dict().items():
        assert torch.equal(v, snapshots[0][k])


@pytest.mark.parametrize("restore_best", [False, True])
def test_restore_best_keeps_the_lowest_validation_epoch(
    tiny_config, toy, monkeypatch, restore_best
):
    vals = iter([2.0, 1.0, 3.0])
    snapshots = []

    def fake_validate(self, model, *a):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(vals)

    monkeypatch.setattr(Trainer, "_validate", fake_validate)
    tr = Trainer(tiny_config(epochs=3, restore_best=restore_best)).fit(toy)
    assert len(tr.history_) == 3 and not tr.stopped_early_ and tr.best_epoch_ == 1
    kept = snapshots[1] if restore_best else snapshots[2]
    for k, v in tr.model_.state_dict().items():
        assert torch.equal(v, kept[k]), k


def test_cpu_transformer_preset_is_smaller_and_trains(small_sample):
    from contrastx.embed.model import build_model
    from contrastx.embed.training import COLLAPSE_COSINE

    def n_params(preset):
        cfg = Trainer(TrainConfig.from_preset(preset, latent_dim=4)).model_config(4)
        model = build_model({k: v for k, v in cfg.items() if k != "kind"})
        return sum(p.numel() for p in model.parameters())

    assert 2 * n_params("supcon-transformer-cpu") < n_params("supcon-transformer")
    cfg = TrainConfig.from_preset(
        "supcon-transformer-cpu", latent_dim=4, epochs=8, batch_size=64, progress=False
    )
    tr = Trainer(cfg).fit(small_sample)
    # below log(2B - 1), the loss of a collapsed model (every projection equal)
    assert tr.history_[-1]["train_loss"] < np.log(2 * 64 - 1)
    assert tr.metadata_["validation_projection_cosine"] < COLLAPSE_COSINE


def test_balanced_sampling_and_errors(tiny_config, toy, small_sample):
    tr = Trainer(tiny_config(sampling="balanced", epochs=1)).fit(toy)
    assert len(tr.history_) == 1
    # A batch size the class count does not divide: 31 of each class plus one more
    # of a class drawn per batch (the second paper's 8192 events over 13 classes).
    odd = Trainer(tiny_config(sampling="balanced", batch_size=63, epochs=1))
    odd.fit(toy)
    y = toy.labels[odd.splits_.train(0)]
    for batch in odd._batches(y, 0):
        assert batch.size == 63 and sorted(np.bincount(y[batch], minlength=4)[[0, 3]]) == [31, 32]
    with pytest.raises(ValueError, match="at least the number of classes"):
        Trainer(tiny_config(sampling="balanced", batch_size=3)).fit(small_sample)
    unlabelled = Events(toy.particles)
    with pytest.raises(ValueError, match="labels"):
        Trainer(tiny_config()).fit(unlabelled)
    with pytest.raises(RuntimeError, match=r"CUDA|GPU"):
        Trainer(tiny_config(device="cuda:99")).fit(toy)
    with pytest.raises(ValueError, match="method must be one of"):
        tiny_config(method="byol")
    with pytest.raises(ValueError, match="needs an augmentation"):
        tiny_config(method="simclr", augmentation=None)


def test_temperatures_and_presets():
    assert default_temperature("simclr", 4) == 0.9
    assert default_temperature("simclr", 64) == 0.3
    assert default_temperature("simclr", 2) == 0.9
    assert default_temperature("supcon", 16) == 0.1
    for name in PRESETS:
        cfg = TrainConfig.from_preset(name, latent_dim=8)
        assert cfg.method in ("simclr", "supcon", "vicreg_ce", "supcon_kl")
    c = TrainConfig.from_preset("simclr-mlp", latent_dim=16)
    assert (c.lr, c.batch_size, c.resolved_temperature, c.optimizer) == (0.8, 1024, 0.5, "lars")
    assert (
        TrainConfig.from_preset("vicreg-transformer", latent_dim=32).encoder_kwargs["n_heads"] == 16
    )
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig.from_preset("nope")


def test_same_label_partners():
    y = torch.tensor([0, 1, 0, 2, 1, 0, 1, 1])
    p = same_label_partners(y, torch.Generator().manual_seed(0))
    assert torch.equal(y[p], y)
    assert sorted(p.tolist()) == list(range(8))


def test_validation_loss_does_not_depend_on_the_order_of_the_events(tiny_config):
    # A file stored by process (Pythia writes one process after the other) gave
    # one-process validation batches: the SupCon validation loss then stayed flat (a batch
    # of positives only) while the model learnt, and early stopping read it.
    ev = generate_sample({"W": 400, "ttbar": 400}, seed=4)
    by_process = ev[np.argsort(ev.labels, kind="stable")]
    cfg = tiny_config(method="supcon", epochs=4, test_fraction=0.2)
    v_sorted = [h["val_loss"] for h in Trainer(cfg).fit(by_process).history_]
    v_shuffled = [h["val_loss"] for h in Trainer(cfg).fit(ev).history_]
    assert v_sorted[-1] < v_sorted[0] - 0.2  # was 4.14 -> 4.17
    assert abs(v_sorted[-1] - v_shuffled[-1]) < 0.15
