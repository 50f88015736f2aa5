"""NPLM solver: an independent dense solve, Falkon's reference outputs, validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from contrastx._native import cpu_available as native_cpu_available
from contrastx.nplm import NPLMFit, SolverOptions, falkon_cg, nplm_t, sigma_heuristic
from contrastx.nplm.options import AVERAGE_CG_TOL, DEFAULT_CG_TOL
from contrastx.nplm.solver import FLOAT32_MAX_CONDITION, check_float32, pc_epsilon_default
from contrastx.ops.selections import QuantizedRows, RowSelection
from scipy.linalg import eigh
from scipy.spatial.distance import cdist, pdist

LAM = 1e-6
REF20 = np.random.default_rng(0).random((20, 2))


def dense_one_step(data, ref, centers, sigma, lam, w, eps=1e-13):
    """Exact single Newton step from alpha = 0, dense float64, written independently.

    (1/N K_MN D K_NM + lam (K_MM + eps M I)) alpha = -(1/N) K_MN g, with
    D = 1/4 (data), w/4 (ref) and g = -1/2 (data), w/2 (ref); solved in the basis of
    the eigenvectors of K_MM + eps M I, where it is well conditioned.
    """
    x = np.vstack([data, ref])
    n, m = x.shape[0], centers.shape[0]
    knm = np.exp(-cdist(x, centers, "sqeuclidean") / (2 * sigma**2))
    kmm = np.exp(-cdist(centers, centers, "sqeuclidean") / (2 * sigma**2)) + eps * m * np.eye(m)
    is_data = np.arange(n) < data.shape[0]
    dd = np.where(is_data, 0.25, w / 4)
    g = np.where(is_data, -0.5, w / 2)
    evals, evecs = eigh(kmm)
    z = knm @ evecs / np.sqrt(evals)  # alpha = V diag(1/sqrt(e)) b
    s = z.T @ (z * dd[:, None]) / n + lam * np.eye(m)
    b = np.linalg.solve(s, -(z.T @ g) / n)
    f = z @ b
    return f[: data.shape[0]], f[data.shape[0] :]


@pytest.mark.parametrize("shift", [0.0, 2.0])
@pytest.mark.parametrize(
    ("solver", "preconditioner"), [("cg", "falkon"), ("cg", "average"), ("exact", "average")]
)
def test_matches_dense_one_step(make_blobs, shift, solver, preconditioner):
    data, ref = make_blobs(4000, 450, d=3, shift=shift, seed=3)
    w = 400 / 4000
    sigma = sigma_heuristic(ref)
    fit = NPLMFit(
        sigma, M=150, lam=LAM, solver=solver, preconditioner=preconditioner, random_state=1
    ).fit(data, ref, w)
    fd, fr = dense_one_step(data, ref, fit.centers_.numpy(), sigma, LAM, w)
    t_dense = nplm_t(fd, fr, w)
    # Falkon's truncated step: within ~1e-3; the 'average' preconditioner's tolerance a
    # hundred times tighter at the cost of a few iterations.
    assert fit.t_ == pytest.approx(t_dense, rel=1e-3 if preconditioner == "falkon" else 1e-5)
    assert np.abs(fit.f_data_.numpy() - fd).max() < 0.02
    if solver == "exact":
        assert np.abs(fit.f_ref_.numpy() - fr).max() < 1e-5
    elif preconditioner == "average":
        assert 1 <= fit.n_iter_[0] <= 10
        assert np.abs(fit.f_data_.numpy() - fd).max() < 1e-3
    else:
        assert 1 <= fit.n_iter_[0] < 200


def test_average_preconditioner_takes_fewer_iterations(make_blobs):
    """Same system, same exact step: the 'average' preconditioner needs a few iterations
    where Falkon's needs many, even at the 'average' default tolerance (about a thirtieth
    of Falkon's)."""
    data, ref = make_blobs(10000, 2000, d=3, shift=1.0, seed=4)
    kw = dict(sigma=sigma_heuristic(ref), M=100, lam=LAM, random_state=1)
    falkon = NPLMFit(**kw, preconditioner="falkon").fit(data, ref, 0.2)
    tight = NPLMFit(**kw, preconditioner="falkon", cg_tol=AVERAGE_CG_TOL).fit(data, ref, 0.2)
    avg = NPLMFit(**kw).fit(data, ref, 0.2)
    assert avg.options.preconditioner == "average"  # the default
    # Measured: 6 against 19 (Falkon's tolerance) and 33 (the same tolerance).
    assert 3 * avg.n_iter_[0] <= falkon.n_iter_[0] < tight.n_iter_[0]
    assert avg.t_ == pytest.approx(tight.t_, rel=1e-5)


