"""contrastx-embed, -toys and -train refuse unusable event files with one line naming the file."""

import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from contrastx.cli import embed as embed_cli
from contrastx.cli import toys as toys_cli
from contrastx.cli import train as train_cli
from contrastx.embed import read_embedding
from contrastx.embed.model import build_model
from contrastx.embed.model_file import save_model
from contrastx.events import write_events
from contrastx.events.generators import generate_sample

TOYS_SMALL = ["--n", "2", "--n-ref", "3000", "--n-bkg", "300", "--M", "60", "--no-progress"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    config = {"encoder": "mlp", "latent_dim": 4, "head": "projection"}
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "m.pt"
    return save_model(path, build_model(config), {"kind": "embedding", **config})


@pytest.fixture(scope="module")
def sample():
    return generate_sample({"W": 300, "QCD": 200, "Ato4l": 100}, seed=1)


@pytest.fixture
def files(tmp_path, sample):
    """Event files: a good one, an empty one, one with a negative pT, one without Particles."""
    good = write_events(tmp_path / "good.h5", sample)
    empty = write_events(tmp_path / "empty.h5", sample[:0])
    negative = tmp_path / "negative.h5"
    write_events(negative, sample)
    with h5py.File(negative, "a") as f:
        f["Particles"][123, 9, 0] = -20.0  # the leading jet of event 123
    no_particles = tmp_path / "jets.h5"
    with h5py.File(no_particles, "w") as f:
        f["Jets"] = np.zeros((3, 4))
    corrupted = tmp_path / "corrupted.h5"
    corrupted.write_bytes(good.read_bytes()[:4000])
    return {
        "good": good,
        "empty": empty,
        "negative": negative,
        "no_particles": no_particles,
        "corrupted": corrupted,
    }


def error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith(f"{prog}: error: "), err
    return err


EXPECTED = {
    "empty": r"empty\.h5: the event file holds no events",
    "negative": r"negative\.h5:Particles has a negative pT \(first at event 123, slot 9 \(j1\)",
    "no_particles": r"jets\.h5: no dataset 'Particles'",
    "corrupted": r"corrupted\.h5: not a readable HDF5 .*file: truncated",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_embed_refuses(kind, files, model_path, tmp_path, capsys):
    out = tmp_path / "z.h5"
    rc = embed_cli.main(
        ["--model", str(model_path), "--events", str(files[kind]), "--out", str(out)]
    )
    assert rc == 2
    assert re.search(EXPECTED[kind], error_line(capsys, "contrastx-embed"))
    assert not out.exists()


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_toys_refuses(kind, files, tmp_path, capsys):
    out = tmp_path / "t.h5"
    rc = toys_cli.main(["--input", str(files[kind]), "--out", str(out), *TOYS_SMALL])
    assert rc == 2
    expected = EXPECTED[kind].replace("event file", "(event|input) file")
    assert re.search(expected, error_line(capsys, "contrastx-toys"))
    assert not out.exists()


def test_toys_refuses_an_empty_embedding(tmp_path, capsys):
    path = tmp_path / "emb.h5"
    with h5py.File(path, "w") as f:
        f["embedding"] = np.zeros((0, 4), np.float32)
        f["labels"] = np.zeros(0, np.int64)
    assert toys_cli.main(["--input", str(path), "--out", str(tmp_path / "t.h5"), *TOYS_SMALL]) == 2
    assert "emb.h5: the embedding file holds no events" in error_line(capsys, "contrastx-toys")


@pytest.mark.parametrize("kind", ["empty", "negative"])
def test_train_refuses(kind, files, tmp_path, capsys):
    args = ["--events", str(files[kind]), "--out", str(tmp_path / "m.pt"), "--no-progress"]
    assert train_cli.main(args) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(EXPECTED[kind], line), line


def test_embed_good_file_and_help(files, model_path, tmp_path, capsys):
    out = tmp_path / "z.h5"
    args = ["--model", str(model_path), "--events", str(files["good"]), "--out", str(out)]
    assert embed_cli.main([*args, "--batch-size", "128"]) == 0
    assert read_embedding(out).embedding.shape == (600, 4)
    assert embed_cli.main(args) == 2
    assert "z.h5 exists (use --overwrite)" in error_line(capsys, "contrastx-embed")
    with pytest.raises(SystemExit):
        embed_cli.main([*args, "--batch-size", "0"])
    assert "--batch-size: must be a positive integer" in capsys.readouterr().err
    parser = embed_cli.build_parser()
    helps = {a.option_strings[0]: a.help for a in parser._actions if a.option_strings}
    assert "embedding file to write" in helps["--out"]
    assert "events per forward pass" in helps["--batch-size"]
    assert "replace --out" in helps["--overwrite"]
    text = parser.format_help()
    assert "(default: None)" not in text


@pytest.mark.skipif(
    os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE",
    reason="HDF5 file locking is switched off",
)
def test_embed_output_held_by_another_run(files, model_path, tmp_path, capsys):
    out = tmp_path / "z.h5"
    args = ["--model", str(model_path), "--events", str(files["good"]), "--out", str(out)]
    assert embed_cli.main(args) == 0
    before = read_embedding(out).embedding
    hold = "import sys, h5py\nf = h5py.File(sys.argv[1], 'a')\nprint('open', flush=True)\n"
    hold += "sys.stdin.read()\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", hold, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout.readline().strip() == b"open"
        assert embed_cli.main([*args, "--overwrite"]) == 2
        line = error_line(capsys, "contrastx-embed")
        assert "z.h5: the embedding file is locked: another run is writing it" in line
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    np.testing.assert_array_equal(read_embedding(out).embedding, before)
