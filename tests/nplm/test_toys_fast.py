"""Faster toys: the 'average' preconditioner, float32 where it is accurate, the cached
reference system."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from contrastx.nplm import toys as toys_module
from contrastx.nplm.toys import NULL, SIGNAL, ToyConfig, ToyEngine


@pytest.fixture(scope="module")
def pools():
    rng = np.random.default_rng(2)
    return rng.normal(size=(20000, 4)), rng.normal(loc=1.0, scale=0.3, size=(2000, 4))


KW = dict(n_ref=8000, n_bkg=800, n_sig=40, M=80, seed=3)


def _run(bkg, sig, hyp, n=6, **kw):
    eng = ToyEngine(bkg, sig, config=ToyConfig(**{**KW, **kw}))
    blocks = list(eng.run(range(n), hypothesis=hyp))
    return eng, np.concatenate([b.t for b in blocks]), np.concatenate([b.n_iter for b in blocks])


@pytest.mark.parametrize("hyp", [NULL, SIGNAL])
def test_average_preconditioner_toys(pools, hyp):
    """Against the exact one-step solution (dense Cholesky of each toy's system): the
    default 'average' preconditioner within 1e-4 (measured 3e-6 and 1.2e-5) in about a
    third of the iterations of Falkon's (6-7 against 22-24), which is within 1e-3
    (measured 2e-4); pool and stream strategies agree."""
    bkg, sig = pools
    _, t_exact, _ = _run(bkg, sig, hyp, solver="exact")
    iters = {}
    for pc in ("average", "falkon"):
        for strategy in ("pool", "stream"):
            eng, t, it = _run(bkg, sig, hyp, preconditioner=pc, strategy=strategy)
            assert eng.strategy_ == strategy
            rel = 1e-4 if pc == "average" else 1e-3
            np.testing.assert_allclose(t, t_exact, rtol=rel)
            iters[pc, strategy] = it
        np.testing.assert_array_equal(iters[pc, "pool"], iters[pc, "stream"])
    assert 3 * iters["average", "pool"].max() <= iters["falkon", "pool"].min() + 2


def test_paper_mode_uses_the_solver_options(pools):
    """Paper mode's per-toy fit gets every solver setting (preconditioner, pc_epsilon)."""
    bkg, _ = pools
    kw = dict(n_ref=3000, n_bkg=300, M=40, mode="paper")
    _, t_avg, it_avg = _run(bkg, None, NULL, n=2, **kw)
    _, t_fal, it_fal = _run(bkg, None, NULL, n=2, preconditioner="falkon", **kw)
    assert (it_avg < it_fal).all()
    np.testing.assert_allclose(t_avg, t_fal, rtol=2e-3)
    _, t_eps, _ = _run(bkg, None, NULL, n=2, pc_epsilon=1e-6, **kw)
    assert not np.allclose(t_eps, t_avg, rtol=1e-3)  # a larger jitter is another model


def test_float32_toys_refused_where_inaccurate(pools):
    bkg, sig = pools
    eng = ToyEngine(bkg, sig, config=ToyConfig(**KW, dtype="float32"))
    with pytest.raises(ValueError, match=r"float32.*condition number.*pool_dtype='float32'"):
        eng.prepare()
    with pytest.raises(ValueError, match="condition number"):
        ToyEngine(bkg, config=ToyConfig(**KW, dtype="float32", mode="paper")).run([0]).__next__()


@pytest.mark.parametrize("strategy", ["pool", "stream"])
def test_float32_toys_accurate_where_accepted(pools, strategy):
    bkg, sig = pools
    kw = dict(sigma=0.3, M=40, strategy=strategy)
    _, t64, _ = _run(bkg, sig, SIGNAL, n=4, **kw)
    eng, t32, _ = _run(bkg, sig, SIGNAL, n=4, dtype="float32", **kw)
    assert eng._ref.dtype == torch.float32
    np.testing.assert_allclose(t32, t64, rtol=1e-4)


# ----------------------------------------------------------------- reference cache
CACHE_KW = dict(n_ref=6000, n_bkg=500, n_sig=30, M=60, seed=5)


def _cached(bkg, sig, cache, **kw):
    eng = ToyEngine(bkg, sig, config=ToyConfig(**{**CACHE_KW, **kw}, reference_cache=str(cache)))
    t = np.concatenate([b.t for b in eng.run(range(4), hypothesis=SIGNAL)])
    return eng, t


def _no_reference_pass(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the reference system was recomputed")

    monkeypatch.setattr(toys_module, "weighted_gram_rhs", fail)


def test_reference_cache_second_run_loads(pools, tmp_path, monkeypatch):
    bkg, sig = pools
    first, t1 = _cached(bkg, sig, tmp_path)
    assert not first.reference_cache_hit_ and first.reference_cache_path_.is_file()
    assert [p.name for p in tmp_path.iterdir()] == [first.reference_cache_path_.name]
    plain = ToyEngine(bkg, sig, config=ToyConfig(**CACHE_KW))
    t0 = np.concatenate([b.t for b in plain.run(range(4), hypothesis=SIGNAL)])
    np.testing.assert_array_equal(t1, t0)  # writing the cache changes nothing
    with monkeypatch.context() as mp:
        _no_reference_pass(mp)
        second, t2 = _cached(bkg, sig, tmp_path)
        # lambda and N(B) are not inputs of the cached terms: the same entry serves them.
        third, _ = _cached(bkg, sig, tmp_path, lam=1e-5, n_bkg=400.0)
    assert second.reference_cache_hit_ and third.reference_cache_hit_
    np.testing.assert_array_equal(t2, t1)
    # Other centres or another width: another entry. So does Falkon's preconditioner,
    # whose reference Gram has float64 products (the 'average' one's: float32).
    other, _ = _cached(bkg, sig, tmp_path, sigma=1.5)
    assert not other.reference_cache_hit_
    assert other.reference_cache_path_ != first.reference_cache_path_
    falkon, _ = _cached(bkg, sig, tmp_path, preconditioner="falkon")
    assert not falkon.reference_cache_hit_
    assert len(list(tmp_path.iterdir())) == 3


@pytest.mark.parametrize("damage", ["garbage", "truncated", "stale", "shape"])
def test_reference_cache_rebuilt_when_bad(pools, tmp_path, caplog, damage):
    bkg, sig = pools
    first, t1 = _cached(bkg, sig, tmp_path)
    path = first.reference_cache_path_
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a cache file")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        with np.load(path) as f:
            arrays = {k: np.array(f[k]) for k in f.files}
        if damage == "stale":
            key = json.loads(str(arrays["key"]))
            key["sigma"] += 1.0
            arrays["key"] = np.array(json.dumps(key, sort_keys=True))
        else:
            arrays["s_ref"] = arrays["s_ref"][:-1]
        np.savez(path, **arrays)
    with caplog.at_level(logging.WARNING, logger="contrastx.nplm.toys"):
        again, t2 = _cached(bkg, sig, tmp_path)
    assert not again.reference_cache_hit_
    assert "rebuilding" in caplog.text and str(path) in caplog.text
    np.testing.assert_array_equal(t2, t1)
    caplog.clear()
    third, t3 = _cached(bkg, sig, tmp_path)  # the rebuilt entry is whole again
    assert third.reference_cache_hit_ and "rebuilding" not in caplog.text
    np.testing.assert_array_equal(t3, t1)


def test_reference_cache_write_is_atomic(pools, tmp_path, monkeypatch):
    """A write that fails leaves neither a partial entry nor a temporary file."""
    bkg, sig = pools

    def broken(fh, **arrays):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(toys_module.np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        _cached(bkg, sig, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_reference_cache_not_in_results_key():
    cfg = ToyConfig(**CACHE_KW, reference_cache="/tmp/x")
    assert "reference_cache" not in cfg.result_settings()
    assert cfg.result_settings()["cg_tol"] == cfg.solver_options.resolved_cg_tol


def test_results_written_before_the_preconditioner_setting_resume(tmp_path):
    """A results file from before the 'preconditioner' setting (Falkon's, cg_tol Falkon's
    number) resumes with preconditioner='falkon' and is refused with the new default."""
    from contrastx.nplm import ToyResultsFile

    falkon = ToyConfig(**CACHE_KW, preconditioner="falkon")
    old_key = falkon.result_settings()
    del old_key["preconditioner"]
    path = tmp_path / "old.h5"
    ToyResultsFile(path, falkon.as_dict(), old_key).close()
    ToyResultsFile(path, falkon.as_dict(), falkon.result_settings()).close()
    new = ToyConfig(**CACHE_KW)
    with pytest.raises(ValueError, match=r"different settings \(cg_tol, preconditioner\)"):
        ToyResultsFile(path, new.as_dict(), new.result_settings())


def test_weighted_gram_rhs_float64_accumulation():
    """float32 tiles summed in float64 (accumulate): closer to the float64 result than a
    float32 sum over many tiles, and float64 outputs; float64 input is unchanged."""
    from contrastx.ops.nystrom import weighted_gram_rhs

    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    c = x[:30].clone()
    ones = torch.ones(x.shape[0], dtype=torch.float64)
    ref_g, ref_b = weighted_gram_rhs(x, c, 1.0, None, ones, tile_bytes=30 * 8 * 2 * 50)
    x32, c32, o32 = x.float(), c.float(), ones.float()
    kw = dict(tile_bytes=30 * 4 * 2 * 50)  # 50-row tiles: 400 float32 partial sums
    g32, b32 = weighted_gram_rhs(x32, c32, 1.0, None, o32, **kw)
    g64, b64 = weighted_gram_rhs(x32, c32, 1.0, None, o32, accumulate=torch.float64, **kw)
    assert g32.dtype == torch.float32 and g64.dtype == b64.dtype == torch.float64
    err32 = float((g32.double() - ref_g).abs().max())
    err64 = float((g64 - ref_g).abs().max())
    assert err64 < err32 / 5
    assert float((b64 - ref_b).abs().max()) < float((b32.double() - ref_b).abs().max())
    same = weighted_gram_rhs(
        x, c, 1.0, None, ones, tile_bytes=30 * 8 * 2 * 50, accumulate=torch.float64
    )
    assert torch.equal(same[0], ref_g) and torch.equal(same[1], ref_b)
    with pytest.raises(ValueError, match="accumulate"):
        weighted_gram_rhs(x, c, 1.0, None, ones, accumulate=torch.float32)


@pytest.mark.parametrize("strategy", ["pool", "stream"])
def test_setup_methods_agree(pools, strategy, tmp_path):
    """The blocked setup (T^-1 GEMMs, upper-triangular Gram) and the triangular-solve setup give the
    same t to rounding, and their reference-cache entries are distinct."""
    bkg, sig = pools
    cfg = ToyConfig(**KW, strategy=strategy, reference_cache=str(tmp_path))
    t = {}
    for method in ("solve", "blocked"):
        eng = ToyEngine(bkg, sig, config=cfg, setup_method=method)
        t[method] = np.concatenate([b.t for b in eng.run(range(4), hypothesis=SIGNAL)])
        assert not eng.reference_cache_hit_
    np.testing.assert_allclose(t["blocked"], t["solve"], rtol=1e-6)
    assert len(list(tmp_path.glob("nplm-reference-*.npz"))) == 2


def test_setup_method_checked(pools):
    bkg, sig = pools
    with pytest.raises(ValueError, match="setup_method must be 'blocked' or 'solve'; got 'x'"):
        ToyEngine(bkg, sig, config=ToyConfig(**KW), setup_method="x")