def test_falkon_cases_cg(falkon_case):
    """preconditioner='falkon' reproduces Falkon's truncated step and iteration counts."""
    c = falkon_case
    p, r = c["params"], c["result"]
    fit = NPLMFit(
        p["sigma"],
        M=p["M"],
        lam=p["lam"],
        centers=c["centers"],
        center_labels=c["centers_y"],
        preconditioner="falkon",
    ).fit(c["data"], c["ref"], p["weight_w"])
    assert fit.options.resolved_cg_tol == DEFAULT_CG_TOL
    assert fit.t_ == pytest.approx(r["t_falkon"], rel=5e-3)
    f = np.concatenate([fit.f_data_.numpy(), fit.f_ref_.numpy()])
    f_falkon = np.concatenate([c["f_data"], c["f_ref"]])
    assert np.abs(f - f_falkon).max() < 0.02
    # Same preconditioner and stopping rule: the same number of CG iterations.
    assert abs(fit.n_iter_[0] - r["cg_iters"][0]) <= 1
    assert np.allclose(fit.centers_.numpy(), c["centers"])


def test_falkon_cases_average_preconditioner(falkon_case):
    """The default ('average') preconditioner: t within 0.5 % of Falkon's and within 1e-4
    of the exact one-step solution (measured 1.2e-5 and 6.4e-6) in a fifth of Falkon's CG
    iterations (4 and 4 against 20 and 22)."""
    c = falkon_case
    p, r = c["params"], c["result"]
    fit = NPLMFit(
        p["sigma"], M=p["M"], lam=p["lam"], centers=c["centers"], center_labels=c["centers_y"]
    ).fit(c["data"], c["ref"], p["weight_w"])
    assert fit.options.preconditioner == "average"
    assert fit.options.resolved_cg_tol == AVERAGE_CG_TOL
    assert fit.t_ == pytest.approx(r["t_falkon"], rel=5e-3)
    assert fit.t_ == pytest.approx(r["t_exact_one_newton_step"], rel=1e-4)
    f = np.concatenate([fit.f_data_.numpy(), fit.f_ref_.numpy()])
    assert np.abs(f - c["f_exact_1step"]).max() < 2e-3
    assert 1 <= fit.n_iter_[0] <= r["cg_iters"][0] // 3


def test_falkon_case_newton_exact(case_loader):
    c = case_loader("case1")
    p, r = c["params"], c["result"]
    newton = NPLMFit(
        p["sigma"],
        M=p["M"],
        centers=c["centers_idx"],
        penalty_list=[p["lam"]] * 2,
        solver="exact",
    ).fit(c["data"], c["ref"], p["weight_w"])
    # Step 1 is the exact one-step solution, step 2 the (near-)converged minimiser.
    assert newton.t_path_[0] == pytest.approx(r["t_exact_one_newton_step"], rel=1e-5)
    assert newton.t_ == pytest.approx(r["t_exact_newton_per_step"][-1], rel=1e-5)
    f = np.concatenate([newton.f_data_.numpy(), newton.f_ref_.numpy()])
    assert np.abs(f - c["f_exact_converged"]).max() < 1e-3
    assert newton.n_iter_ == [0, 0]
    assert newton.center_labels_.numpy().tolist() == c["centers_y"].astype(int).tolist()


def test_newton_cg_steps_converge(make_blobs):
    data, ref = make_blobs(3000, 400, d=2, shift=1.5, seed=5)
    w = 0.1
    kw = dict(M=100, random_state=0)
    cg = NPLMFit(1.0, penalty_list=[1e-4, 1e-6, 1e-6, 1e-6], iter_list=[5, 50, 50, 50], **kw)
    ex = NPLMFit(1.0, penalty_list=[1e-6] * 6, solver="exact", **kw)
    cg.fit(data, ref, w)
    ex.fit(data, ref, w)
    assert cg.t_ == pytest.approx(ex.t_, rel=2e-3)
    assert len(cg.n_iter_) == 4 and cg.n_iter_[0] <= 5


