"""Study config: layering, presets, and clear errors for bad keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from contrastx.options import OptionsError, parse_override
from contrastx.pipeline import load_config
from contrastx.pipeline.config import PRESETS, StudyConfig, config_hash


def test_defaults_have_raw_leading_pt_vae_and_a_contrastive_embedding() -> None:
    cfg = load_config()
    kinds = [e.kind for e in cfg.embeddings]
    assert {"raw", "leading_pt", "vae", "contrastive"} <= set(kinds)
    # N(S)/sqrt(N(B)) at N(B) = 2e3 and 3.5 % matches the paper's 0.5 % at 1e5
    assert cfg.nplm.fractions == (0.01, 0.03, 0.05) and cfg.results.table_fraction == 0.05
    assert {e.dimension for e in cfg.embeddings if e.kind != "contrastive"} == {57, 6}


def test_paper_preset_sizes() -> None:
    cfg = load_config(preset="paper")
    assert cfg.nplm.n_ref == 1_000_000 and cfg.nplm.n_bkg == 100_000
    assert cfg.nplm.n_toys == 250 and cfg.nplm.M == 1000
    assert cfg.nplm.fractions == (0.001, 0.005, 0.01) and cfg.results.table_fraction == 0.005
    dims = {e.latent_dim for e in cfg.embeddings if e.kind == "contrastive"}
    assert dims == {2, 4, 8, 16, 32}
    assert cfg.run.device == "cuda"
    assert "paper" in PRESETS


def test_pythia_preset_studies_a_file_in_the_adc2021_cocktail() -> None:
    from contrastx.events import ADC2021_MIXTURE

    with pytest.raises(OptionsError, match=r"preset 'pythia' needs events\.background_file"):
        load_config(preset="pythia")
    cfg = load_config(preset="pythia", overrides=['events.background_file="pythia.h5"'])
    assert cfg.events.background_fractions == ADC2021_MIXTURE
    # N(S)/sqrt(N(B)) of the paper's 0.1, 0.5, 1 % at N(B) = 1e5, here at 2e3
    assert cfg.nplm.n_bkg == 2000 and cfg.nplm.fractions == (0.007, 0.035, 0.07)
    assert cfg.results.table_fraction == 0.035 and cfg.run.trainings >= 3
    kinds = sorted(e.kind for e in cfg.embeddings)
    assert kinds == ["contrastive", "contrastive", "leading_pt", "raw", "vae"]


def test_file_then_overrides(tiny_toml: Path) -> None:
    cfg = load_config(tiny_toml, overrides=["nplm.n_toys=12", "run.out_dir=elsewhere"])
    assert cfg.nplm.n_toys == 12
    assert cfg.run.out_dir == "elsewhere"
    assert [e.name for e in cfg.embeddings] == ["supcon-mlp-d2", "raw57", "leadpt6"]
    assert StudyConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[nplm]\nn_toyz = 3\n", "nplm.n_toyz"),
        ("[runn]\nseed = 1\n", "runn"),
        ('[[embeddings]]\nkind = "raw"\ndim = 3\n', "embeddings[0].dim"),
        ('[[embeddings]]\nkind = "contrastive"\ntrain = {lrr = 1.0}\n', "embeddings[0].train.lrr"),
        ("[nplm]\nseed = 3\n", "nplm.seed cannot be set here: the toys' seed is run.seed"),
    ],
)
def test_unknown_keys_are_errors_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_config(p)


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    p = tmp_path / "broken.toml"
    p.write_text("[nplm\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_config(p)


def test_invalid_values() -> None:
    with pytest.raises(ValueError, match="table_fraction"):
        load_config(overrides=["results.table_fraction=0.3"])
    with pytest.raises(ValueError, match="unknown preset"):
        load_config(preset="huge")
    with pytest.raises(ValueError, match="kind"):
        load_config(overrides=['embeddings=[{kind = "pca"}]'])


def test_override_parsing_and_hash() -> None:
    assert parse_override("nplm.fractions=[0.01, 0.02]") == (["nplm", "fractions"], [0.01, 0.02])
    assert parse_override("run.out_dir=some/dir") == (["run", "out_dir"], "some/dir")
    with pytest.raises(ValueError, match=r"section\.key=value"):
        parse_override("nplm.n_toys")
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_example_configs_load() -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    assert load_config(root / "default.toml").preset == "default"
    assert load_config(root / "paper.toml").nplm.n_ref == 1_000_000


# Each value below was silently coerced (or failed without naming the key) before the
# sections became options classes: M = 50.7 ran with M = 50, n_toys = 20.9 with 20 toys,
# lam = "1e-6" became a float, M = "fifty" failed with "invalid literal for int()".
def _load_nplm(tmp_path: Path, line: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(f"[nplm]\n{line}\n")
    load_config(p)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("M = 50.7", r"nplm\.M must be an integer; got 50\.7"),
        ("n_toys = 20.9", r"nplm\.n_toys must be an integer; got 20\.9"),
        ('lam = "1e-6"', r"nplm\.lam must be a number; got '1e-6' \(str\)"),
        ('M = "fifty"', r"nplm\.M must be an integer; got 'fifty'"),
    ],
    ids=["fractional-integer", "fractional-toy-count", "number-as-string", "word-for-integer"],
)
def test_wrong_toml_type_is_an_error_naming_the_key(tmp_path: Path, line: str, match: str) -> None:
    with pytest.raises(OptionsError, match=match):
        _load_nplm(tmp_path, line)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("nplm.M=50.7", r"nplm\.M must be an integer"),
        ("nplm.standardize=1", r"nplm\.standardize must be true or false"),
        ("nplm.n_ref=true", r"nplm\.n_ref must be an integer"),
        ("nplm.fractions=[0.01, 2]", r"nplm\.fractions\[1\]|nplm\.fractions must be < 1"),
        ("nplm.solver='lu'", r"nplm\.solver must be one of 'cg', 'exact'"),
        ("run.seed='0'", r"run\.seed must be an integer"),
        ("splits.n_folds=2.5", r"splits\.n_folds must be an integer"),
        ("events.n_signal=-1", r"events\.n_signal must be >= 0"),
        ("results.latent_events=1e400", r"results\.latent_events must be an integer"),
        (
            "embeddings=[{kind = 'raw', epochs = 1.5}]",
            r"embeddings\[0\]\.epochs must be an int",
        ),
    ],
)
def test_every_section_is_type_checked(override: str, match: str) -> None:
    with pytest.raises(OptionsError, match=match):
        load_config(overrides=[override])


def test_nplm_takes_the_engine_settings_once() -> None:
    """[nplm] takes the toy engine's own keys (not re-declared) with the study's defaults."""
    from contrastx.nplm import SolverOptions, ToyOptions

    cfg = load_config(overrides=["nplm.cg_max_iter=7", "nplm.strategy='stream'"])
    assert isinstance(cfg.nplm.toys, ToyOptions)
    assert cfg.nplm.toys.solver_options == SolverOptions(M=300, cg_max_iter=7)
    assert cfg.nplm.strategy == "stream" and cfg.nplm.n_ref == 20_000
    assert StudyConfig.from_dict(cfg.to_dict()) == cfg
    assert "seed" not in cfg.to_dict()["nplm"]


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("embeddings=[{kind = 'raw', epochs = 3}]", r"embeddings\[0\]\.epochs = 3 is not used"),
        ("embeddings=[{kind = 'leading_pt', preset = 'simclr-mlp'}]", r"\.preset = 'simclr-mlp'"),
        (
            "embeddings=[{kind = 'vae', latent_dim = 8}]",
            r"embeddings\[0\]\.latent_dim = 8 is not used by kind 'vae' \(a VAE's latent size "
            r"is train\.n_latent",
        ),
    ],
)
def test_settings_an_embedding_kind_ignores_are_errors(override: str, match: str) -> None:
    # Before: accepted silently and shown in the report's configuration as if used.
    with pytest.raises(OptionsError, match=match):
        load_config(overrides=[override])


def test_config_lists_only_the_settings_each_embedding_uses() -> None:
    cfg = load_config()
    emb = {e["name"]: e for e in cfg.to_dict()["embeddings"]}
    assert emb["raw57"] == {"kind": "raw", "name": "raw57"}
    assert emb["leadpt6"] == {"kind": "leading_pt", "name": "leadpt6"}
    assert "latent_dim" not in emb["vae6"] and "preset" not in emb["vae6"]
    assert {"epochs", "n_train", "train"} <= set(emb["vae6"])
    assert {"preset", "latent_dim", "epochs"} <= set(emb["supcon-mlp-d4"])
    assert StudyConfig.from_dict(cfg.to_dict()) == cfg


def test_trainings_and_their_seeds() -> None:
    cfg = load_config()
    assert cfg.run.trainings == 3
    assert [e.trained for e in cfg.embeddings] == [
        e.kind in ("contrastive", "vae") for e in cfg.embeddings
    ]
    seeds = [cfg.run.training_seed(i) for i in range(3)]
    assert len(set(seeds)) == 3
    # Derived from run.seed alone: the same again, different for another master seed.
    assert seeds == [load_config().run.training_seed(i) for i in range(3)]
    other = load_config(overrides=["run.seed=1"]).run
    assert not set(seeds) & {other.training_seed(i) for i in range(3)}
    assert load_config(overrides=["run.trainings=5"]).run.training_seed(2) == seeds[2]
    with pytest.raises(OptionsError, match=r"run\.trainings must be >= 1"):
        load_config(overrides=["run.trainings=0"])
    with pytest.raises(ValueError, match="training index"):
        cfg.run.training_seed(-1)
