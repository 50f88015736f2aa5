"""Training output (one log line per epoch off a terminal), checkpoint errors, warm-up scaling."""

import logging
import re

import pytest
import torch
from contrastx.cli import train as train_cli
from contrastx.embed.training import Trainer
from contrastx.events.generators import generate_sample


@pytest.fixture(scope="module")
def toy():
    return generate_sample({"W": 160, "ttbar": 160}, seed=1)


def _epoch_lines(caplog):
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "contrastx.embed.training" and r.getMessage().startswith("epoch ")
    ]


def test_not_a_terminal_one_line_per_epoch(tiny_config, toy, caplog, capsys):
    # under pytest stderr is not a terminal: no progress bar, one log line per epoch
    with caplog.at_level(logging.INFO, logger="contrastx"):
        Trainer(tiny_config(epochs=3, progress=True)).fit(toy)
    lines = _epoch_lines(caplog)
    assert len(lines) == 3, lines
    for i, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {i}/3: train loss "), line
        assert "val loss" in line and "elapsed" in line
    assert re.search(r"took [\d.]+ (s|min|h); .*about [\d.]+ (s|min|h) to go", lines[0])
    assert lines[-1].endswith("done")
    assert capsys.readouterr().err == ""  # no progress-bar output


def test_early_estimate_in_long_first_epoch(tiny_config, toy, caplog, monkeypatch):
    from contrastx.embed import training

    monkeypatch.setattr(training, "EARLY_ESTIMATE_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="contrastx"):
        Trainer(tiny_config(progress=True)).fit(toy)
    early = [r.getMessage() for r in caplog.records if r.getMessage().startswith("the first")]
    assert len(early) == 1 and "to go" in early[0], early


def test_terminal_shows_a_progress_bar_and_no_epoch_lines(
    tiny_config, toy, caplog, monkeypatch, capsys
):
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    with caplog.at_level(logging.INFO, logger="contrastx"):
        Trainer(tiny_config(epochs=1, progress=True)).fit(toy)
    assert _epoch_lines(caplog) == []
    assert "step" in capsys.readouterr().err  # the tqdm bar


def test_warmup_scales_with_the_run(tiny_config, toy, caplog):
    # 205 training events / 64 = 3 steps per epoch; 5 epochs = 15 steps
    with caplog.at_level(logging.INFO, logger="contrastx"):
        tr = Trainer(tiny_config(epochs=5, warmup_epochs=10)).fit(toy)
    notes = [r.getMessage() for r in caplog.records if "warm-up" in r.getMessage()]
    assert len(notes) == 1 and "first 1 of 5 epochs" in notes[0] and "10" in notes[0], notes
    # The shortened warm-up is a note, not a warning. (This 15-step run may warn that the
    # model has not trained enough, depending on the sample: not what is tested here.)
    assert not [
        r for r in caplog.records if r.levelno >= logging.WARNING and "warm-up" in r.getMessage()
    ]
    # warm-up over the first epoch (a fifth of the run), then cosine decay: the first epoch
    # ends at the full learning rate (a 10-epoch warm-up would leave it at 1/10 of it, and
    # the whole run below the peak)
    assert tr.history_[0]["lr"] == pytest.approx(0.5)
    assert tr.history_[-1]["lr"] < 0.5
    caplog.clear()
    # a warm-up within a fifth of the run is kept as set, without a note
    with caplog.at_level(logging.INFO, logger="contrastx"):
        tr = Trainer(tiny_config(epochs=10, warmup_epochs=2)).fit(toy)
    assert not [r for r in caplog.records if "warm-up" in r.getMessage()]
    assert tr.history_[0]["lr"] == pytest.approx(0.5 * 4 / 6)  # lr of step 4 of 6


def test_collapsed_or_undertrained_model_is_reported(tiny_config, toy, caplog):
    # two epochs of three steps: the validation projections all point the same way
    with caplog.at_level(logging.WARNING, logger="contrastx"):
        tr = Trainer(tiny_config()).fit(toy)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "almost the same direction" in warnings[0], warnings
    assert tr.metadata_["validation_projection_cosine"] > 0.99
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="contrastx"):
        tr = Trainer(tiny_config(epochs=10)).fit(toy)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert tr.metadata_["validation_projection_cosine"] < 0.99


class _Payload:
    """Not a tensor: torch.load(weights_only=True) refuses to unpickle it."""