def test_sigma_heuristic_matches_paper_rule(make_blobs):
    _, ref = make_blobs(3000, 10, d=4, seed=2)
    expected = np.around(np.percentile(pdist(ref[:2000]), 90), 1)
    assert sigma_heuristic(ref) == expected
    raw = sigma_heuristic(ref, n_points=500, percentile=50, decimals=None)
    assert raw == pytest.approx(np.percentile(pdist(ref[:500]), 50))
    with pytest.raises(ValueError, match="percentile"):
        sigma_heuristic(ref, percentile=120)
    with pytest.raises(ValueError, match="at least 2"):
        sigma_heuristic(ref[:1])
    with pytest.raises(ValueError, match="width"):
        sigma_heuristic(np.zeros((10, 2)))


def test_sigma_heuristic_on_case(case_loader):
    c = case_loader("case1")
    assert sigma_heuristic(c["ref"]) == c["params"]["sigma"]


def test_predict_and_centres(make_blobs):
    data, ref = make_blobs(1500, 200, seed=7)
    fit = NPLMFit(1.2, M=60, random_state=4).fit(data, ref, 0.13)
    assert fit.alpha_.shape == (60,) and fit.centers_.shape == (60, 2)
    assert np.unique(fit.center_indices_).size == 60
    # Re-fitting with the drawn indices or the centre points reproduces alpha.
    again = NPLMFit(1.2, M=60, centers=fit.center_indices_).fit(data, ref, 0.13)
    assert torch.allclose(again.alpha_, fit.alpha_)
    pts = NPLMFit(1.2, centers=fit.centers_.numpy(), center_labels=fit.center_labels_.numpy()).fit(
        data, ref, 0.13
    )
    assert torch.allclose(pts.alpha_, fit.alpha_)
    assert torch.allclose(fit.predict(data), fit.f_data_)
    assert fit.predict(np.zeros((0, 2))).shape == (0,)
    assert fit.score(data, ref) == pytest.approx(fit.t_)
    # Seeded centre draw.
    same = NPLMFit(1.2, M=60, random_state=4).fit(data, ref, 0.13)
    assert np.array_equal(same.center_indices_, fit.center_indices_)


def test_float32_refused_where_inaccurate(case_loader):
    """NPLM's K_MM (condition ~1e13) defeats float32 kernel values: refused, with why.

    Before the refusal this fit returned t = 36.5 against Falkon's 46.7 (22 % low)."""
    c = case_loader("case1")
    p = c["params"]
    fit = NPLMFit(p["sigma"], M=p["M"], centers=c["centers"], dtype="float32")
    with pytest.raises(ValueError, match=r"float32.*condition number .*e\+1\d.*pool_dtype"):
        fit.fit(c["data"], c["ref"], p["weight_w"])


@pytest.mark.parametrize("solver", ["cg", "exact"])
def test_float32_accurate_where_accepted(make_blobs, solver):
    """A well-conditioned K_MM (narrow kernel): float32 kernels, float64 M x M algebra and
    sums across tiles give the float64 t to 1e-4 (the default jitter for either dtype)."""
    data, ref = make_blobs(3000, 300, shift=1.5, seed=9)
    kw = dict(sigma=0.4, M=50, random_state=0, solver=solver, tile_bytes=2**16)
    f64 = NPLMFit(**kw).fit(data, ref, 0.1)
    f32 = NPLMFit(**kw, dtype=torch.float32).fit(data, ref, 0.1)
    assert f32.centers_.dtype == torch.float32 and f32.f_data_.dtype == torch.float64
    assert f32.t_ == pytest.approx(f64.t_, rel=1e-4)
    assert pc_epsilon_default(torch.float32) == pc_epsilon_default(torch.float64) == 1e-13


def test_check_float32_bound():
    m = 30
    well = torch.eye(m, dtype=torch.float64)
    assert check_float32(well, 1e-13, 1.0) == pytest.approx(1.0)
    x = torch.linspace(0, 1, m, dtype=torch.float64)[:, None]
    ill = torch.exp(-((x - x.T) ** 2) / (2 * 0.5**2))  # condition ~1e17 without jitter
    with pytest.raises(ValueError, match="condition number"):
        check_float32(ill, 1e-13, 0.5)
    assert check_float32(ill, 1e-3, 0.5) <= FLOAT32_MAX_CONDITION  # a large jitter: accepted


