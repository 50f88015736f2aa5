"""HDF5 results file of an NPLM toy run, written incrementally and resumable.

Layout (``format = "contrastx-nplm-toys"``, ``format_version = 1``)::

    /                      attrs: format, format_version, config (JSON), key (JSON),
                                  created, summary (JSON, once written)
    /null, /signal         one group per hypothesis, datasets of equal length n:
        toy_index  (n,)    int64
        t          (n,)    float64   NPLM test statistic
        n_bkg      (n,)    int64     drawn N_B
        n_sig      (n,)    int64     drawn N_S
        n_iter     (n,)    int64     CG iterations (0: exact solver)
        seconds    (n,)    float64   wall time of the toy's block / toys in the block
        seed       (n, 3)  int64     numpy SeedSequence entropy [seed, hypothesis, toy_index]

Every appended block is flushed, so an interrupted run keeps all finished blocks; on
resume the file's ``key`` (the settings that determine ``t``) must match the new run's
and the toys already present are skipped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .toys import NULL, SIGNAL, ToyBlock

__all__ = ["FORMAT", "GROUPS", "ToyResultsFile", "read_toy_results"]

FORMAT = "contrastx-nplm-toys"
FORMAT_VERSION = 1
GROUPS = {NULL: "null", SIGNAL: "signal"}
_COLUMNS = {
    "toy_index": np.int64,
    "t": np.float64,
    "n_bkg": np.int64,
    "n_sig": np.int64,
    "n_iter": np.int64,
    "seconds": np.float64,
}


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


class ToyResultsFile:
    """Incremental writer and resumer of toy results.

    Parameters
    ----------
    path : str or Path
    config : dict
        Everything about the run, stored as JSON in the ``config`` attribute.
    key : dict
        The subset of ``config`` that determines the toys' ``t`` (seed, sizes, model,
        input); a resumed file must have the same key.
    overwrite : bool
        Start a fresh file even if one exists.

    Raises
    ------
    ValueError
        If ``path`` exists with another format or a different key.
    """

    def __init__(
        self,
        path: str | Path,
        config: dict[str, Any],
        key: dict[str, Any],
        *,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = self.path.exists() and not overwrite
        self._f = h5py.File(self.path, "a" if exists else "w")
        try:
            if exists and "format" in self._f.attrs:
                if self._f.attrs["format"] != FORMAT:
                    raise ValueError(f"{self.path} is not a {FORMAT} file")
                old = json.loads(self._f.attrs["key"])
                new = json.loads(_json(key))
                if old != new:
                    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                    raise ValueError(
                        f"{self.path} holds a run with different settings ({', '.join(diff)}); "
                        "use another output path or overwrite"
                    )
            else:
                self._f.attrs["format"] = FORMAT
                self._f.attrs["format_version"] = FORMAT_VERSION
                self._f.attrs["key"] = _json(key)
                self._f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            self._f.attrs["config"] = _json(config)
            for name in GROUPS.values():
                g = self._f.require_group(name)
                for col, dt in _COLUMNS.items():
                    if col not in g:
                        g.create_dataset(
                            col, shape=(0,), maxshape=(None,), dtype=dt, chunks=(1024,)
                        )
                if "seed" not in g:
                    g.create_dataset(
                        "seed", shape=(0, 3), maxshape=(None, 3), dtype=np.int64, chunks=(1024, 3)
                    )
            self._f.flush()
        except Exception:
            self._f.close()
            raise
        self._seed = int(key.get("seed", config.get("seed", 0)))

    def __enter__(self) -> ToyResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

    def done(self, hypothesis: int) -> np.ndarray:
        """Toy indices already stored for ``hypothesis``."""
        return self._f[GROUPS[hypothesis]]["toy_index"][()]

    def append(self, block: ToyBlock) -> None:
        """Append a block of toys and flush."""
        g = self._f[GROUPS[block.hypothesis]]
        n = len(block)
        if n == 0:
            return
        old = g["toy_index"].shape[0]
        cols = {
            "toy_index": block.toy_index,
            "t": block.t,
            "n_bkg": block.n_bkg,
            "n_sig": block.n_sig,
            "n_iter": block.n_iter,
            "seconds": np.full(n, block.seconds / n),
        }
        for col, values in cols.items():
            ds = g[col]
            ds.resize((old + n,))
            ds[old:] = np.asarray(values, dtype=_COLUMNS[col])
        seeds = np.stack(
            [np.full(n, self._seed), np.full(n, block.hypothesis), block.toy_index], axis=1
        )
        g["seed"].resize((old + n, 3))
        g["seed"][old:] = seeds
        self._f.flush()

    def read(self, hypothesis: int) -> dict[str, np.ndarray]:
        """All stored columns of ``hypothesis``, sorted by toy index."""
        return _read_group(self._f[GROUPS[hypothesis]])

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Store the run summary (JSON) in the ``summary`` attribute."""
        self._f.attrs["summary"] = _json(summary)
        self._f.flush()


def _read_group(g: h5py.Group) -> dict[str, np.ndarray]:
    out = {k: g[k][()] for k in (*_COLUMNS, "seed")}
    order = np.argsort(out["toy_index"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def read_toy_results(path: str | Path) -> dict[str, Any]:
    """Read a results file: ``{"config", "summary", "null", "signal"}``."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} file")
        out: dict[str, Any] = {
            "config": json.loads(f.attrs["config"]),
            "summary": json.loads(f.attrs["summary"]) if "summary" in f.attrs else None,
        }
        for name in GROUPS.values():
            out[name] = _read_group(f[name])
    return out
