"""Signal-aware study figures (second paper Figs. 1, 4-8): panels, arrows, input checks."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from contrastx.plots import (
    plot_confusion_matrices,
    plot_injection_summary,
    plot_sic_vs_injection,
    save_figure,
)
from contrastx.plots.cathode import plot_projections
from contrastx.plots.signal_aware import CONFIGURATION_COLORS

KINDS = ("ID", "IP", "EP", "background-only")


def _gid_artists(ax, gid: str) -> list:
    return [a for a in ax.get_children() if a.get_gid() == gid]


def _curve(rng: np.random.Generator, scale: float, unresolved: tuple[int, ...] = ()) -> dict:
    inj = [0.0, 0.5, 1.0, 2.0, 3.0]
    mean = [float(1.0 + scale * r + rng.uniform(0, 0.2)) for r in inj]
    curve = {
        "injection": inj,
        "mean": mean,
        "instance_std": [float(v) for v in rng.uniform(0.05, 0.3, len(inj))],
        "ensemble_std": [float(v) for v in rng.uniform(0.02, 0.1, len(inj))],
        "resolved": [True] * len(inj),
        "bound": [None] * len(inj),
    }
    for i in unresolved:
        curve["resolved"][i] = False
        curve["mean"][i] = None
        curve["instance_std"][i] = None
        curve["ensemble_std"][i] = None
        curve["bound"][i] = 7.5 + i
    return curve


def _curves(unresolved_ep: tuple[int, ...] = (3, 4)) -> dict:
    rng = np.random.default_rng(16)
    out = {}
    # Deliberately not in canonical order: the figure orders the kinds itself.
    for kind, scale in (("background-only", 0.1), ("EP", 0.5), ("ID", 2.0), ("IP", 1.5)):
        out[kind] = {
            "0.1": _curve(rng, scale),
            "0.01": _curve(rng, 2 * scale, unresolved_ep if kind == "EP" else ()),
        }
    return out


def test_sic_vs_injection_panels_lines_bands_and_bounds(tmp_path: Path) -> None:
    curves = _curves()
    fig = plot_sic_vs_injection(curves, signal="X_hh")
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == [r"$\epsilon_B$ = 0.1", r"$\epsilon_B$ = 0.01"]
    for ax, wp in zip(fig.axes, ("0.1", "0.01")):
        for kind in KINDS:
            (line,) = _gid_artists(ax, f"sic:{kind}:{wp}")
            assert line.get_color() == CONFIGURATION_COLORS[kind]
            assert len(_gid_artists(ax, f"band:{kind}:{wp}")) == 1
            assert len(_gid_artists(ax, f"ensemble:{kind}:{wp}")) == 1
        assert any(list(a.get_ydata()) == [1.0, 1.0] for a in _gid_artists(ax, "sic=1")), (
            "no SIC = 1 line"
        )
    # Unresolved points: not drawn as values, but as bars at the bound with a down arrow.
    ax = fig.axes[1]
    (line,) = _gid_artists(ax, "sic:EP:0.01")
    y = np.asarray(line.get_ydata(), dtype=float)
    assert np.isfinite(y[:3]).all() and np.isnan(y[3:]).all()
    (bound,) = _gid_artists(ax, "bound:EP:0.01")
    assert list(bound.get_xdata()) == [2.0, 3.0]
    assert list(bound.get_ydata()) == [10.5, 11.5]
    arrows = _gid_artists(ax, "bound:EP:0.01-arrow")
    assert len(arrows) == 2
    for arrow in arrows:  # the head lies below the bar: a downward arrow
        fig.canvas.draw()
        head = arrow.xy
        tip = arrow.xycoords.transform(head)
        tail = ax.transData.transform(arrow.xyann)
        assert tip[1] < tail[1]
    assert not _gid_artists(fig.axes[0], "bound:EP:0.1")
    assert not _gid_artists(fig.axes[1], "bound:ID:0.01")
    # Total band: mean +- sqrt(instance^2 + ensemble^2) at the resolved points.
    c = curves["ID"]["0.1"]
    (band,) = _gid_artists(fig.axes[0], "band:ID:0.1")
    top = band.get_paths()[0].vertices[:, 1].max()
    total = np.hypot(c["instance_std"], c["ensemble_std"])
    assert top == pytest.approx(max(np.add(c["mean"], total)))
    legend_texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend_texts[:4] == list(KINDS)
    assert "upper bound (too few background events)" in legend_texts
    paths = save_figure(fig, tmp_path / "sic", ("png",))
    assert paths[0].stat().st_size > 1000


def test_sic_vs_injection_unresolved_without_bound_is_not_drawn_and_counted() -> None:
    curves = _curves(unresolved_ep=(4,))
    curves["EP"]["0.01"]["bound"][4] = None  # not even the loosest cut keeps enough events
    curves["ID"]["0.01"]["resolved"][4] = False  # resolved False, mean still written
    curves["ID"]["0.01"]["bound"][4] = 9.0
    fig = plot_sic_vs_injection(curves, signal="X_hh")
    ax = fig.axes[1]
    assert not _gid_artists(ax, "bound:EP:0.01")
    (line,) = _gid_artists(ax, "sic:EP:0.01")
    assert np.isnan(np.asarray(line.get_ydata(), dtype=float)[4])
    (note,) = _gid_artists(ax, "unbounded")
    assert note.get_text().startswith("1 point(s)")
    (bound,) = _gid_artists(ax, "bound:ID:0.01")
    assert list(bound.get_ydata()) == [9.0]
    (line,) = _gid_artists(ax, "sic:ID:0.01")
    assert np.isnan(np.asarray(line.get_ydata(), dtype=float)[4])  # a bound, not a value
    assert not _gid_artists(fig.axes[0], "unbounded")


def test_sic_vs_injection_bad_input() -> None:
    good = _curves()
    with pytest.raises(ValueError, match="curves is empty"):
        plot_sic_vs_injection({}, signal="X_hh")
    with pytest.raises(ValueError, match="unknown configuration kind"):
        plot_sic_vs_injection({"XX": good["ID"]}, signal="X_hh")
    bad = copy.deepcopy(good)
    bad["IP"]["0.1"]["mean"] = bad["IP"]["0.1"]["mean"][:-1]
    with pytest.raises(ValueError, match=r"curves\['IP'\]\['0.1'\]\['mean'\] has 4 values"):
        plot_sic_vs_injection(bad, signal="X_hh")
    bad = copy.deepcopy(good)
    del bad["EP"]["0.01"]
    with pytest.raises(ValueError, match=r"curves\['EP'\] has working points"):
        plot_sic_vs_injection(bad, signal="X_hh")
    bad = copy.deepcopy(good)
    bad["ID"]["0.01"]["bound"][4] = -1.0
    bad["ID"]["0.01"]["resolved"][4] = False
    with pytest.raises(ValueError, match=r"\['bound'\]\[4\] must be >= 0"):
        plot_sic_vs_injection(bad, signal="X_hh")
    bad = copy.deepcopy(good)
    bad["ID"]["0.1"]["mean"][0] = None
    with pytest.raises(ValueError, match=r"\['mean'\]\[0\] is missing"):
        plot_sic_vs_injection(bad, signal="X_hh")
    bad = copy.deepcopy(good)
    bad["ID"]["0.1"]["injection"] = [0.0, 1.0, 0.5, 2.0, 3.0]
    with pytest.raises(ValueError, match="must increase strictly"):
        plot_sic_vs_injection(bad, signal="X_hh")
    bad = copy.deepcopy(good)
    bad["ID"]["1.5"] = bad["ID"].pop("0.1")
    with pytest.raises(ValueError, match=r"working point '1\.5'"):
        plot_sic_vs_injection(bad, signal="X_hh")
    bad = copy.deepcopy(good)
    del bad["ID"]["0.1"]["resolved"]
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['resolved'\]"):
        plot_sic_vs_injection(bad, signal="X_hh")
    with pytest.raises(ValueError, match="signal must be"):
        plot_sic_vs_injection(good, signal="")


def _table() -> dict:
    def entry(value, *, low=None, high=None, scanned_max=5.0):
        return {"value": value, "reached": value is not None, "scanned_max": scanned_max,
                "low": low, "high": high}  # fmt: skip

    return {
        "X_hh": {
            "ID": entry(1.0, low=0.8, high=1.3),
            "IP": entry(1.2, low=0.9, high=1.5),
            "EP": entry(2.5),
            "background-only": entry(None),
        },
        "A_Zh": {"ID": entry(1.5), "EP": entry(None), "background-only": entry(None)},
        "t_ch": {"background-only": entry(4.0, high=4.6), "ID": entry(2.0, low=1.7)},
    }


def test_injection_summary_markers_intervals_and_arrows() -> None:
    fig = plot_injection_summary(_table(), significance=3.0, title="fig 7")
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["X_hh", "A_Zh", "t_ch"]
    (ido,) = _gid_artists(ax, "value:ID")
    x_id = np.asarray(ido.get_xdata(), dtype=float)
    assert list(ido.get_ydata()) == [1.0, 1.5, 2.0]
    (ipo,) = _gid_artists(ax, "value:IP")
    assert float(ipo.get_xdata()[0]) > x_id[0]  # configurations set apart horizontally
    (interval,) = _gid_artists(ax, "interval:ID")
    lengths = [float(s[1][1] - s[0][1]) for s in interval.get_segments()]
    assert lengths == pytest.approx([0.5, 0.0, 0.3])
    # Not reached: a bar at scanned_max and an upward arrow, no value marker.
    (bg,) = _gid_artists(ax, "not-reached:background-only")
    assert list(bg.get_ydata()) == [5.0, 5.0]
    arrows = _gid_artists(ax, "not-reached:background-only-arrow")
    assert len(arrows) == 2
    fig.canvas.draw()
    for arrow in arrows:
        assert arrow.xycoords.transform(arrow.xy)[1] > ax.transData.transform(arrow.xyann)[1]
    assert len(_gid_artists(ax, "not-reached:EP-arrow")) == 1
    assert not _gid_artists(ax, "not-reached:ID")
    (bgv,) = _gid_artists(ax, "value:background-only")
    assert list(bgv.get_ydata()) == [4.0]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:4] == list(KINDS)
    assert r"for 3$\sigma$" in ax.get_ylabel()


def test_injection_summary_bad_input() -> None:
    with pytest.raises(ValueError, match="table is empty"):
        plot_injection_summary({}, significance=3.0)
    with pytest.raises(ValueError, match="significance must be > 0"):
        plot_injection_summary(_table(), significance=0.0)
    bad = _table()
    bad["X_hh"]["ID"]["value"] = None  # reached True but no value
    with pytest.raises(TypeError, match=r"table\['X_hh'\]\['ID'\]\['value'\] must be a number"):
        plot_injection_summary(bad, significance=3.0)
    bad = _table()
    bad["A_Zh"]["EP"]["value"] = 9.0  # not reached but a value
    with pytest.raises(ValueError, match=r"table\['A_Zh'\]\['EP'\]: 'reached' is false"):
        plot_injection_summary(bad, significance=3.0)
    bad = _table()
    bad["X_hh"]["IP"]["low"] = 1.4
    with pytest.raises(ValueError, match=r"'low' 1\.4 is above 'value' 1\.2"):
        plot_injection_summary(bad, significance=3.0)
    bad = _table()
    bad["t_ch"] = {}
    with pytest.raises(ValueError, match=r"table\['t_ch'\] is empty"):
        plot_injection_summary(bad, significance=3.0)
    bad = _table()
    del bad["t_ch"]["ID"]["scanned_max"]
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['scanned_max'\]"):
        plot_injection_summary(bad, significance=3.0)


def _matrices() -> dict:
    rng = np.random.default_rng(8)
    counts = rng.integers(1, 50, size=(4, 4)) + np.diag([200, 150, 100, 80])
    rows = counts / counts.sum(axis=1, keepdims=True)
    return {
        "BDT on 6-D latent": {
            "matrix": rows.tolist(),
            "class_names": ["gamma_gamma", "ggF", "VBF", "X_hh"],
            "accuracy": 0.71,
        },
        "BDT on raw features": {
            "matrix": counts.tolist(),  # counts are normalised per row too
            "class_names": ["gamma_gamma", "ggF", "VBF", "X_hh"],
            "accuracy": 0.65,
        },
        "supervised transformer": {
            "matrix": [[0.9, 0.1], [0.2, 0.8]],
            "class_names": ["background", "signal"],
            "accuracy": 0.85,
        },
    }


def test_confusion_matrices_panels_cells_and_accuracy() -> None:
    mats = _matrices()
    fig = plot_confusion_matrices(mats, title="appendix A")
    assert len(fig.axes) == 3
    ax = fig.axes[1]
    assert "accuracy = 0.650" in ax.get_title()
    (image,) = [im for im in ax.get_images() if im.get_gid() == "matrix:BDT on raw features"]
    arr = np.asarray(image.get_array())
    np.testing.assert_allclose(arr.sum(axis=1), 1.0)
    np.testing.assert_allclose(arr, np.asarray(mats["BDT on 6-D latent"]["matrix"]))
    cells = _gid_artists(ax, "cell:BDT on raw features")
    assert len(cells) == 16
    assert cells[1].get_text() == f"{arr[0, 1]:.2f}"
    assert cells[1].get_position() == (1, 0)  # predicted on x, true on y
    assert [t.get_text() for t in ax.get_yticklabels()] == mats["BDT on raw features"][
        "class_names"
    ]
    assert len(_gid_artists(fig.axes[2], "cell:supervised transformer")) == 4


def test_confusion_matrices_bad_input() -> None:
    with pytest.raises(ValueError, match="matrices is empty"):
        plot_confusion_matrices({})
    bad = _matrices()
    bad["supervised transformer"]["matrix"] = [[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]]
    with pytest.raises(ValueError, match=r"\['matrix'\] must be a non-empty square matrix"):
        plot_confusion_matrices(bad)
    bad = _matrices()
    bad["supervised transformer"]["class_names"] = ["background"]
    with pytest.raises(ValueError, match="1 class_names for a 2x2 matrix"):
        plot_confusion_matrices(bad)
    bad = _matrices()
    bad["supervised transformer"]["matrix"] = [[0.9, 0.1], [0.0, 0.0]]
    with pytest.raises(ValueError, match=r"row\(s\) of \['signal'\] sum to zero"):
        plot_confusion_matrices(bad)
    bad = _matrices()
    bad["supervised transformer"]["accuracy"] = 1.5
    with pytest.raises(ValueError, match=r"\['accuracy'\] must be in \[0, 1\]"):
        plot_confusion_matrices(bad)
    bad = _matrices()
    del bad["BDT on 6-D latent"]["accuracy"]
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['accuracy'\]"):
        plot_confusion_matrices(bad)


def _projection_gids(fig) -> set[str]:
    return {a.get_gid() for ax in fig.axes for a in ax.get_children() if a.get_gid() is not None}


def test_projections_true_background_histogram() -> None:
    rng = np.random.default_rng(1)
    xd, xt = rng.normal(size=(500, 3)), rng.normal(size=(400, 3))
    xs, xb = rng.normal(1.0, 0.5, size=(50, 3)), rng.normal(size=(450, 3))
    before = plot_projections(xd, xt, x_signal=xs)
    assert _projection_gids(before) == {
        f"{kind}:{j}" for kind in ("data", "template", "signal") for j in range(3)
    }
    fig = plot_projections(xd, xt, x_signal=xs, x_background=xb)
    assert _projection_gids(fig) == _projection_gids(before) | {f"background:{j}" for j in range(3)}
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["SR data", "template", "true background", "signal"]
    (hist,) = _gid_artists(fig.axes[2], "background:2")
    assert hist.get_gid() == "background:2"
    with pytest.raises(ValueError, match=r"x_background must be \(n > 0, 3\)"):
        plot_projections(xd, xt, x_background=xb[:, :2])
    with pytest.raises(ValueError, match=r"x_background must be \(n > 0, 3\)"):
        plot_projections(xd, xt, x_background=np.zeros((0, 3)))
