"""Several trainings per trained embedding: independent seeds, the median over trainings,
the toy error and the training spread reported separately, honest comparisons."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from contrastx.embed import read_embedding
from contrastx.nplm import read_toy_results
from contrastx.nplm import statistics as st
from contrastx.pipeline import Pipeline, load_config
from contrastx.pipeline.report import _comparisons
from contrastx.pipeline.results import (
    TrainedValue,
    combine_median_z,
    combine_values,
    compare_embeddings,
)


def _strict_json(path: Path) -> dict:
    def refuse(token: str) -> None:
        raise ValueError(f"{path} holds {token}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def _t(stage, file: str, group: str) -> np.ndarray:
    return np.asarray(read_toy_results(stage.dir / file)[group]["t"], dtype=np.float64)


def test_two_trainings_differ_and_the_spread_is_their_sample_std(tiny_toml: Path) -> None:
    cfg = load_config(tiny_toml)
    assert cfg.run.trainings == 2
    pipe = Pipeline(cfg, log=lambda s: None)
    pipe.run()
    out = cfg.out_dir
    name = "supcon-mlp-d2"

    # Each training is its own stage, with its own seed derived from run.seed.
    emb = [pipe.results[f"embed/{name}/training{i}"] for i in range(2)]
    seeds = [e.info["training_seed"] for e in emb]
    assert seeds == [cfg.run.training_seed(0), cfg.run.training_seed(1)]
    assert seeds[0] != seeds[1] and emb[0].key != emb[1].key
    z = [read_embedding(e.path("embedding")).embedding for e in emb]
    assert z[0].shape == z[1].shape and not np.allclose(z[0], z[1])
    # The deterministic baselines are built once.
    assert "embed/raw57" in pipe.results and "embed/raw57/training0" not in pipe.results

    res = _strict_json(out / "results.json")
    mz = res["embeddings"][name]["signals"]["Ato4l"]["0.1"]["median_z"]["chi2"]
    # The per-training values are each training's own median Z, from its own toys.
    toys = [pipe.results[f"toys/{name}/training{i}"] for i in range(2)]
    own = []
    for tr in toys:
        t0, t1 = _t(tr, "null.h5", "null"), _t(tr, "Ato4l-0.1.h5", "signal")
        own.append(st.median_z(t1, t0, method="chi2", dof=st.fit_chi2_dof(t0).dof).z)
    assert mz["values"] == pytest.approx(own, rel=1e-12)
    assert mz["values"][0] != mz["values"][1]
    # The spread is their sample standard deviation (ddof = 1); the value their median.
    assert mz["training_spread"] == pytest.approx(np.std(own, ddof=1), rel=1e-12)
    assert mz["training_spread"] == pytest.approx(abs(own[0] - own[1]) / math.sqrt(2))
    assert mz["value"] == pytest.approx(np.median(own))
    assert mz["n_trainings"] == 2 and mz["trained"] is True
    # The toy error is reported apart from the spread; the total is both in quadrature.
    assert mz["toy_err"] > 0
    assert mz["total_err"] == pytest.approx(math.hypot(mz["toy_err"], mz["training_spread"]))

    # The table shows value ± toy error ± spread, and the per-training values.
    table = (out / "table.md").read_text()
    text = f"{mz['value']:.2f} ± {mz['toy_err']:.2f} ± {mz['training_spread']:.2f}"
    assert f"| {name} | 2 | 2 | {text} |" in table
    assert f"| {name} | 2 | {own[0]:.2f}, {own[1]:.2f} |" in table
    rows = list(csv.DictReader(io.StringIO((out / "table.csv").read_text())))
    row = next(r for r in rows if r["embedding"] == name)
    assert float(row["training_spread"]) == pytest.approx(mz["training_spread"])
    assert [float(v) for v in row["per_training"].split(";")] == pytest.approx(own, rel=1e-5)

    # Linear evaluation: the same summary over the trainings.
    le = res["embeddings"][name]["linear_eval"]
    per = [e.info["linear_eval"]["mean"] for e in emb]
    assert le["values"] == pytest.approx(per) and per[0] != per[1]
    assert le["training_spread"] == pytest.approx(np.std(per, ddof=1))
    assert le["fold_err"] > 0

    # The baseline is built once; each run draws its own reference, centres and toys with
    # the seed of the trainings of the same index (paired), so it has a spread too.
    raw = res["embeddings"]["raw57"]
    assert raw["trained"] is False and raw["n_trainings"] == 2
    assert "embed/raw57" in pipe.results and "toys/raw57/draw1" in pipe.results
    draws = [pipe.results[f"toys/raw57/draw{i}"] for i in range(2)]
    assert [d.info["seed"] for d in draws] == [t.info["seed"] for t in toys] == seeds
    raw_z = []
    for tr in draws:
        t0, t1 = _t(tr, "null.h5", "null"), _t(tr, "Ato4l-0.1.h5", "signal")
        raw_z.append(st.median_z(t1, t0, method="chi2", dof=st.fit_chi2_dof(t0).dof).z)
    raw_mz = raw["signals"]["Ato4l"]["0.1"]["median_z"]["chi2"]
    assert raw_mz["values"] == pytest.approx(raw_z, rel=1e-12) and raw_z[0] != raw_z[1]
    assert raw_mz["training_spread"] == pytest.approx(np.std(raw_z, ddof=1), rel=1e-12)
    # One embedding, so its linear evaluation has no spread.
    assert raw["linear_eval"]["training_spread"] == 0.0
    # With 8 null toys the empirical 3-sigma power is unreachable: null, never NaN.
    assert raw["signals"]["Ato4l"]["0.1"]["power"]["empirical"][2]["power"] is None
    assert "NaN" not in (out / "results.json").read_text()
    # Every pair is compared, and the figures say what they mirror.
    pairs = res["effect"]["comparisons"]["Ato4l"]
    assert {(p["a"], p["b"]) for p in pairs} == {
        (name, "raw57"), (name, "leadpt6"), ("raw57", "leadpt6")
    }  # fmt: skip
    assert "Fig. III of Metzger et al." in res["figures"]["median_z_0.1"]["title"]


def test_report_headings_are_words_and_config_lists_used_keys_only(tiny_toml: Path) -> None:
    cfg = load_config(tiny_toml, overrides=["run.trainings=1"])
    Pipeline(cfg, log=lambda s: None).run()
    html = (cfg.out_dir / "report.html").read_text()
    headings = " | ".join(re.findall(r"<h[1-3]>(.*?)</h[1-3]>", html))
    for key in ("median_z", "power3", "linear_eval", "latent_map", "toys_", "z_err"):
        assert key not in headings, key
    assert "Median Z against D, 10 % injection" in headings
    conf = json.loads(re.search(r"<pre>(.*?)</pre>", html, re.S).group(1).replace("&quot;", '"'))
    assert conf["embeddings"][1] == {"kind": "raw", "name": "raw57"}
    assert conf["embeddings"][2] == {"kind": "leading_pt", "name": "leadpt6"}
    # One training: the spread is unknown, so no comparison with it is decided.
    res = _strict_json(cfg.out_dir / "results.json")
    mz = res["embeddings"]["supcon-mlp-d2"]["signals"]["Ato4l"]["0.1"]["median_z"]["chi2"]
    assert mz["training_spread"] is None and mz["n_trainings"] == 1
    assert "± n/a" in (cfg.out_dir / "table.md").read_text()
    verdicts = {(p["a"], p["b"]): p["verdict"] for p in res["effect"]["comparisons"]["Ato4l"]}
    assert verdicts[("supcon-mlp-d2", "raw57")] == "undecided"


# ----------------------------------------------------------------- unit level
def _toys(seed: int, shift: float, n0: int = 200, n1: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.chisquare(10, n0), rng.chisquare(10, n1) + shift


def test_one_training_is_exactly_median_z() -> None:
    t0, t1 = _toys(0, 6.0)
    tv, per = combine_median_z([t0], [t1], method="chi2", trained=False, seed=5)
    ref = st.median_z(t1, t0, method="chi2", dof=st.fit_chi2_dof(t0).dof, seed=5)
    assert tv.value == ref.z and tv.stat_err == ref.z_err and tv.spread == 0.0
    assert per[0] == ref
    tv1, _ = combine_median_z([t0], [t1], method="chi2", trained=True, seed=5)
    assert math.isnan(tv1.spread) and math.isnan(tv1.total_err)  # unknown, not zero
    # A deterministic embedding with two reference draws has a spread like any runs.
    t0b, t1b = _toys(1, 6.0)
    tv2, per2 = combine_median_z([t0, t0b], [t1, t1b], method="chi2", trained=False, seed=5)
    assert tv2.spread > 0
    assert tv2.spread == pytest.approx(np.std([m.z for m in per2], ddof=1))


def test_three_trainings_median_toy_error_and_spread() -> None:
    runs = [_toys(s, shift) for s, shift in ((1, 3.0), (2, 6.0), (3, 9.0))]
    t0s, t1s = [r[0] for r in runs], [r[1] for r in runs]
    tv, per = combine_median_z(t0s, t1s, method="chi2", trained=True, seed=0)
    z = [m.z for m in per]
    assert z[0] < z[1] < z[2]
    assert tv.value == z[1] and tv.values == tuple(z)
    assert tv.spread == pytest.approx(np.std(z, ddof=1))
    # The toy error of the median is of the size of one training's bootstrap error,
    # far below the spread of these deliberately different trainings.
    assert 0.3 * per[1].z_err < tv.stat_err < 3 * per[1].z_err < tv.spread
    assert tv.text() == f"{z[1]:.2f} ± {tv.stat_err:.2f} ± {tv.spread:.2f}"


def test_saturated_empirical_median_is_a_bound() -> None:
    limit = st.empirical_z_limit(200)
    far = [_toys(s, 200.0) for s in (1, 2)]  # every signal t beyond every null toy
    near = _toys(3, 1.0)
    t0s = [far[0][0], far[1][0], near[0]]
    t1s = [far[0][1], far[1][1], near[1]]
    tv, _ = combine_median_z(t0s, t1s, method="empirical", trained=True)
    assert tv.lower_bound and tv.value == pytest.approx(limit)
    assert tv.values_lower_bound == (True, True, False)
    assert tv.text() == f"> {limit:.2f}"
    assert tv.values_text().startswith(f"> {limit:.2f}, > {limit:.2f}, ")
    # One saturated training of three: the median is the middle one, a measurement.
    tv, _ = combine_median_z(
        [far[0][0], near[0], _toys(4, 2.0)[0]], [far[0][1], near[1], _toys(4, 2.0)[1]],
        method="empirical", trained=True,
    )  # fmt: skip
    assert not tv.lower_bound and tv.values_lower_bound == (True, False, False)


def _tv(value: float, toy: float, spread: float, *, bound: bool = False) -> TrainedValue:
    trained = spread != 0.0
    n = 3 if trained else 1
    return TrainedValue(value, toy, spread, (value,) * n, trained, bound, (bound,) * n)


def test_every_pair_is_compared_in_both_directions() -> None:
    z = {
        "supcon": _tv(1.0, 0.1, 0.2),  # trained
        "leadpt6": _tv(2.0, 0.1, 0.0),  # deterministic baseline
        "raw57": _tv(0.8, 0.1, 0.0),
    }
    comps = {(c["a"], c["b"]): c for c in compare_embeddings(z, threshold=2.0)}
    # A baseline beating the trained embedding is reported like the opposite.
    c = comps[("supcon", "leadpt6")]
    assert c["verdict"] == "b beats a" and c["winner"] == "leadpt6" and c["loser"] == "supcon"
    assert c["sigma"] == pytest.approx(math.sqrt(0.1**2 + 0.2**2 + 0.1**2))
    # 0.2 apart with sigma ~0.245: not significant, in either direction.
    assert comps[("supcon", "raw57")]["verdict"] == "no significant difference"
    assert comps[("leadpt6", "raw57")]["winner"] == "leadpt6"
    # Without the training spread the supcon vs raw57 difference would look significant.
    z["supcon"] = _tv(1.0, 0.05, 0.0)
    z["raw57"] = _tv(0.8, 0.05, 0.0)
    assert compare_embeddings(z)[1]["verdict"] == "a beats b"


def test_bounds_and_unknown_spreads_are_never_claimed() -> None:
    z = {"a": _tv(2.33, 0.1, 0.1, bound=True), "b": _tv(0.5, 0.1, 0.0)}
    (c,) = compare_embeddings(z)
    assert c["winner"] == "a"  # a bound above a measurement is a win
    z = {"a": _tv(0.5, 0.1, 0.0), "b": _tv(2.33, 0.1, 0.1, bound=True)}
    assert compare_embeddings(z)[0]["winner"] == "b"
    z = {"a": _tv(1.3, 0.1, 0.0, bound=True), "b": _tv(2.0, 0.1, 0.0)}  # the lower is a bound
    (c,) = compare_embeddings(z)
    assert c["verdict"] == "undecided" and c["winner"] is None
    z = {"a": _tv(2.33, 0.1, 0.1, bound=True), "b": _tv(2.33, 0.1, 0.1, bound=True)}
    assert compare_embeddings(z)[0]["verdict"] == "undecided"
    z = {"a": _tv(5.0, 0.1, float("nan")), "b": _tv(0.5, 0.1, 0.0)}  # one training
    (c,) = compare_embeddings(z)
    assert c["verdict"] == "undecided" and "run.trainings >= 2" in c["reason"]


def test_report_says_beats_only_for_significant_pairs() -> None:
    z = {"supcon": _tv(1.0, 0.1, 0.2), "leadpt6": _tv(2.0, 0.1, 0.0), "raw57": _tv(0.8, 0.1, 0.0)}
    result = {
        "effect": {
            "fraction": 0.05,
            "z_method": "chi2",
            "threshold_sigma": 2.0,
            "comparisons": {"Ato4l": compare_embeddings(z)},
        }
    }
    html = _comparisons(result)
    assert "<b>leadpt6</b> beats <b>supcon</b>" in html
    assert "<b>leadpt6</b> beats <b>raw57</b>" in html
    assert html.count(" beats <b>") == 2
    assert "no significant difference" in html and "supcon vs raw57" in html


def test_combine_values_takes_the_median_training_error() -> None:
    tv = combine_values([0.8, 0.6, 0.7], [0.01, 0.03, 0.02], trained=True)
    assert tv.value == 0.7 and tv.stat_err == 0.02
    assert tv.spread == pytest.approx(0.1)
    tv = combine_values([0.8, 0.6], [0.03, 0.04], trained=True)
    assert tv.value == pytest.approx(0.7) and tv.stat_err == pytest.approx(0.025)
    with pytest.raises(ValueError, match="as many errors"):
        combine_values([0.1], [], trained=True)