def test_nplm_t_formula():
    fd = np.array([0.5, -0.2, 1.0])
    fr = np.array([0.1, -0.3])
    w = 0.25
    expected = 2 * (w * ((1 - np.exp(0.1)) + (1 - np.exp(-0.3))) + 1.3)
    assert nplm_t(fd, fr, w) == pytest.approx(expected)
    assert nplm_t(torch.tensor(fd), torch.tensor(fr), w) == pytest.approx(expected)
    with pytest.raises(ValueError, match="weight"):
        nplm_t(fd, fr, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        nplm_t([np.nan], fr, w)


@pytest.mark.parametrize(
    ("kwargs", "data", "ref", "w", "match"),
    [
        ({"sigma": 0.0}, np.ones((5, 2)), REF20, 0.1, "sigma"),
        ({"sigma": -1.0}, np.ones((5, 2)), REF20, 0.1, "sigma"),
        ({"sigma": float("nan")}, np.ones((5, 2)), REF20, 0.1, "sigma"),
        ({}, np.ones((5, 3)), REF20, 0.1, "features"),
        ({}, np.ones(5), REF20, 0.1, "2-D"),
        ({}, np.zeros((0, 2)), REF20, 0.1, "empty"),
        ({}, np.full((5, 2), np.nan), REF20, 0.1, "NaN"),
        ({}, np.ones((5, 2)), REF20, -0.1, "weight"),
        ({"M": 100}, np.ones((5, 2)), REF20, 0.1, "M must be"),
        ({"device": "cuda:7"}, np.ones((5, 2)), REF20, 0.1, "CUDA device"),
        ({"device": "tpu"}, np.ones((5, 2)), REF20, 0.1, "device"),
        ({"solver": "lu"}, np.ones((5, 2)), REF20, 0.1, "solver"),
        ({"penalty_list": [1e-6, 0]}, np.ones((5, 2)), REF20, 0.1, "penalt"),
        ({"centers": [0, 0, 1]}, np.ones((5, 2)), REF20, 0.1, "distinct"),
    ],
)
def test_bad_input(kwargs, data, ref, w, match):
    params = {"sigma": 1.0, "M": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        NPLMFit(**params).fit(data, ref, w)


def test_predict_before_fit():
    with pytest.raises(RuntimeError, match="not fitted"):
        NPLMFit(1.0).predict(np.ones((3, 2)))


def test_settings_come_from_solver_options(make_blobs):
    """Keywords only replace SolverOptions values; the defaults live in SolverOptions alone."""
    assert NPLMFit().options == SolverOptions()
    opts = SolverOptions(M=40, lam=1e-5, sigma=0.5, solver="exact", dtype="float32")
    kw = NPLMFit(0.5, M=40, lam=1e-5, solver="exact", dtype=torch.float32)
    assert kw.options == opts
    assert NPLMFit(options=opts, M=50).options == dataclasses.replace(opts, M=50)
    assert NPLMFit(preconditioner="falkon").options.preconditioner == "falkon"
    data, ref = make_blobs(800, 100, seed=2)
    a = NPLMFit(options=opts, random_state=0).fit(data, ref, 0.1)
    b = NPLMFit(0.5, M=40, lam=1e-5, solver="exact", dtype=torch.float32, random_state=0)
    assert a.t_ == b.fit(data, ref, 0.1).t_
    assert a.centers_.dtype == torch.float32 and a.n_iter_ == [0]


def test_resolved_cg_tol():
    assert SolverOptions().resolved_cg_tol == AVERAGE_CG_TOL == 1e-5 < DEFAULT_CG_TOL / 30
    assert SolverOptions(preconditioner="falkon").resolved_cg_tol == DEFAULT_CG_TOL
    assert SolverOptions(cg_tol=1e-3).resolved_cg_tol == 1e-3
    with pytest.raises(ValueError, match=r"nplm\.preconditioner must be one of"):
        SolverOptions(preconditioner="jacobi")


def test_unset_sigma_is_the_heuristic_on_the_reference(make_blobs):
    data, ref = make_blobs(800, 100, seed=5)
    fit = NPLMFit(M=30, random_state=0).fit(data, ref, 0.1)
    assert fit.sigma_ == sigma_heuristic(ref)
    same = NPLMFit(sigma_heuristic(ref), M=30, random_state=0).fit(data, ref, 0.1)
    assert fit.t_ == same.t_


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"M": 50.7}, r"nplm\.M must be an integer; got 50\.7"),
        ({"lam": "1e-6"}, r"nplm\.lam must be a number; got '1e-6'"),
        ({"cg_max_iter": 0}, r"nplm\.cg_max_iter must be >= 1"),
        ({"dtype": torch.float16}, r"nplm\.dtype must be one of 'float64', 'float32'"),
        ({"options": {"M": 3}}, r"options must be a SolverOptions"),
    ],
)
def test_bad_settings_name_the_key(kwargs, match):
    with pytest.raises(TypeError, match=match):  # OptionsError is a TypeError and ValueError
        NPLMFit(1.0, **kwargs)


