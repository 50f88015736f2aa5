"""contrastx.options: strict types, choices, bounds, keys, embedding, command lines."""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Literal

import numpy as np
import pytest
from contrastx.options import (
    HelpFormatter,
    OptionsError,
    add_arguments,
    embedded,
    from_arguments,
    from_mapping,
    key_name,
    option,
    option_doc,
    options,
    to_dict,
)


@options(section="inner")
class Inner:
    """Settings of an inner thing."""

    size: int = option(10, "How many items.", ge=1)
    rate: float = option(0.5, "A rate in (0, 1].", gt=0.0, le=1.0)
    kind: Literal["a", "b"] = option("a", "Which kind.")
    width: float | None = option(None, "Optional width; unset: automatic.", gt=0)


@options(section="job")
class Job:
    """A job: own keys and an embedded Inner."""

    name: str = option("job", "Name of the job.")
    count: int = option(doc="How many runs (required).", ge=0)
    weights: tuple[float, ...] = option((1.0,), "Weights, each in [0, 1].", ge=0.0, le=1.0)
    fast: bool = option(False, "Run fast.")
    color: str = option("red", "Colour.", choices=("red", "blue"))
    inner: Inner = embedded(Inner, "The inner settings.", size=20)

    def _check(self) -> None:
        if self.count > self.size:
            raise OptionsError(
                f"{key_name(self, 'count')} must not exceed {key_name(self, 'size')}"
            )


@options(section="study")
class Study:
    """Embeds Job with other defaults and without two of its keys."""

    repeat: int = option(1, "Repetitions.", ge=1)
    job: Job = embedded(
        Job, exclude={"fast": "always slow in a study", "color": ""}, count=3, rate=0.25
    )


# ----------------------------------------------------------------------------- types
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 50.7}, r"inner\.size must be an integer; got 50\.7 \(float\)"),
        ({"size": "fifty"}, r"inner\.size must be an integer; got 'fifty' \(str\)"),
        ({"size": True}, r"inner\.size must be an integer; got True \(bool\)"),
        ({"rate": "0.5"}, r"inner\.rate must be a number; got '0\.5' \(str\)"),
        ({"rate": float("nan")}, r"inner\.rate must be a number; got nan"),
        ({"width": float("inf")}, r"inner\.width must be a finite number; got inf"),
        ({"kind": "c"}, r"inner\.kind must be one of 'a', 'b'; got 'c'"),
        ({"width": "x"}, r"inner\.width must be a number; got 'x'"),
    ],
)
def test_values_are_never_coerced(kwargs: dict, match: str) -> None:
    with pytest.raises(OptionsError, match=match):
        Inner(**kwargs)


def test_exact_numbers_and_numpy_scalars_are_accepted() -> None:
    cfg = Inner(size=1e3, rate=np.float32(0.5), width=np.int64(2))
    assert cfg.size == 1000 and type(cfg.size) is int
    assert type(cfg.rate) is float and type(cfg.width) is float
    assert Inner(size=np.int64(7)).size == 7
    with pytest.raises(OptionsError, match="integer"):
        Inner(size=np.float64(2.5))


def test_options_error_is_value_and_type_error() -> None:
    with pytest.raises(ValueError):
        Inner(size=0)
    with pytest.raises(TypeError):
        Inner(size="3")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 0}, r"inner\.size must be >= 1; got 0"),
        ({"rate": 0.0}, r"inner\.rate must be > 0\.0; got 0\.0"),
        ({"rate": 1.5}, r"inner\.rate must be <= 1\.0; got 1\.5"),
        ({"width": -1.0}, r"inner\.width must be > 0; got -1\.0"),
    ],
)
def test_bounds(kwargs: dict, match: str) -> None:
    with pytest.raises(OptionsError, match=match):
        Inner(**kwargs)


def test_choices_tuples_and_bools() -> None:
    with pytest.raises(OptionsError, match=r"job\.color must be one of 'red', 'blue'; got 'green'"):
        Job(count=1, color="green")
    with pytest.raises(OptionsError, match=r"job\.weights\[1\] must be a number"):
        Job(count=1, weights=[0.5, "x"])
    with pytest.raises(OptionsError, match=r"job\.weights must be <= 1\.0; got 2\.0"):
        Job(count=1, weights=[0.5, 2.0])
    with pytest.raises(OptionsError, match=r"job\.weights must be a list of float"):
        Job(count=1, weights="0.5")
    with pytest.raises(OptionsError, match=r"job\.fast must be true or false; got 1"):
        Job(count=1, fast=1)
    assert Job(count=1, weights=[0.5, 1]).weights == (0.5, 1.0)


