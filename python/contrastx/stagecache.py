"""Cached, resumable stages of a study, each keyed by its own settings.

A stage is a function ``body(folder) -> (outputs, info)`` that writes files into its
folder ``<out_dir>/<stage>/<name>-<key>/``; ``key`` is the SHA-256 (12 hex digits) of
the stage's settings and of the keys of the stages it reads. A stage is *done* when its
``stage.json`` (written last, atomically) holds that key: a re-run skips it, so changing
one setting re-runs only the stages whose key it enters and their downstream. Every
start, skip, finish and failure is appended to ``<out_dir>/pipeline-log.jsonl``.

:class:`StageCache` holds that machinery; the NPLM study
(:class:`contrastx.pipeline.Pipeline`) and the signal-aware study
(:class:`contrastx.signal_aware.SignalAwareStudy`) are built on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "LOG_NAME",
    "STAGE_VERSION",
    "StageCache",
    "StageResult",
    "atomic_json",
    "config_hash",
    "file_fingerprint",
    "read_log",
]

STAGE_VERSION = 1
"""Bumped when a stage's outputs change meaning (invalidates every cache)."""

LOG_NAME = "pipeline-log.jsonl"

logger = logging.getLogger(__name__)


def config_hash(obj: Any) -> str:
    """SHA-256 (hex, first 12 digits) of the canonical JSON of ``obj``."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class StageResult:
    """A finished stage: its key, folder, output files and recorded info."""

    stage: str
    name: str
    key: str
    dir: Path
    outputs: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: bool = False

    def path(self, output: str) -> Path:
        """Absolute path of a named output file."""
        return self.dir / self.outputs[output]


def read_log(out_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``<out_dir>/pipeline-log.jsonl`` (empty if none)."""
    p = Path(out_dir) / LOG_NAME
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Resolved path, size and modification time of an input file (part of stage keys).

    Raises
    ------
    FileNotFoundError
        ``path`` is not a file (the message names it).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"input file not found: {p}")
    s = p.stat()
    return {"path": str(p.resolve()), "size": s.st_size, "mtime_ns": s.st_mtime_ns}


def atomic_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` through a temporary file and a rename."""
    from contrastx._json import dumps

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


class StageCache:
    """Runs (or skips) cached stages under one output folder.

    Parameters
    ----------
    out : Path
        The study's output folder.
    say : callable
        Where progress messages go (one line each).
    """

    def __init__(self, out: Path, say: Callable[[str], None]) -> None:
        self.out = Path(out)
        self.say = say
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        self.results: dict[str, StageResult] = {}

    def _log(self, **record: Any) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        record = {"run_id": self.run_id, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}
        with open(self.out / LOG_NAME, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")

    def _key_and_folder(
        self, stage: str, name: str, settings: dict[str, Any], upstream: list[StageResult]
    ) -> tuple[str, Path]:
        key = config_hash(
            {
                "stage": stage,
                "version": STAGE_VERSION,
                "settings": settings,
                "upstream": [u.key for u in upstream],
            }
        )
        return key, self.out / stage / (f"{name}-{key}" if name else key)

    def is_done(
        self, stage: str, name: str, settings: dict[str, Any], upstream: list[StageResult]
    ) -> bool:
        """Whether this stage with these settings and upstream stages finished before."""
        key, folder = self._key_and_folder(stage, name, settings, upstream)
        marker = folder / "stage.json"
        return marker.exists() and json.loads(marker.read_text()).get("key") == key

    def stage(
        self,
        stage: str,
        name: str,
        settings: dict[str, Any],
        upstream: list[StageResult],
        body: Callable[[Path], tuple[dict[str, Any], dict[str, Any]]],
    ) -> StageResult:
        """Run ``body(folder) -> (outputs, info)`` unless a run with the same key finished."""
        key, folder = self._key_and_folder(stage, name, settings, upstream)
        label = f"{stage}/{name}" if name else stage
        marker = folder / "stage.json"
        if self.is_done(stage, name, settings, upstream):
            rec = json.loads(marker.read_text())
            if rec.get("key") == key:
                self._log(stage=stage, name=name, key=key, action="skip")
                self.say(f"[{label}] done before ({folder}), skipped")
                return StageResult(
                    stage, name, key, folder, rec["outputs"], rec["info"], rec["seconds"], True
                )
        folder.mkdir(parents=True, exist_ok=True)
        self._log(stage=stage, name=name, key=key, action="start")
        self.say(f"[{label}] running -> {folder}")
        t0 = time.perf_counter()
        try:
            outputs, info = body(folder)
        except BaseException as err:
            self._log(stage=stage, name=name, key=key, action="fail", error=repr(err))
            raise
        seconds = time.perf_counter() - t0
        atomic_json(
            marker,
            {
                "stage": stage,
                "name": name,
                "key": key,
                "settings": settings,
                "upstream": {u.stage + (f"/{u.name}" if u.name else ""): u.key for u in upstream},
                "outputs": outputs,
                "info": info,
                "seconds": seconds,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
        self._log(stage=stage, name=name, key=key, action="run", seconds=seconds)
        self.say(f"[{label}] finished in {seconds:.1f} s")
        return StageResult(stage, name, key, folder, outputs, info, seconds, False)

    def stage_times(self) -> list[dict[str, Any]]:
        """Stage, name, seconds and whether skipped, for every stage run so far."""
        return [
            {"stage": r.stage, "name": r.name, "seconds": r.seconds, "skipped": r.skipped}
            for r in self.results.values()
        ]