def test_falkon_cg_compact_matches_masked():
    """The compacting CG (mmv on active systems only) does the same arithmetic."""
    g = torch.Generator().manual_seed(0)
    b, m = 6, 30
    a = torch.randn(b, m, m, generator=g, dtype=torch.float64)
    mats = a @ a.transpose(1, 2) / m + torch.logspace(-4, 0, b, dtype=torch.float64)[
        :, None, None
    ] * torch.eye(m, dtype=torch.float64)
    rhs = torch.randn(b, m, generator=g, dtype=torch.float64)
    calls = []

    def full(p):
        return torch.bmm(mats, p[..., None])[..., 0]

    def active(p, idx):
        calls.append(idx.numel())
        return torch.bmm(mats[idx], p[..., None])[..., 0]

    x0, n0 = falkon_cg(full, rhs, tol=1e-6, max_iter=200, full_gradient_every=7)
    x1, n1 = falkon_cg(active, rhs, tol=1e-6, max_iter=200, full_gradient_every=7, compact=True)
    assert torch.equal(n0, n1) and len(set(n0.tolist())) > 1
    torch.testing.assert_close(x1, x0, rtol=1e-12, atol=1e-12)
    assert min(calls) < b  # finished systems were dropped


def test_pooled_step_on_falkon_case(case_loader):
    """The pooled (matrix-free data term) step reproduces Falkon on its signal case.

    float64 storage of the whitened data, dense torch GEMMs or the native row-selection
    kernel: Falkon's CG iteration count and t (measured 3e-6 relative; case1: 6e-7). float32
    storage with the native kernel (float64 arithmetic): the same (22 and 20 iterations, t
    within 4e-9 of float64; case1 5e-8). float32 storage with float32 GEMMs (torch): the rounded
    products slow the CG by a few iterations (26 vs 22; case1 21 vs 20), which moves t by
    1.6e-4 (case1 6e-5), less than Falkon's own distance to the exact step (1.7e-4; case1
    4.8e-4); so do the native kernel's float32 products (arithmetic="float32": 24 vs 22
    iterations, t moved by 4.7e-5; case1 21 vs 20, 4.9e-5), which is why the toys keep float64
    arithmetic with Falkon's preconditioner.
    """
    from contrastx.nplm import FalkonPreconditioner, pooled_newton_step
    from contrastx.ops.nystrom import gaussian_kernel_tile, weighted_gram_rhs, whitened_features

    c = case_loader("case2")
    p, r = c["params"], c["result"]
    w, sigma = p["weight_w"], p["sigma"]
    centers = torch.from_numpy(c["centers"])
    ref, data = torch.from_numpy(c["ref"]), torch.from_numpy(c["data"])
    kmm = gaussian_kernel_tile(centers, centers, sigma)
    pc = FalkonPreconditioner(0.5 * (kmm + kmm.T), 1e-13)
    s_ref, g_ref = weighted_gram_rhs(
        ref, centers, sigma, None, torch.ones(ref.shape[0], dtype=torch.float64), whiten=pc.T
    )
    curv = torch.where(torch.from_numpy(c["centers_y"]) == 1, 0.25, 0.25 * w).double()
    n_tot = torch.tensor([float(ref.shape[0] + data.shape[0])], dtype=torch.float64)
    sel = RowSelection.from_lists([np.arange(data.shape[0])], data.shape[0])
    # Float64 arithmetic: float64 storage (both backends), float32 storage (native kernel).
    exact = [(torch.float64, "torch")]
    if native_cpu_available():
        exact += [(torch.float64, "native"), (torch.float32, "native")]
    t = {}
    slower = [(torch.float32, "torch")]
    if native_cpu_available():
        slower += [(torch.float32, "float32")]
    for dt, backend in [*exact, *slower]:
        z = whitened_features(data, centers, sigma, pc.T, out_dtype=dt)
        kw = {"backend": "native", "arithmetic": "float32"} if backend == "float32" else {}
        beta, n_iter, sum_f = pooled_newton_step(
            s_ref, g_ref, w, [(z, sel)], n_tot, pc.twt(curv), p["lam"], **{"backend": backend, **kw}
        )
        alpha = pc.inv_t(beta)[0]
        f_ref = gaussian_kernel_tile(ref, centers, sigma) @ alpha
        t[dt, backend] = nplm_t(np.zeros(0), f_ref, w) + 2.0 * float(sum_f[0])
        if (dt, backend) in exact:
            assert abs(int(n_iter[0]) - r["cg_iters"][0]) <= 1
            assert t[dt, backend] == pytest.approx(r["t_falkon"], rel=1e-4)
            # Rounding of the (thread-count dependent) setup and dense products, amplified
            # by the conditioning: ~1e-8 between backends on this case.
            assert t[dt, backend] == pytest.approx(t[torch.float64, "torch"], rel=5e-8)
        else:
            assert r["cg_iters"][0] <= int(n_iter[0]) <= r["cg_iters"][0] + 8
            assert t[dt, backend] == pytest.approx(t[torch.float64, "torch"], rel=1e-3)


