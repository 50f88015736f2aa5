"""Model files: weights checksum, shape mismatches and unsafe files give one-line errors."""

import logging

import numpy as np
import pytest
import torch
from contrastx.embed.model import build_model
from contrastx.embed.model_file import load_model, save_model

CONFIG = {"kind": "embedding", "encoder": "mlp", "latent_dim": 4, "head": "projection"}


def _model(latent_dim=4):
    torch.manual_seed(0)
    return build_model({"encoder": "mlp", "latent_dim": latent_dim, "head": "projection"})


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


def test_round_trip_is_verified(tmp_path):
    model = _model()
    path = save_model(tmp_path / "m.pt", model, CONFIG)
    payload = torch.load(path, weights_only=True)
    assert len(payload["weights_sha256"]) == 64
    loaded = load_model(path)
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 50, (8, 19, 3)).astype(np.float32))
    np.testing.assert_array_equal(loaded.embed(x), model.eval().embed(x).detach().numpy())


def test_corrupted_weights_are_refused(tmp_path):
    model = _model()
    path = save_model(tmp_path / "m.pt", model, CONFIG)
    # overwrite a few bytes of one weight matrix in place inside the (uncompressed) zip
    weight = model.state_dict()["encoder.blocks.0.1.weight"]
    raw = bytearray(path.read_bytes())
    at = raw.find(weight.numpy().tobytes())
    assert at > 0
    raw[at + 40 : at + 44] = np.float32(1.8e3).tobytes()
    path.write_bytes(bytes(raw))
    # torch itself reads the corrupted file without complaint ...
    corrupted = torch.load(path, weights_only=True)["state_dict"]["encoder.blocks.0.1.weight"]
    assert not torch.equal(corrupted, weight)
    # ... contrastx refuses it
    with pytest.raises(ValueError, match="checksum") as err:
        load_model(path)
    assert str(path) in _one_line(err)


def test_file_without_checksum_loads_with_warning(tmp_path, caplog):
    path = save_model(tmp_path / "old.pt", _model(), CONFIG)
    payload = torch.load(path, weights_only=True)
    del payload["weights_sha256"]  # what contrastx wrote before checksums
    torch.save(payload, path)
    with caplog.at_level(logging.WARNING, logger="contrastx"):
        loaded = load_model(path)
    assert loaded.latent_dim == 4
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0].getMessage()
    assert "checksum" in warnings[0].getMessage()


def test_shape_mismatch_names_the_parameter(tmp_path):
    # weights of a D = 4 model under a config that describes D = 8
    path = save_model(tmp_path / "m.pt", _model(4), {**CONFIG, "latent_dim": 8})
    with pytest.raises(ValueError) as err:
        load_model(path)
    text = _one_line(err)
    assert str(path) in text and "size mismatch" not in text
    assert "'encoder.blocks.3.1.weight'" in text and "(4, 64)" in text and "(8, 64)" in text


def test_missing_parameter_is_named(tmp_path):
    path = save_model(tmp_path / "m.pt", _model(), CONFIG)
    payload = torch.load(path, weights_only=True)
    payload["model_config"] = payload["model_config"].replace('"projection"', "null")
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"head\.") as err:
        load_model(path)
    assert str(path) in _one_line(err)


class _Payload:
    """Not a tensor: torch.load(weights_only=True) refuses to unpickle it."""


def test_unsafe_model_file_is_refused_in_one_line(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "contrastx-model", "object": _Payload()}, path)
    with pytest.raises(ValueError, match="other than tensors") as err:
        load_model(path)
    assert str(path) in _one_line(err)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable contrastx model file") as err:
        load_model(tmp_path / "junk.pt")
    _one_line(err)


def test_embed_cli_names_a_corrupted_model(tmp_path, capsys):
    from contrastx.cli import embed as embed_cli
    from contrastx.events import write_events
    from contrastx.events.generators import generate_sample

    model = _model()
    path = save_model(tmp_path / "m.pt", model, CONFIG)
    raw = bytearray(path.read_bytes())
    at = raw.find(model.state_dict()["encoder.blocks.3.1.weight"].numpy().tobytes())
    raw[at] ^= 0x40
    path.write_bytes(bytes(raw))
    src = write_events(tmp_path / "ev.h5", generate_sample({"W": 20}, seed=0))
    rc = embed_cli.main(
        ["--model", str(path), "--events", str(src), "--out", str(tmp_path / "e.h5")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(path) in err[0] and "checksum" in err[0]


def test_check_state_dict_names_the_first_missing_or_unexpected_parameter():
    from contrastx.embed.model_file import check_state_dict

    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    good = module.state_dict()
    check_state_dict(module, good, "m.pt")
    missing = {k: v for k, v in good.items() if k != "0.bias" and k != "1.bias"}
    with pytest.raises(ValueError, match=r"^m\.pt: parameter '0\.bias' of the model its config "
                       r"describes is missing from the file \(and 1 more\)$"):  # fmt: skip
        check_state_dict(module, missing, "m.pt")
    extra = {**good, "2.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"^m\.pt: parameter '2\.weight' in the file is not part "
                       r"of the model its config describes$"):  # fmt: skip
        check_state_dict(module, extra, "m.pt")
    shaped = {**good, "1.bias": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"'1\.bias' has shape \(2,\) in the file but \(1,\)"):
        check_state_dict(module, shaped, "m.pt")
