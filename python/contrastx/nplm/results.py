"""HDF5 results file of an NPLM toy run, written block by block and resumable.

Layout (``format = "contrastx-nplm-toys"``, ``format_version = 2``)::

    /                      attrs: format, format_version, config (JSON), key (JSON),
                                  created, summary (JSON, once written)
    /null, /signal         one group per hypothesis; attr n_committed (int64), datasets:
        toy_index  (n,)    int64
        t          (n,)    float64   NPLM test statistic
        n_bkg      (n,)    int64     drawn N_B
        n_sig      (n,)    int64     drawn N_S
        n_iter     (n,)    int64     CG iterations (0: exact solver)
        seconds    (n,)    float64   wall time of the toy's block / toys in the block
        seed       (n, 3)  int64     numpy SeedSequence entropy [seed, hypothesis, toy_index]

**Commits.** A block is appended in two steps: every column of its rows is written and
the file flushed, and only then is the group's ``n_committed`` raised past them and the
file flushed again. The first ``n_committed`` rows are therefore complete whenever the
writer stops (an exception, a signal or a killed process); rows beyond them belong to a
block that was being written and are discarded when the file is opened again (their
toys are then rerun). Readers see the committed rows only.

A new file is created complete under ``<name>.tmp`` and then renamed, so a file at the
output path is never one whose creation was cut short.

**Resume.** The file's ``key`` (the settings that determine ``t``) must match the new
run's. The committed rows are verified before they are skipped: each must have
``seed = [seed, hypothesis, toy_index]``, a finite ``t``, non-negative counts and a toy
index seen once; a file that fails is refused with a message naming the rows.

**Format 1** (no ``n_committed``) is read, and resumed, by keeping only the rows that are
complete and consistent (the columns were written in order with ``seed`` last, so a row
of an interrupted block has a missing or zero ``seed``, or all-zero values); the rows
dropped are logged and, on resume, rerun. Opening a format-1 file for writing rewrites it
as format 2.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .toys import NULL, SIGNAL, ToyBlock

__all__ = ["FORMAT", "FORMAT_VERSION", "GROUPS", "ToyResultsFile", "read_toy_results"]

logger = logging.getLogger(__name__)

FORMAT = "contrastx-nplm-toys"
FORMAT_VERSION = 2
GROUPS = {NULL: "null", SIGNAL: "signal"}
COMMITTED = "n_committed"
"""Group attribute: the number of complete rows (written after them)."""
_COLUMNS = {
    "toy_index": np.int64,
    "t": np.float64,
    "n_bkg": np.int64,
    "n_sig": np.int64,
    "n_iter": np.int64,
    "seconds": np.float64,
}
_ALL = (*_COLUMNS, "seed")
LEGACY_KEY_VALUES = {"preconditioner": "falkon"}
"""Settings added to the key after files were written, with the value those files' toys
used (a resumed run must set it to match: ``--preconditioner falkon``)."""


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _describe(toys: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in toys[:limit])
    return shown + (f" and {toys.size - limit} more" if toys.size > limit else "")


def _row_problems(rows: dict[str, np.ndarray], seed: int, hypothesis: int) -> np.ndarray:
    """Per row, the first reason it is not a complete toy result ("" when it is)."""
    n = rows["toy_index"].size
    idx = rows["toy_index"]
    expected = np.stack([np.full(n, seed), np.full(n, hypothesis), idx], axis=1)
    checks = [
        (idx < 0, "negative toy index"),
        (~np.all(rows["seed"] == expected, axis=1), f"seed is not [{seed}, {hypothesis}, toy]"),
        (~np.isfinite(rows["t"]), "t is not finite"),
        ((rows["n_bkg"] < 0) | (rows["n_sig"] < 0) | (rows["n_iter"] < 0), "negative count"),
        (~np.isfinite(rows["seconds"]) | (rows["seconds"] < 0), "bad seconds"),
    ]
    if hypothesis == NULL:
        checks.append((rows["n_sig"] != 0, "null toy with signal events"))
    first = np.zeros(n, dtype=bool)
    first[np.unique(idx, return_index=True)[1]] = True
    checks.append((~first, "toy index repeated"))
    out = np.full(n, "", dtype=object)
    for bad, why in reversed(checks):  # the first check wins
        out[bad] = why
    return out


def _open_h5(path: Path, mode: str) -> h5py.File:
    """``h5py.File`` with an error that names the file and, for a lock, the likely cause."""
    try:
        return h5py.File(path, mode)
    except OSError as exc:
        if "lock" in str(exc).lower():
            raise OSError(
                f"{path} is open in another process (another run writing it?); wait for it "
                "to finish or use another output path"
            ) from None
        raise OSError(f"{path}: cannot open as HDF5 ({exc})") from None


def _is_blank(f: h5py.File) -> bool:
    """Whether ``f`` holds nothing but (possibly) empty toy groups: a creation cut short."""
    for name, obj in f.items():
        if name not in GROUPS.values() or not isinstance(obj, h5py.Group):
            return False
        if any(isinstance(d, h5py.Dataset) and d.shape[:1] != (0,) for d in obj.values()):
            return False
    return True


def _seed_of(attrs: Any) -> int:
    for name in ("key", "config"):
        if name in attrs:
            value = json.loads(attrs[name]).get("seed")
            if value is not None:
                return int(value)
    return 0


def _committed_rows(
    g: h5py.Group, path: Path, seed: int, hypothesis: int, version: int
) -> tuple[dict[str, np.ndarray], int, int]:
    """``(rows, n_stored, n_dropped)``: the committed, verified rows of group ``g``.

    Format 2: the first ``n_committed`` rows, which must all be consistent (else
    ``ValueError``); ``n_stored - n_committed`` uncommitted rows follow. Format 1: the
    complete, consistent rows (the others are counted in ``n_dropped``).
    """
    where = f"{path}: /{g.name.strip('/')}"
    lengths = {col: g[col].shape[0] for col in _ALL}
    n_stored = max(lengths.values())
    if version >= 2:
        if COMMITTED not in g.attrs:
            raise ValueError(f"{where} has no {COMMITTED!r} attribute: the file is damaged")
        n_c = int(g.attrs[COMMITTED])
        short = [c for c, n in lengths.items() if n < n_c]
        if n_c < 0 or short:
            raise ValueError(
                f"{where}: {n_c} rows are committed but {', '.join(short) or COMMITTED} "
                "is shorter: the file is damaged; use another output path or overwrite"
            )
        rows = {col: g[col][:n_c] for col in _ALL}
        why = _row_problems(rows, seed, hypothesis)
        bad = np.flatnonzero(why != "")
        if bad.size:
            raise ValueError(
                f"{where}: committed rows of toys {_describe(rows['toy_index'][bad])} are "
                f"inconsistent ({why[bad[0]]}): the file is damaged; use another output path "
                "or overwrite"
            )
        return rows, n_stored, 0
    n = min(lengths.values())  # columns were resized one after another
    rows = {col: g[col][:n] for col in _ALL}
    why = _row_problems(rows, seed, hypothesis)
    zero = (rows["t"] == 0) & (rows["n_bkg"] == 0) & (rows["n_iter"] == 0) & (rows["seconds"] == 0)
    keep = (why == "") & ~zero
    rows = {col: v[keep] for col, v in rows.items()}
    return rows, n_stored, n_stored - int(keep.sum())


def _sorted(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    order = np.argsort(rows["toy_index"], kind="stable")
    return {k: v[order] for k, v in rows.items()}


def _version(f: h5py.File, path: Path) -> int:
    if f.attrs.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    version = int(f.attrs.get("format_version", 1))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {version}, written by a newer contrastx (this one "
            f"reads versions up to {FORMAT_VERSION})"
        )
    return version


class ToyResultsFile:
    """Block-by-block writer and resumer of toy results (see the module notes).

    Opening an existing file discards the rows of a block whose write was interrupted
    (format 2) or the incomplete rows (format 1, which is then rewritten as format 2),
    and verifies the committed rows.

    Parameters
    ----------
    path : str or Path
    config : dict
        Everything about the run, stored as JSON in the ``config`` attribute.
    key : dict
        The subset of ``config`` that determines the toys' ``t`` (seed, sizes, model,
        input); a resumed file must have the same key. Its ``seed`` (default 0) is the
        first entry of every row's ``seed``.
    overwrite : bool
        Start a fresh file even if one exists.

    Raises
    ------
    ValueError
        If ``path`` exists with another format, a newer format version, a different key,
        or committed rows that are inconsistent.
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
        if not overwrite and not self.path.exists():
            # Created complete under another name, then renamed: a file at ``path`` is
            # never one whose creation was cut short.
            tmp = self.path.with_name(self.path.name + ".tmp")
            ToyResultsFile(tmp, config, key, overwrite=True).close()
            os.replace(tmp, self.path)
        exists = self.path.exists() and not overwrite
        self._f = _open_h5(self.path, "a" if exists else "w")
        self._seed = int(key.get("seed", config.get("seed", 0)))
        self._n: dict[int, int] = {}
        try:
            version = FORMAT_VERSION
            fresh = not exists or ("format" not in self._f.attrs and _is_blank(self._f))
            if not fresh:
                version = _version(self._f, self.path)
                old = json.loads(self._f.attrs["key"])
                new = json.loads(_json(key))
                # Keys that files written before a setting existed lack: their value then.
                old = {**{k: v for k, v in LEGACY_KEY_VALUES.items() if k in new}, **old}
                if old != new:
                    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                    raise ValueError(
                        f"{self.path} holds a run with different settings ({', '.join(diff)}); "
                        "use another output path or overwrite"
                    )
            else:
                self._f.attrs["key"] = _json(key)
                self._f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            self._f.attrs["config"] = _json(config)
            for hyp, name in GROUPS.items():
                self._open_group(hyp, name, version)
            self._f.attrs["format_version"] = FORMAT_VERSION
            self._f.attrs["format"] = FORMAT  # last: a file without it holds no results
            self._f.flush()
        except BaseException:
            self._f.close()
            raise

    def _open_group(self, hypothesis: int, name: str, version: int) -> None:
        """Create the group, or recover it: drop uncommitted rows, verify committed ones."""
        g = self._f.require_group(name)
        for col, dt in _COLUMNS.items():
            if col not in g:
                g.create_dataset(col, shape=(0,), maxshape=(None,), dtype=dt, chunks=(1024,))
        if "seed" not in g:
            g.create_dataset(
                "seed", shape=(0, 3), maxshape=(None, 3), dtype=np.int64, chunks=(1024, 3)
            )
        if COMMITTED in g.attrs:
            version = 2  # (a format-1 file is upgraded group by group)
        elif version >= 2 and all(g[col].shape[0] == 0 for col in _ALL):
            g.attrs.create(COMMITTED, np.int64(0), dtype=np.int64)  # a new group
        rows, n_stored, dropped = _committed_rows(g, self.path, self._seed, hypothesis, version)
        n = rows["toy_index"].size
        if version < 2:
            if dropped:
                logger.warning(
                    "%s: /%s: dropped %d incomplete rows of an interrupted block (format 1); "
                    "their toys will be rerun",
                    self.path,
                    name,
                    dropped,
                )
            # Commit nothing while the rows are rewritten: an interruption then loses the
            # group's toys (they are rerun), never mixes old and new rows.
            g.attrs.create(COMMITTED, np.int64(0), dtype=np.int64)
            self._f.flush()
            if n != n_stored:
                self._write_rows(g, 0, rows)
        elif n_stored > n:
            logger.info(
                "%s: /%s: discarded %d uncommitted rows of an interrupted block",
                self.path,
                name,
                n_stored - n,
            )
        self._truncate(g, n)
        self._f.flush()
        g.attrs.modify(COMMITTED, np.int64(n))
        self._n[hypothesis] = n

    @staticmethod
    def _truncate(g: h5py.Group, n: int) -> None:
        for col in _ALL:
            if g[col].shape[0] != n:
                g[col].resize(n, axis=0)

    @staticmethod
    def _write_rows(g: h5py.Group, start: int, rows: dict[str, np.ndarray]) -> None:
        n = rows["toy_index"].shape[0]
        for col in _ALL:
            ds = g[col]
            ds.resize(start + n, axis=0)
            ds[start:] = rows[col]

    def __enter__(self) -> ToyResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

    def done(self, hypothesis: int) -> np.ndarray:
        """Toy indices committed for ``hypothesis``."""
        return self._f[GROUPS[hypothesis]]["toy_index"][: self._n[hypothesis]]

    def append(self, block: ToyBlock) -> None:
        """Append a block of toys and commit it (see the module notes).

        Raises
        ------
        ValueError
            If the block has a toy index already committed, a negative index, arrays of
            different lengths or a non-finite ``t`` (nothing is written then).
        """
        hyp = block.hypothesis
        if hyp not in GROUPS:
            raise ValueError(f"block hypothesis must be 0 (null) or 1 (signal); got {hyp}")
        n = len(block)
        if n == 0:
            return
        idx = np.asarray(block.toy_index, dtype=np.int64)
        cols = {
            "toy_index": idx,
            "t": block.t,
            "n_bkg": block.n_bkg,
            "n_sig": block.n_sig,
            "n_iter": block.n_iter,
            "seconds": np.full(n, block.seconds / n),
        }
        rows = {c: np.asarray(v, dtype=_COLUMNS[c]).reshape(-1) for c, v in cols.items()}
        if any(v.size != n for v in rows.values()):
            sizes = {c: v.size for c, v in rows.items()}
            raise ValueError(f"block arrays must all have {n} entries; got {sizes}")
        if np.any(idx < 0) or np.unique(idx).size != n:
            raise ValueError(f"block toy indices must be distinct and >= 0; got {idx.tolist()}")
        bad = ~np.isfinite(rows["t"])
        if bad.any():
            raise ValueError(f"toys {_describe(idx[bad])}: t is not finite; nothing written")
        again = np.isin(idx, self.done(hyp))
        if again.any():
            raise ValueError(
                f"{self.path}: toys {_describe(idx[again])} are already stored ({GROUPS[hyp]})"
            )
        rows["seed"] = np.stack([np.full(n, self._seed), np.full(n, hyp), idx], axis=1)
        g = self._f[GROUPS[hyp]]
        old = self._n[hyp]
        self._truncate(g, old)  # rows of an append interrupted in this session
        self._write_rows(g, old, rows)
        self._f.flush()  # the rows are complete in the file ...
        g.attrs.modify(COMMITTED, np.int64(old + n))
        self._n[hyp] = old + n
        self._f.flush()  # ... before they are committed

    def read(self, hypothesis: int) -> dict[str, np.ndarray]:
        """The committed columns of ``hypothesis``, sorted by toy index."""
        g = self._f[GROUPS[hypothesis]]
        return _sorted({col: g[col][: self._n[hypothesis]] for col in _ALL})

    def set_config(self, config: dict[str, Any]) -> None:
        """Replace the stored ``config`` (not the ``key``): for settings known only once
        the first toys are solved, such as a distributed run's engine choices."""
        self._f.attrs["config"] = _json(config)
        self._f.flush()

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Store the run summary (JSON) in the ``summary`` attribute."""
        self._f.attrs["summary"] = _json(summary)
        self._f.flush()


def read_toy_results(path: str | Path) -> dict[str, Any]:
    """Read a results file: ``{"config", "summary", "null", "signal"}``.

    Only committed rows are returned (sorted by toy index); see the module notes for
    the checks. Format-1 files give their complete rows (the others are logged).

    Raises
    ------
    ValueError
        If the file is not a toy results file, is of a newer format version, or holds
        inconsistent committed rows.
    """
    path = Path(path)
    with _open_h5(path, "r") as f:
        version = _version(f, path)
        seed = _seed_of(f.attrs)
        out: dict[str, Any] = {
            "config": json.loads(f.attrs["config"]),
            "summary": json.loads(f.attrs["summary"]) if "summary" in f.attrs else None,
        }
        for hyp, name in GROUPS.items():
            g = f[name]
            v = 2 if COMMITTED in g.attrs else version
            rows, _, dropped = _committed_rows(g, path, seed, hyp, v)
            if dropped:
                logger.warning(
                    "%s: /%s: %d incomplete rows of an interrupted block ignored (format 1)",
                    path,
                    name,
                    dropped,
                )
            out[name] = _sorted(rows)
    return out