@pytest.mark.parametrize("case", ["case1", "case2"])
def test_pooled_step_average_on_falkon_cases(case_loader, case):
    """The toys' pooled step with the 'average' preconditioner (reference term scaled by
    c = 1 + N_D / (w N_R)) on the Falkon cases: t within 1e-4 of the exact one-step
    solution and 0.5 % of Falkon, in at most a third of Falkon's iterations. The toys'
    reduced-precision pools with the native kernel's float32 arithmetic: float32 storage
    within 1e-6 of float64 storage (measured 1.4e-7 and 2.7e-8), 16-bit storage within 1e-4
    of the exact step (measured 6.3e-5 and 1.2e-5), the same iteration counts."""
    from contrastx.nplm import FalkonPreconditioner, pooled_newton_step
    from contrastx.nplm.solver import average_curvature_factor
    from contrastx.ops.nystrom import gaussian_kernel_tile, weighted_gram_rhs, whitened_features

    c = case_loader(case)
    p, r = c["params"], c["result"]
    w, sigma = p["weight_w"], p["sigma"]
    centers = torch.from_numpy(c["centers"])
    ref, data = torch.from_numpy(c["ref"]), torch.from_numpy(c["data"])
    kmm = gaussian_kernel_tile(centers, centers, sigma)
    pc = FalkonPreconditioner(0.5 * (kmm + kmm.T), 1e-13)
    s_ref, g_ref = weighted_gram_rhs(
        ref, centers, sigma, None, torch.ones(ref.shape[0], dtype=torch.float64), whiten=pc.T
    )
    n_d, n_r = data.shape[0], ref.shape[0]
    n_tot = torch.tensor([float(n_r + n_d)], dtype=torch.float64)
    sel = RowSelection.from_lists([np.arange(n_d)], n_d)
    z = whitened_features(data, centers, sigma, pc.T)

    def step(zp, **kw):
        beta, n_iter, sum_f = pooled_newton_step(
            s_ref,
            g_ref,
            w,
            [(zp, sel)],
            n_tot,
            0.25 * w * s_ref,
            p["lam"],
            cg_tol=AVERAGE_CG_TOL,
            precond_points=n_tot / average_curvature_factor(n_d, n_r, w),
            **kw,
        )
        f_ref = gaussian_kernel_tile(ref, centers, sigma) @ pc.inv_t(beta)[0]
        return nplm_t(np.zeros(0), f_ref, w) + 2.0 * float(sum_f[0]), int(n_iter[0])

    t, n_iter = step(z)
    assert t == pytest.approx(r["t_exact_one_newton_step"], rel=1e-4)
    assert t == pytest.approx(r["t_falkon"], rel=5e-3)
    assert 1 <= n_iter <= r["cg_iters"][0] // 3
    if native_cpu_available():
        t32, n32 = step(z.float(), backend="native", arithmetic="float32")
        assert t32 == pytest.approx(t, rel=1e-6) and n32 == n_iter
        q = QuantizedRows.quantize(z, torch.sqrt(torch.diagonal(s_ref) / n_r))
        t16, n16 = step(q, backend="native", arithmetic="float32")
        assert t16 == pytest.approx(r["t_exact_one_newton_step"], rel=1e-4) and n16 == n_iter
    with pytest.raises(ValueError, match="precond_points"):
        pooled_newton_step(
            s_ref, g_ref, w, [(z, sel)], n_tot, s_ref, p["lam"], precond_points=n_tot[[0, 0]]
        )
