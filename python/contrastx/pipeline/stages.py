"""The stages of a study, each cached on disk under a key derived from its config.

Stages (data flow one way)::

    events -> splits -> embed/<name>[/training<i>] -> toys/<name>/(training|draw)<i> -> results

Every embedding is run ``run.trainings`` times. A trained embedding (contrastive, vae)
is trained that many times: training ``i`` is its own stage ``embed/<name>/training<i>``
with its own seed (:meth:`~contrastx.pipeline.config.RunConfig.training_seed`, derived
from ``run.seed``), followed by its own toys stage. A deterministic baseline (raw,
leading_pt) is built once (``embed/<name>``) and gets as many toys stages
(``toys/<name>/draw<i>``). Run ``i`` of every embedding draws its NPLM reference, kernel
centres and toys with the seed of training ``i``: the embeddings are compared on the
same draws (paired), and the spread over runs holds both what retraining and what a new
reference draw move the result by (a study conditional on one reference draw hides the
latter, which can be several times the toy error).

Each stage's outputs live in ``<out_dir>/<stage>/<name>-<key>/``, where ``key`` is the
SHA-256 (12 hex digits) of the stage's own settings and the keys of the stages it reads.
A stage is *done* when its ``stage.json`` (written last, atomically) holds that key; a
re-run skips done stages, so changing one setting re-runs only the stages whose key it
enters and their downstream. Interrupted stages resume: training from its per-epoch
checkpoint (:meth:`contrastx.embed.Trainer.fit` with ``resume=True``), toys from their
incremental results files (:class:`contrastx.nplm.ToyResultsFile`); the events and
splits stages are seconds long and simply start again. Every start, skip, finish and
failure is appended to ``<out_dir>/pipeline-log.jsonl``.

Progress goes to :mod:`logging` (logger ``contrastx.pipeline.stages``, INFO; the training
epochs to ``contrastx.embed.training``): every stage says when it starts and finishes, and
the long ones report as they go. On a terminal, training and toys show a progress bar with
an ETA; otherwise (a log file, a batch job) they write one line per epoch or per block of
toys, with the time elapsed and the time to go.

The compute device (``run.device``) does not enter the keys.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from contrastx._console import Progress, format_duration, stderr_is_terminal
from contrastx.events import Events
from contrastx.events.layout import ADC2021, ADC2021_MIXTURE, PROCESSES, SIGNALS
from contrastx.stagecache import (
    STAGE_VERSION,
    StageCache,
    StageResult,
    read_log,
)
from contrastx.stagecache import file_fingerprint as _file_fingerprint

from .config import EmbeddingSpec, EventsConfig, StudyConfig

__all__ = [
    "STAGE_VERSION",
    "Pipeline",
    "StageResult",
    "background_rows",
    "load_background",
    "load_signals",
    "read_log",
    "select_background_rows",
]

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------- loading
def _read_rows(f: Any, rows: np.ndarray) -> Events:
    """Events of the sorted file ``rows`` of an open :class:`~contrastx.events.EventFile`
    (reads only the span they cover)."""
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    ev = f.read(lo, hi)
    return ev if rows.size == hi - lo else ev[rows - lo]


def _read_signal_file(path: str, name: str, n: int) -> Events:
    from contrastx.events import EventFile

    stop = n or None
    with EventFile(path) as f:
        if f.format == "contrastx":
            labels, names = f.read_labels(), f.process_names
            if name in names and (labels == names.index(name)).any():
                return _read_rows(f, np.flatnonzero(labels == names.index(name))[:stop])
            values, numbers = np.unique(labels, return_counts=True)
            if values.size > 1:
                held = ", ".join(
                    f"{'unknown' if v < 0 else names[v]} ({c})" for v, c in zip(values, numbers)
                )
                raise ValueError(
                    f"signal {name!r}: {path} holds several processes but no {name} event "
                    f"(it holds {held}); give a file of {name} events in events.signal_files"
                )
            ev = f.read(0, stop)
            names = PROCESSES if name in PROCESSES else (*PROCESSES, name)
            return Events(
                ev.particles,
                np.full(len(ev), names.index(name)),
                names,
                layout=ev.layout,
                event_features=ev.event_features,
            )
    names = PROCESSES if name in PROCESSES else (*PROCESSES, name)
    with EventFile(path, process=name, process_names=names) as f:
        return f.read(0, stop)


def _builtin_signal_processes() -> frozenset[str]:
    """Names of the built-in signal processes (ADC2021 and the diphoton generator's)."""
    from contrastx.events.generators.diphoton import BACKGROUND_PROCESSES, DIPHOTON_PROCESSES

    return frozenset(SIGNALS) | (frozenset(DIPHOTON_PROCESSES) - frozenset(BACKGROUND_PROCESSES))


def select_background_rows(ec: EventsConfig, seed: int) -> np.ndarray:
    """File rows of the background sample of ``[events]`` (a background file).

    The background processes are ``ec.background_processes`` or, when empty, every process
    of the file except the studied and the built-in signals (an unlabelled file is all
    background). With ``ec.background_fractions`` the rows are
    :func:`~contrastx.events.composition_rows` of that composition (seeded by ``seed``);
    without, the first ``ec.n_background`` background rows (0: all).
    """
    from contrastx.events import EventFile, composition_rows

    path = ec.background_file
    key = "events.background_fractions"
    with EventFile(path, labels=ec.background_labels or None, allow_empty=False) as f:
        labels = f.read_labels()
        names = f.process_names
    if ec.background_fractions:
        if (labels < 0).any():
            raise ValueError(
                f"{key} needs process labels but {path} has none: give events.background_labels"
            )
        try:
            return composition_rows(
                labels,
                names,
                ec.background_fractions,
                n_max=ec.n_background,
                seed=seed,
                what=str(path),
            )
        except ValueError as err:
            raise ValueError(f"{key}: {err}") from None
    if (labels < 0).all():
        rows = np.arange(labels.size)
    else:
        if ec.background_processes:
            chosen = list(ec.background_processes)
            missing = [p for p in chosen if p not in names]
            if missing:
                raise ValueError(
                    f"events.background_processes {missing} not in {path} (its processes: "
                    f"{', '.join(names)})"
                )
        else:
            signals = set(ec.signals) | _builtin_signal_processes()
            chosen = [p for p in names if p not in signals]
        wanted = [names.index(p) for p in chosen]
        rows = np.flatnonzero(np.isin(labels, wanted))
        if not rows.size:
            raise ValueError(f"{path} holds no background events (processes {chosen})")
    return rows[: ec.n_background or None].astype(np.int64)


def check_file_layouts(ec: EventsConfig) -> None:
    """Raise ValueError unless the background and signal files hold ``events.layout`` events."""
    from contrastx.events import EventFile
    from contrastx.events.layout import LAYOUTS

    want = ec.event_layout
    files = {"events.background_file": ec.background_file}
    files.update({f"events.signal_files.{s}": p for s, p in ec.signal_files.items()})
    for key, path in files.items():
        with EventFile(path) as f:
            got = f.layout
        if got != want:
            fix = repr(got.name) if LAYOUTS.get(got.name) == got else "a layout file of it"
            raise ValueError(
                f"{key} {path} holds events in layout {got.name!r} but events.layout is "
                f"{ec.layout!r}; set events.layout = {fix}"
            )


def check_signals_in_background_file(ec: EventsConfig) -> None:
    """Raise ValueError unless every signal of ``[events]`` has events in the background file
    (the signals' source when ``events.signal_files`` is empty)."""
    from contrastx.events import EventFile

    path = ec.background_file
    with EventFile(path, labels=ec.background_labels or None) as f:
        labels = f.read_labels()
        names = f.process_names
    counts = {n: int((labels == i).sum()) for i, n in enumerate(names)}
    missing = [s for s in ec.signals if not counts.get(s)]
    if missing:
        held = [f"{n} ({k})" for n, k in counts.items() if k]
        what = "holds several processes but none of these" if len(held) > 1 else "has none"
        raise ValueError(
            f"events.signals {missing}: {path} {what} (it holds "
            f"{', '.join(held) or 'no labelled events'}); name signal processes of the file "
            "in events.signals (the default is the four ADC2021 signals) or give their "
            "files in events.signal_files"
        )


def background_path(events_stage: StageResult) -> Path:
    """The event file of an events stage's background sample (its rows 0..N-1 are it)."""
    info = events_stage.info
    if info["source"] == "generator":
        return Path(events_stage.path("background"))
    return Path(info["background_file"])


def load_background(events_stage: StageResult) -> Events:
    """The background sample of an events stage (the rows :func:`background_rows` of
    :func:`background_path`)."""
    from contrastx.events import EventFile, read_events

    info = events_stage.info
    if info["source"] == "generator":
        return read_events(background_path(events_stage))
    path = background_path(events_stage)
    with EventFile(path, labels=info["background_labels"] or None, allow_empty=False) as f:
        return _read_rows(f, background_rows(events_stage))


def background_rows(events_stage: StageResult) -> np.ndarray:
    """The row in :func:`background_path` of every event of :func:`load_background`."""
    if events_stage.info["source"] == "generator":
        from contrastx.events import EventFile

        with EventFile(background_path(events_stage)) as f:
            return np.arange(len(f), dtype=np.int64)
    return np.load(events_stage.path("background_rows"))


def load_signals(events_stage: StageResult) -> dict[str, Events]:
    """Signal name -> signal events of an events stage."""
    from contrastx.events import read_events

    info = events_stage.info
    if info["source"] == "generator":
        ev = read_events(events_stage.path("signals"))
        return {s: ev.select(s) for s in info["signals"]}
    return {
        s: _read_signal_file(info["signal_files"][s], s, info["n_signal"]) for s in info["signals"]
    }


# ----------------------------------------------------------------------- progress
class _Progress(Progress):
    """Progress of ``total`` items of one step: a bar on a terminal, else one line per update.

    Parameters
    ----------
    say : callable
        Where the lines go (one per :meth:`update` without a bar).
    label : str
        What is being done (``"[toys/raw57] null.h5"``).
    total : int
        Items to do in this session.
    unit : str
        Plural name of the items (``"toys"``).
    bar : bool
        Show a tqdm bar (with its own ETA) instead of lines.
    """

    def __init__(self, say: Callable[[str], None], label: str, total: int, unit: str, bar: bool):
        super().__init__(total, bar=bar, desc=label, unit=unit[:-1] or unit)
        self.say, self.label, self.unit = say, label, unit

    def update(self, n: int) -> None:
        """``n`` more items are done."""
        super().update(n)
        if self.bar is not None:
            return
        to_go = self.time_to_go()
        self.say(
            f"{self.label}: {self.done}/{self.total} {self.unit}, "
            f"{format_duration(self.elapsed)} elapsed, "
            f"{to_go if to_go == 'done' else f'about {to_go} to go'}"
        )


# ----------------------------------------------------------------------- pipeline
class Pipeline(StageCache):
    """Runs (or skips) the stages of a study.

    Parameters
    ----------
    config : StudyConfig
    log : callable, optional
        Where the pipeline's progress messages go (default: this module's logger at INFO);
        pass ``lambda s: None`` to silence them. With the default, long steps show a
        progress bar when stderr is a terminal, else one message per epoch or block.
        Training epochs and the results stage log to their own modules' loggers.
    """

    def __init__(self, config: StudyConfig, *, log: Callable[[str], None] | None = None) -> None:
        super().__init__(config.out_dir, log if log is not None else logger.info)
        self.config = config
        # Bars only where a person watches and nobody asked for silence.
        self.bars = log is None and stderr_is_terminal()
        self._dask: tuple[Any, Any] | None = None  # (client, cluster) of [executor] dask

    def _toy_client(self) -> Any:
        """The Dask client of ``[executor] executor = "dask"`` (started on first use and
        shared by every toys stage of the run), else None."""
        if self.config.executor.executor != "dask":
            return None
        if self._dask is None:
            from contrastx.distributed import dask_client

            self._dask = dask_client(self.config.executor)
        return self._dask[0]

    def close(self) -> None:
        """Close the Dask client and cluster the toys used (a no-op without them)."""
        if self._dask is not None:
            client, cluster = self._dask
            self._dask = None
            client.close()
            if cluster is not None:
                cluster.close()

    # ------------------------------------------------------------------ stages
    def events_stage(self) -> StageResult:
        """Background and signal samples: files, or the built-in fast generator."""
        ec = self.config.events
        seed = self.config.run.seed
        settings: dict[str, Any] = {"events": dataclasses.asdict(ec)}
        # Not in the key: the files' fingerprints fix their layout, checked on every run.
        del settings["events"]["layout"]
        if ec.from_files:
            settings["background_fingerprint"] = _file_fingerprint(ec.background_file)
            if ec.background_labels:
                settings["labels_fingerprint"] = _file_fingerprint(ec.background_labels)
            # No signal files: the signals are processes of the background file.
            signal_files = dict(ec.signal_files) or dict.fromkeys(ec.signals, ec.background_file)
            settings["signal_fingerprints"] = {
                s: _file_fingerprint(p) for s, p in sorted(signal_files.items())
            }
            check_file_layouts(ec)
        else:
            settings["seed"] = seed

        def body(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
            from contrastx.events import write_events

            info: dict[str, Any] = {"signals": list(ec.signals)}
            if ec.from_files:
                if not ec.signal_files:
                    check_signals_in_background_file(ec)
                info.update(
                    source="files",
                    background_file=settings["background_fingerprint"]["path"],
                    background_labels=ec.background_labels,
                    signal_files={
                        s: settings["signal_fingerprints"][s]["path"] for s in ec.signals
                    },
                    n_background=int(ec.n_background),
                    n_signal=int(ec.n_signal),
                )
                rows = select_background_rows(ec, seed)
                np.save(folder / "background_rows.npy", rows)
                outputs = {"background_rows": "background_rows.npy"}
                stage = StageResult("events", "", "", folder, outputs, info)
                bkg = load_background(stage)
                sigs = load_signals(stage)
                info["counts"] = {**bkg.counts(), **{s: len(e) for s, e in sigs.items()}}
                info["counts_background"] = len(bkg)
                return outputs, info
            from contrastx.events.generators import generate_sample, mixture_counts

            mixture = ec.background_fractions or ADC2021_MIXTURE
            bkg = generate_sample(mixture_counts(ec.n_background, mixture), seed=seed)
            # Signals from a separate stream so the background does not depend on them.
            sig = generate_sample({s: ec.n_signal for s in ec.signals}, seed=seed + 1)
            write_events(folder / "background.h5", bkg, overwrite=True)
            write_events(folder / "signals.h5", sig, overwrite=True)
            info.update(
                source="generator",
                generator="contrastx.events.generators.generate_sample (fast, parametric)",
                seed=seed,
                counts={**bkg.counts(), **sig.counts()},
                counts_background=len(bkg),
            )
            return {"background": "background.h5", "signals": "signals.h5"}, info

        return self.stage("events", "", settings, [], body)

    def splits_stage(self, events: StageResult) -> StageResult:
        """Background split: a held-out NPLM part and the embedding-training part."""
        sc = self.config.splits
        settings = {"splits": dataclasses.asdict(sc), "seed": self.config.run.seed}

        def body(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
            from contrastx.events import Preprocessor, make_splits

            bkg = load_background(events)
            labels = bkg.labels if (bkg.labels >= 0).all() else None
            sp = make_splits(
                len(bkg),
                n_folds=sc.n_folds,
                test_fraction=sc.nplm_fraction,
                seed=self.config.run.seed,
                labels=labels,
            )
            sp.save(folder / "splits.npz")
            train_idx = np.sort(np.concatenate(sp.folds))
            if bkg.layout == ADC2021:
                pre = Preprocessor("pt").fit(bkg.particles[train_idx])
            else:
                pre = Preprocessor("layout", bkg.layout).fit(bkg[train_idx])
            pre.save(folder / "preprocessor.json")
            info = {
                "n_background": len(bkg),
                "n_nplm": int(sp.test.size),
                "n_train": int(train_idx.size),
                "stratified": labels is not None,
                "preprocessor": pre.state_dict(),
            }
            return {"splits": "splits.npz", "preprocessor": "preprocessor.json"}, info

        return self.stage("splits", "", settings, [events], body)

    def embed_stage(
        self,
        spec: EmbeddingSpec,
        events: StageResult,
        splits: StageResult,
        training: int | None = None,
    ) -> StageResult:
        """Train (or build) one embedding, embed the NPLM background and the signals.

        Parameters
        ----------
        spec : EmbeddingSpec
        events, splits : StageResult
        training : int, optional
            Which training (0-based) of a trained embedding; its seed is
            ``run.training_seed(training)``. None (only) for the deterministic baselines.
        """
        return self.stage(*self._embed_spec(spec, events, splits, training))

    def _embed_spec(
        self,
        spec: EmbeddingSpec,
        events: StageResult,
        splits: StageResult,
        training: int | None = None,
    ) -> tuple[str, str, dict[str, Any], list[StageResult], Callable]:
        """``(stage, name, settings, upstream, body)`` of :meth:`embed_stage`."""
        run = self.config.run
        n_lin = int(self.config.splits.linear_eval_events)
        settings: dict[str, Any] = {
            "embedding": spec.as_dict(),
            "seed": run.seed,
            "linear_eval_events": n_lin,
        }
        if spec.trained:
            if training is None:
                raise ValueError(f"embedding {spec.name!r} is trained: give the training index")
            train_seed = run.training_seed(training)
            settings.update(training=training, training_seed=train_seed)
            name = f"{spec.name}/training{training}"
        else:
            if training is not None:
                raise ValueError(
                    f"embedding {spec.name!r} ({spec.kind}) is deterministic: built once, "
                    "no training index"
                )
            train_seed = None
            name = spec.name
        label = f"[embed/{name}]"

        def body(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
            from contrastx.embed import (
                LeadingPtBaseline,
                RawBaseline,
                load_model,
                save_model,
                write_embedding,
            )
            from contrastx.events import Splits

            bkg = load_background(events)
            sp = Splits.load(splits.path("splits"))
            train_idx = np.sort(np.concatenate(sp.folds))
            if spec.trained and spec.n_train and spec.n_train < train_idx.size:
                # Each training draws its own subset: retraining varies it too.
                rng = np.random.default_rng(np.random.SeedSequence([train_seed, 7]))
                train_idx = np.sort(rng.choice(train_idx, spec.n_train, replace=False))
            info: dict[str, Any] = {
                "kind": spec.kind,
                "dimension": spec.dimension_on(self.config.layout),
                "family": spec.family_on(self.config.layout),
                "n_train": int(train_idx.size) if spec.trained else 0,
                "training": training,
                "training_seed": train_seed,
            }
            model_path = folder / "model.pt"
            t0 = time.perf_counter()
            if spec.kind == "contrastive":
                from contrastx.embed import TrainConfig, Trainer

                overrides = {"test_fraction": 0.0, "n_folds": self.config.splits.n_folds}
                overrides.update(spec.train)
                tc = TrainConfig.from_preset(
                    spec.preset,
                    latent_dim=spec.latent_dim,
                    epochs=spec.epochs,
                    seed=train_seed,
                    device=run.device,
                    progress=self.bars,
                    **overrides,
                )
                trainer = Trainer(tc).fit(
                    bkg[train_idx],
                    checkpoint=folder / "checkpoint.pt",
                    resume=True,
                    event_file=background_path(events),
                    event_rows=background_rows(events)[train_idx],
                )
                trainer.save(model_path)
                info["history"] = trainer.history_
                info["train_config"] = tc.to_dict()
            elif spec.kind == "vae":
                from contrastx.embed import fit_vae

                self.say(f"{label} training the VAE: {spec.epochs} epochs, {train_idx.size} events")
                vae, hist = fit_vae(
                    bkg[train_idx], epochs=spec.epochs, seed=train_seed, device=run.device,
                    progress=self.bars, **spec.train,
                )  # fmt: skip
                save_model(
                    model_path,
                    vae,
                    vae.config(),
                    history=[{"epoch": i, "train_loss": v} for i, v in enumerate(hist)],
                    metadata={"n_train": int(train_idx.size)},
                )
                info["history"] = hist
            elif spec.kind == "raw":
                save_model(model_path, RawBaseline(bkg.layout), {"kind": "raw"})
            else:
                save_model(model_path, LeadingPtBaseline(bkg.layout), {"kind": "leading_pt"})
            info["train_seconds"] = time.perf_counter() - t0
            (folder / "checkpoint.pt").unlink(missing_ok=True)

            model = load_model(model_path)
            nplm_bkg = bkg[sp.test]
            sigs = load_signals(events)
            sample = Events.concatenate([nplm_bkg, *sigs.values()])
            self.say(f"{label} embedding {len(sample)} events (NPLM background and signals)")
            t1 = time.perf_counter()
            z = model.embed(sample, device=run.device)
            info["embed_seconds"] = time.perf_counter() - t1
            write_embedding(
                folder / "embedding.h5",
                z,
                sample.labels,
                sample.process_names,
                model_config={"model": model.model_config, "name": spec.name, "training": training},
                metadata={"n_background": len(nplm_bkg), "signals": list(sigs)},
                layout=sample.layout,
                overwrite=True,
            )
            if n_lin > 0:
                self.say(f"{label} linear evaluation on at most {n_lin} background events")
            info["linear_eval"] = _linear_eval(z[: len(nplm_bkg)], nplm_bkg, run.seed, n_lin)
            return {"model": "model.pt", "embedding": "embedding.h5"}, info

        return "embed", name, settings, [events, splits], body

    def toys_stage(self, spec: EmbeddingSpec, embed: StageResult, run: int = 0) -> StageResult:
        """NPLM null toys, and signal toys for every signal and injection fraction.

        One stage per run of an embedding: run ``i`` of a trained embedding is its
        training ``i`` (named like its embed stage), run ``i`` of a deterministic baseline
        is the one embedding's ``i``-th toy set (``<name>/draw<i>``). Run ``i`` draws its
        own NPLM reference, kernel centres and toys from ``run.training_seed(i)``, the
        same for every embedding (paired comparisons): the spread over runs holds what
        retraining *and* a new reference draw move the result by.
        """
        nc = self.config.nplm
        signals = list(self.config.events.signals)
        seed = self.config.run.training_seed(run)
        settings = {
            "nplm": dataclasses.asdict(nc),
            "signals": signals,
            "seed": seed,
            "run": run,
            # Toys cached before the kernel width was taken from the reference in draw
            # order (not pool order) are not reused.
            "sigma_rows": "reference draw order",
        }
        name = embed.name if spec.trained else f"{spec.name}/draw{run}"

        def body(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
            progress = functools.partial(_Progress, self.say, bar=self.bars)
            return _run_toys(
                folder,
                embed.path("embedding"),
                nc,
                signals,
                self.config.run,
                self.say,
                seed=seed,
                progress=lambda file, total: progress(f"[toys/{name}] {file}", total, "toys"),
                executor=self.config.executor,
                client=self._toy_client(),
            )

        return self.stage("toys", name, settings, [embed], body)

    def results_stage(
        self,
        embeds: dict[str, list[StageResult]],
        toys: dict[str, list[StageResult]],
        events: StageResult,
    ) -> StageResult:
        """Tables, JSON, figures and the report (see :mod:`contrastx.pipeline.results`).

        ``embeds`` and ``toys`` map each embedding's name to its stages, one per training
        (one for a deterministic baseline), in training order.
        """
        from .results import RESULTS_FORMAT, build_results

        settings = {
            "results": dataclasses.asdict(self.config.results),
            "fractions": list(self.config.nplm.fractions),
            "seed": self.config.run.seed,
            "format": RESULTS_FORMAT,
        }
        upstream = [events, *(r for rs in embeds.values() for r in rs)]
        upstream += [r for rs in toys.values() for r in rs]

        def body(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
            return build_results(folder, self.config, events, embeds, toys, self.stage_times())

        res = self.stage("results", "", settings, upstream, body)
        _publish(res, self.out)
        return res

    def _embed_stages(self, jobs: list[tuple]) -> list[StageResult]:
        """The embed stages ``jobs`` (arguments of :meth:`embed_stage`) where ``[executor]``
        says: inline, or those not done before as whole stages on local processes or Dask
        (each seeded by its settings and writing its own folder; a trained embedding is
        bitwise the same at equal torch thread counts)."""
        ex = self.config.executor
        if ex.executor == "inline":
            return [self.embed_stage(*job) for job in jobs]
        from contrastx.distributed import map_tasks

        todo = [j for j, job in enumerate(jobs) if not self.is_done(*self._embed_spec(*job)[:4])]
        out = {j: self.embed_stage(*jobs[j]) for j in range(len(jobs)) if j not in todo}
        self.say(f"[embed] {len(todo)} stage(s) on the {ex.executor} executor")
        tasks = [(self.config, jobs[j]) for j in todo]
        for n, (t, res) in enumerate(map_tasks(ex, _embed_task, tasks), 1):
            out[todo[t]] = res
            self.say(f"[embed/{res.name}] finished in {res.seconds:.1f} s ({n}/{len(todo)})")
        return [out[j] for j in range(len(jobs))]

    # --------------------------------------------------------------------- run
    def run(self, *, until: str | None = None) -> dict[str, StageResult]:
        """Run every stage (or up to ``until``: events, splits, embed, toys, results)."""
        order = ("events", "splits", "embed", "toys", "results")
        if until is not None and until not in order:
            raise ValueError(f"until must be one of {order}; got {until!r}")
        stop = order.index(until) if until else len(order) - 1
        t0 = time.perf_counter()
        self._log(action="begin", config=self.config.to_dict())
        try:
            self._run(stop)
        finally:
            self.close()
        total = time.perf_counter() - t0
        self._log(action="end", seconds=total)
        self.say(f"pipeline finished in {total:.1f} s; outputs in {self.out}")
        return self.results

    def _run(self, stop: int) -> None:
        ev = self.results["events"] = self.events_stage()
        if stop >= 1:
            sp = self.results["splits"] = self.splits_stage(ev)
            if stop >= 3:  # toys will run: a too-small pool fails now, not after training
                check_nplm_pool(int(sp.info["n_nplm"]), self.config.nplm)
        embeds: dict[str, list[StageResult]] = {}
        toys: dict[str, list[StageResult]] = {}
        n_train = int(self.config.run.trainings)
        if stop >= 2:
            jobs = [
                (spec, ev, sp, i)
                for spec in self.config.embeddings
                for i in (range(n_train) if spec.trained else [None])
            ]
            for (spec, *_), res in zip(jobs, self._embed_stages(jobs)):
                self.results[f"embed/{res.name}"] = res
                embeds.setdefault(spec.name, []).append(res)
        if stop >= 3:
            for spec in self.config.embeddings:
                toys[spec.name] = []
                for i in range(n_train):
                    emb = embeds[spec.name][i if spec.trained else 0]
                    res = self.toys_stage(spec, emb, i)
                    self.results[f"toys/{res.name}"] = res
                    toys[spec.name].append(res)
        if stop >= 4:
            self.results["results"] = self.results_stage(embeds, toys, ev)


def _embed_task(config: StudyConfig, job: tuple) -> StageResult:
    """One embed stage in a worker process (:meth:`Pipeline._embed_stages`)."""
    return Pipeline(config).embed_stage(*job)


def _linear_eval(z: np.ndarray, bkg: Events, seed: int, n_max: int) -> dict[str, Any]:
    """Fig. II's linear-probe accuracy on the background classes (or why it was skipped)."""
    from contrastx.embed import linear_evaluation

    if n_max <= 0:
        return {"skipped": "splits.linear_eval_events = 0"}
    names = bkg.process_names
    # Every labelled event: the events stage chose which processes are the background.
    idx = np.flatnonzero(bkg.labels >= 0)
    if np.unique(bkg.labels[idx]).size < 2:
        return {"skipped": "fewer than two labelled background classes"}
    if idx.size > n_max:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 8]))
        idx = np.sort(rng.choice(idx, n_max, replace=False))
    try:
        classes = np.unique(bkg.labels[idx]).tolist()  # not the ADC2021 default classes
        res = linear_evaluation(
            z[idx], bkg.labels[idx], classes=classes, process_names=names, max_iter=100, seed=seed
        )
    except ValueError as err:
        return {"skipped": str(err)}
    return {
        "mean": res.mean,
        "sem": res.sem,
        "accuracies": res.accuracies.tolist(),
        "classes": [names[c] for c in res.classes],
        "n_events": int(idx.size),
    }


def check_nplm_pool(n_pool: int, nc: Any) -> None:
    """Raise ValueError if the NPLM background pool is too small for ``n_ref`` plus a toy.

    Run once the splits are known, before any training, and again on the embedded pool.
    """
    from contrastx.nplm.options import poisson_upper

    if n_pool - int(nc.n_ref) < poisson_upper(float(nc.n_bkg)):
        raise ValueError(
            f"the NPLM background pool has {n_pool} events: too few for n_ref = "
            f"{nc.n_ref} plus toys of N(B) = {nc.n_bkg}; raise events.n_background or "
            "splits.nplm_fraction, or lower nplm.n_ref / nplm.n_bkg"
        )


def _run_toys(
    folder: Path,
    embedding_path: Path,
    nc: Any,
    signals: list[str],
    run: Any,
    say: Callable[[str], None],
    *,
    seed: int,
    progress: Callable[[str, int], _Progress] | None = None,
    executor: Any = None,
    client: Any = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    from contrastx.embed import read_embedding
    from contrastx.nplm import NULL, SIGNAL, ToyEngine, ToyResultsFile

    emb = read_embedding(embedding_path)
    names = emb.process_names
    sig_labels = {s: names.index(s) for s in signals if s in names}
    missing = [s for s in signals if s not in sig_labels]
    if missing:
        raise ValueError(f"{embedding_path}: no events of signals {missing}")
    is_sig = np.isin(emb.labels, list(sig_labels.values()))
    bkg = np.asarray(emb.embedding[~is_sig], dtype=np.float64)
    sig = {s: np.asarray(emb.embedding[emb.labels == k], np.float64) for s, k in sig_labels.items()}
    info: dict[str, Any] = {"n_background_pool": int(bkg.shape[0]), "dimension": int(bkg.shape[1])}
    if nc.standardize:
        mean, std = bkg.mean(0), bkg.std(0)
        std[std == 0] = 1.0
        bkg = (bkg - mean) / std
        sig = {s: (v - mean) / std for s, v in sig.items()}
    free = bkg.shape[0] - int(nc.n_ref)
    data_pool = int(nc.data_pool) or int(10 * nc.n_bkg)
    data_pool = min(data_pool, free)
    check_nplm_pool(bkg.shape[0], nc)
    info["data_pool"] = data_pool
    # Every [nplm] setting of the engine; the study sets the seed, data pool and N(S).
    base = dataclasses.replace(
        nc.toys, seed=int(seed), data_pool=data_pool if nc.mode == "shared" else None
    )
    info["seed"] = int(seed)
    outputs: dict[str, Any] = {}
    runs: list[dict[str, Any]] = []

    inline = executor is None or executor.executor == "inline"

    def one(file: str, n_sig: float, pool: np.ndarray | None, hyp: int, n: int) -> None:
        cfg = dataclasses.replace(base, n_sig=n_sig)
        key = {**cfg.result_settings(), "embedding": str(embedding_path.name)}
        with ToyResultsFile(folder / file, {**key, "n": n}, key) as res:
            done = set(res.done(hyp).tolist())
            todo = [i for i in range(n) if i not in done]
            t0 = time.perf_counter()
            bar = progress(file, len(todo)) if progress is not None and todo else None
            engine: dict[str, Any] = {}
            executed: dict[str, Any] = {"executor": "inline"}
            try:
                if inline:
                    eng = ToyEngine(bkg, pool, config=cfg, device=run.device)
                    for blk in eng.run(todo, hypothesis=hyp):
                        res.append(blk)
                        if bar is not None:
                            bar.update(len(blk))
                    if todo:
                        engine = {"sigma_used": eng.sigma_, "strategy_used": eng.strategy_}
                elif todo:
                    # Toy k is drawn from (seed, hypothesis, k) wherever it is solved: the
                    # same t as inline (contrastx.distributed).
                    from contrastx.distributed import ToyProblem, run_toy_shards

                    def on_shard(blk: Any) -> None:
                        engine.update(blk.extra.get("engine") or {})
                        if bar is not None:
                            bar.update(len(blk))

                    stats = run_toy_shards(
                        ToyProblem(bkg, pool, cfg, str(run.device)),
                        {hyp: todo},
                        executor,
                        res.append,
                        client=client,
                        on_shard=on_shard,
                    )
                    executed = {
                        "executor": executor.executor,
                        "shards": stats["shards"],
                        "lost": stats["lost"],
                        "workers": len(stats["workers"]),
                    }
            finally:
                if bar is not None:
                    bar.close()
            runs.append(
                {
                    "file": file,
                    "n_sig": n_sig,
                    "toys_run": len(todo),
                    "toys_resumed": n - len(todo),
                    "seconds": time.perf_counter() - t0,
                    "sigma": engine.get("sigma_used"),
                    "strategy": engine.get("strategy_used"),
                    **executed,
                }
            )
        say(f"  {file}: {len(todo)} toys run, {n - len(todo)} resumed")

    one("null.h5", 0.0, None, NULL, int(nc.n_toys))
    outputs["null"] = "null.h5"
    for s in signals:
        for f in nc.fractions:
            file = f"{s}-{f:g}.h5"
            one(file, float(f) * float(nc.n_bkg), sig[s], SIGNAL, nc.signal_toys)
            outputs[f"{s}@{f:g}"] = file
    info["runs"] = runs
    return outputs, info


def _publish(res: StageResult, out: Path) -> None:
    """Copy the results stage's small artefacts to ``out`` (the latest study view)."""
    import shutil

    for name in ("report.html", "results.json", "table.md", "table.csv"):
        src = res.dir / name
        if src.exists():
            shutil.copy2(src, out / name)
    figs = res.dir / "figures"
    if figs.is_dir():
        dst = out / "figures"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(figs, dst)