def test_unsafe_checkpoint_is_refused_in_one_line(tiny_config, toy, tmp_path, capsys):
    ck = tmp_path / "ck.pt"
    torch.save({"epoch": 0, "object": _Payload()}, ck)
    with pytest.raises(ValueError, match="not a contrastx checkpoint") as err:
        Trainer(tiny_config(epochs=3)).fit(toy, checkpoint=ck, resume=True)
    assert str(ck) in str(err.value) and "\n" not in str(err.value)
    rc = train_cli.main(
        [
            *("--out", str(tmp_path / "m.pt"), "--checkpoint", str(ck), "--resume"),
            *("--n-events", "200", "--epochs", "1", "--batch-size", "64", "--no-progress"),
        ]
    )
    err_lines = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert rc == 2 and len(err_lines) == 1 and str(ck) in err_lines[0], err_lines
    assert "Traceback" not in err_lines[0]


def test_foreign_checkpoints_name_the_file(tiny_config, toy, tmp_path):
    ck = tmp_path / "ck.pt"
    torch.save({"weights": torch.zeros(3)}, ck)  # safe, but not a contrastx checkpoint
    with pytest.raises(ValueError, match="not a contrastx checkpoint") as err:
        Trainer(tiny_config(epochs=3)).fit(toy, checkpoint=ck, resume=True)
    assert str(ck) in str(err.value)
    ck.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="not a readable") as err:
        Trainer(tiny_config(epochs=3)).fit(toy, checkpoint=ck, resume=True)
    assert str(ck) in str(err.value) and "\n" not in str(err.value)


def test_own_checkpoint_resumes_from_the_cli(tmp_path, capsys):
    ck, out = tmp_path / "ck.pt", tmp_path / "m.pt"
    args = ["--out", str(out), "--checkpoint", str(ck), "--n-events", "200"]
    args += ["--epochs", "2", "--batch-size", "64", "--warmup-epochs", "0", "--no-progress"]
    assert train_cli.main(args) == 0
    assert train_cli.main([*args, "--resume", "--overwrite"]) == 0, capsys.readouterr().err


def test_train_cli_help_texts(capsys):
    with pytest.raises(SystemExit):
        train_cli.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--preset", "--method", "--epochs", "--lr", "--seed"):
        block = re.search(rf"^  {flag}\b.*?(?=^  -|\Z)", text, re.M | re.S).group(0)
        words = [w for w in block.split() if not w.startswith(("-", "{")) and not w.isupper()]
        assert len(words) >= 3, (flag, block)


def test_ctrl_c_prints_one_line(tmp_path, capsys, monkeypatch):
    def interrupted(self, events, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli.Trainer, "fit", interrupted)
    ck = tmp_path / "ck.pt"
    rc = train_cli.main(
        ["--out", str(tmp_path / "m.pt"), "--checkpoint", str(ck), "--n-events", "100"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and "interrupted" in err[-1] and str(ck) in err[-1] and "--resume" in err[-1]


def test_checkpoint_without_format_key_still_resumes(tiny_config, toy, tmp_path):
    ck = tmp_path / "ck.pt"
    cfg = tiny_config()
    first = Trainer(cfg).fit(toy, checkpoint=ck)
    payload = torch.load(ck, weights_only=True)
    assert payload.pop("format") == "contrastx-checkpoint"
    torch.save(payload, ck)  # as contrastx wrote checkpoints before the format key
    again = Trainer(cfg).fit(toy, checkpoint=ck, resume=True)
    assert again.history_ == first.history_
    for k, v in first.model_.state_dict().items():
        assert torch.equal(v, again.model_.state_dict()[k]), k


def test_checkpoint_from_before_a_new_setting_resumes_at_its_default(tiny_config, toy, tmp_path):
    import json

    ck = tmp_path / "ck.pt"
    cfg = tiny_config()
    first = Trainer(cfg).fit(toy, checkpoint=ck)
    payload = torch.load(ck, weights_only=True)
    saved = json.loads(payload["config"])
    del saved["restore_best"]  # a checkpoint written before the setting existed
    payload["config"] = json.dumps(saved)
    torch.save(payload, ck)
    again = Trainer(cfg).fit(toy, checkpoint=ck, resume=True)
    assert again.history_ == first.history_
    with pytest.raises(ValueError, match="different config"):
        Trainer(tiny_config(restore_best=True)).fit(toy, checkpoint=ck, resume=True)