def test_required_and_unknown_keys() -> None:
    with pytest.raises(OptionsError, match=r"job\.count is required"):
        Job()
    with pytest.raises(OptionsError, match=r"unknown key job\.cont; known: .*count"):
        Job(cont=1)
    with pytest.raises(OptionsError, match=r"unknown key job\.cont"):
        from_mapping(Job, {"count": 1, "cont": 2})
    with pytest.raises(OptionsError, match=r"\[job\] must be a table"):
        from_mapping(Job, [1, 2])


def test_frozen_and_documented() -> None:
    cfg = Job(count=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.count = 2  # type: ignore[misc]
    doc = Job.__doc__
    assert "count : int, default required" in doc and "How many runs" in doc
    assert "color : str, default 'red'" in doc and "One of 'red', 'blue'." in doc
    assert "inner : Inner" in doc and "Defaults here: size = 20." in doc
    assert "Not set here: fast, color." in Study.__doc__
    assert option_doc(Study, "rate") == "A rate in (0, 1]."


# ------------------------------------------------------------------------- embedding
def test_embedded_keys_are_flat_in_constructor_attributes_and_tables() -> None:
    job = Job(count=2, size=30, kind="b")
    assert job.inner == Inner(size=30, kind="b")
    assert job.size == 30 and job.rate == 0.5  # attributes reach the embedded keys
    assert Job(count=2).size == 20  # the embedding's default, not Inner's 10
    assert dataclasses.replace(job, rate=0.1).inner == Inner(size=30, kind="b", rate=0.1)
    assert from_mapping(Job, {"count": 2, "size": 30, "kind": "b"}) == job
    assert from_mapping(Job, {"count": 2, "inner": {"size": 30, "kind": "b"}}) == job
    with pytest.raises(OptionsError, match=r"unknown key job\.inner\.count"):
        from_mapping(Job, {"inner": {"count": 2}})
    with pytest.raises(AttributeError):
        job.nothing  # noqa: B018


def test_embedded_values_are_checked_and_named_by_the_parent_section() -> None:
    with pytest.raises(OptionsError, match=r"job\.size must be an integer; got 2\.5"):
        Job(count=1, size=2.5)
    with pytest.raises(OptionsError, match=r"cfg\.size must be >= 1"):
        from_mapping(Job, {"count": 1, "size": 0}, where="cfg")
    with pytest.raises(OptionsError, match=r"job\.inner must be a Inner; got dict"):
        Job(count=1, inner={"size": 3})
    with pytest.raises(OptionsError, match=r"job\.count must not exceed job\.size"):
        Job(count=25)


def test_to_dict_flattens_and_round_trips() -> None:
    job = Job(count=2, size=30, weights=(0.1, 0.2))
    flat = to_dict(job)
    assert flat == {
        "name": "job",
        "count": 2,
        "weights": [0.1, 0.2],
        "fast": False,
        "color": "red",
        "size": 30,
        "rate": 0.5,
        "kind": "a",
        "width": None,
    }
    assert from_mapping(Job, flat) == job
    assert to_dict(job, flatten=False)["inner"] == {
        "size": 30,
        "rate": 0.5,
        "kind": "a",
        "width": None,
    }


def test_embedding_defaults_and_exclusions() -> None:
    study = Study()
    assert study.job == Job(count=3, rate=0.25)
    assert study.count == 3 and study.rate == 0.25 and study.size == 20
    assert from_mapping(Study, {"count": 2}).job.count == 2
    with pytest.raises(OptionsError, match=r"study\.fast cannot be set here: always slow"):
        from_mapping(Study, {"fast": True})
    with pytest.raises(OptionsError, match=r"study\.color cannot be set here$"):
        Study(color="blue")
    with pytest.raises(AttributeError):
        study.fast  # noqa: B018  (excluded keys are not forwarded)
    flat = to_dict(study)
    assert "fast" not in flat and "color" not in flat and flat["count"] == 3
    assert from_mapping(Study, flat) == study


def test_clashing_and_unknown_embedded_keys_are_programming_errors() -> None:
    with pytest.raises(TypeError, match="clashes"):

        @options
        class Clash:
            size: int = option(1, "Own size.")
            inner: Inner = embedded(Inner)

    with pytest.raises(TypeError, match="unknown key"):
        embedded(Inner, exclude=("nope",))


# ---------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="demo", formatter_class=HelpFormatter)
    p.add_argument("--out", default="x.h5", help="output file")
    p.add_argument("--quiet", action="store_true", help="no output")
    add_arguments(p, Job, title="job", defaults={"count": 4})
    return p


def _help(p: argparse.ArgumentParser) -> str:
    return " ".join(p.format_help().split())


def test_flags_are_generated_with_the_default_shown_once() -> None:
    text = _help(_parser())
    for flag in ("--name", "--count", "--weights", "--fast", "--no-fast", "--size", "--kind"):
        assert flag in text
    assert "How many runs (required). (default: 4)" in text  # defaults= overrides the shown one
    assert "How many items. (default: 20)" in text  # the embedding's default
    assert "Optional width; unset: automatic. (default: unset)" in text
    assert "output file (default: x.h5)" in text  # hand-written flags get theirs once
    assert "(default: None)" not in text and "no output (default" not in text
    assert not re.search(r"\(default: [^)]*\)\s*\(default:", text)


def test_argparse_default_formatter_would_print_two_defaults() -> None:
    """Why HelpFormatter: argparse's own formatter adds '(default: None)' to every flag."""
    p = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(p, Inner)
    assert "(default: 10) (default: None)" in _help(p)


def test_from_arguments_changes_only_the_given_flags() -> None:
    p = _parser()
    base = Job(count=2, name="base", rate=0.3)
    args = p.parse_args(["--size", "7", "--fast", "--weights", "0.1,0.2"])
    job = from_arguments(Job, args, base=base)
    assert job == dataclasses.replace(base, size=7, fast=True, weights=(0.1, 0.2))
    assert from_arguments(Job, p.parse_args([]), base=base) == base
    assert from_arguments(Inner, p.parse_args(["--kind", "b"])) == Inner(kind="b")


def test_command_line_errors_name_the_flag() -> None:
    p = _parser()
    with pytest.raises(OptionsError, match=r"command line: --size must be >= 1; got 0"):
        from_arguments(Job, p.parse_args(["--size", "0"]), base=Job(count=1))
    with pytest.raises(OptionsError, match=r"command line: --count must not exceed --size"):
        from_arguments(Job, p.parse_args(["--count", "30"]), base=Job(count=1))
    with pytest.raises(SystemExit):
        p.parse_args(["--size", "2.5"])  # argparse refuses a fractional integer
    with pytest.raises(SystemExit):
        p.parse_args(["--kind", "c"])


def test_only_exclude_and_not_embedded() -> None:
    p = argparse.ArgumentParser()
    add_arguments(p, Job, only=("count", "size"))
    add_arguments(p, Study, embedded=False)
    flags = {a.option_strings[0] for a in p._actions if a.option_strings}
    assert flags == {"-h", "--count", "--size", "--repeat"}
    q = argparse.ArgumentParser()
    add_arguments(q, Study)
    flags = {a.option_strings[0] for a in q._actions if a.option_strings}
    assert "--fast" not in flags and "--color" not in flags and "--rate" in flags
    assert "A rate in (0, 1]. (default: 0.25)" in _help(q)


def test_contrastx_toys_help_prints_each_default_once() -> None:
    from contrastx.cli.toys import build_parser

    text = _help(build_parser())
    assert "(default: None)" not in text
    assert not re.search(r"\(default: [^)]*\)\s*\(default:", text)
    assert "Number of Nystrom centres" in text and "(default: 500; --paper: 1000)" in text
    for flag in (
        "--n-ref",
        "--n-bkg",
        "--n-sig",
        "--M",
        "--lam",
        "--sigma",
        "--solver",
        "--dtype",
        "--strategy",
        "--pool-dtype",
        "--max-block",
        "--data-pool",
        "--memory-mb",
        "--pool-memory-gb",
        "--mode",
        "--seed",
    ):
        assert re.search(rf"{flag}\b", text), flag
