import numpy as np
from contrastx.cli import embed as embed_cli
from contrastx.cli import train as train_cli
from contrastx.embed import load_model, read_embedding
from contrastx.events import write_events
from contrastx.events.generators import generate_sample


def test_train_then_embed(tmp_path, capsys):
    ev = generate_sample({"W": 120, "QCD": 80, "Z": 60, "ttbar": 60, "Ato4l": 40}, seed=3)
    src = write_events(tmp_path / "ev.h5", ev)
    model = tmp_path / "m.pt"
    rc = train_cli.main(
        [
            "--events",
            str(src),
            "--out",
            str(model),
            "--latent-dim",
            "4",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--warmup-epochs",
            "0",
            "--no-progress",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    loaded = load_model(model)
    assert loaded.class_names == ["W", "QCD", "Z", "ttbar"]  # signals excluded by default
    assert loaded.train_config["lr"] == 1.2  # supcon-mlp preset
    out = tmp_path / "emb.h5"
    assert embed_cli.main(["--model", str(model), "--events", str(src), "--out", str(out)]) == 0
    d = read_embedding(out)
    assert d.embedding.shape == (len(ev), 4) and d.embedding.dtype == np.float32
    np.testing.assert_array_equal(d.labels, ev.labels)
    assert d.process_names == ev.process_names and d.source_file == str(src)
    assert d.model_config["train_config"]["method"] == "supcon"
    np.testing.assert_array_equal(d.embedding, loaded.embed(ev))
    # refuses to overwrite; clear errors
    assert embed_cli.main(["--model", str(model), "--events", str(src), "--out", str(out)]) == 2
    assert (
        train_cli.main(
            [
                "--events",
                str(tmp_path / "missing.h5"),
                "--out",
                str(tmp_path / "x.pt"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "not found" in capsys.readouterr().err
    assert (
        train_cli.main(
            [
                "--gpu",
                "7",
                "--out",
                str(tmp_path / "y.pt"),
                "--epochs",
                "1",
                "--n-events",
                "200",
                "--no-progress",
            ]
        )
        == 2
    )
    assert "CUDA" in capsys.readouterr().err


def test_train_default_generator_sample(tmp_path):
    out = tmp_path / "d.pt"
    rc = train_cli.main(
        [
            "--out",
            str(out),
            "--n-events",
            "400",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--preset",
            "simclr-mlp",
            "--latent-dim",
            "2",
            "--no-progress",
        ]
    )
    assert rc == 0 and load_model(out).latent_dim == 2
