"""The stages of a signal-aware study, each cached on disk under a key of its settings.

Stages (data flow one way)::

    split -> encoder/<configuration>/encoder<k> -> cathode/<configuration>/encoder<k>/instance<i>
          -> pseudo_data ----------------------------^
    encoder/ID/encoder0 -> information;  encoder/<configuration>/encoder0 -> map
    everything -> results (results.json, tables, figures, report.html)

* ``split``: every process of the event file split into encoder half (60/20/20) and
  pseudo-data half (:func:`~contrastx.signal_aware.datasets.split_rows`).
* ``encoder``: one per training configuration (ID, background-only, and IP / EP per
  tested signal) and encoder index: the encoder trains on the encoder half of the
  configuration's processes (group labels; held-out processes never read), then embeds
  the encoder test events and the pseudo-data half of the backgrounds and tested signals.
  The model file records the configuration and the file rows it trained on.
* ``pseudo_data``: the pseudo-data instances
  (:func:`~contrastx.signal_aware.datasets.draw_instance`).
* ``cathode``: per configuration, encoder and instance: one flow on the sidebands of the
  instance's background (the injected signal's few sideband events are left out of the
  flow's training and counted), then for every tested signal of the configuration and
  every injection the hybrid template (flow samples plus simulated SM Higgs) and the
  CWoLa BDTs; every BDT scores the instance's evaluation events (never in the encoder
  training or in the data). Injection 0 (no signal) also gives the sculpting checks.
* ``map``: a 2-D map (t-SNE by default) of the latent space of every configuration.
* ``information``: Appendix A's confusion matrices.
* ``results``: SIC at the working points with ensemble and instance spreads, the
  injection needed for the significance target, figures and the report.

The compute device (``run.device``) does not enter the keys.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from contrastx.cathode.search import torch_threads
from contrastx.events import Events
from contrastx.options import replace_flat
from contrastx.stagecache import StageCache, StageResult, file_fingerprint

from .config import SignalAwareConfig
from .configurations import TrainingConfiguration, training_configurations
from .datasets import PseudoDataInstance, StudySplit, draw_instance, split_rows

__all__ = ["CathodeJob", "SignalAwareStudy", "StudyEvents"]

logger = logging.getLogger(__name__)

_ENCODER_TAG, _CATHODE_TAG, _MAP_TAG, _INFO_TAG, _LATENT_TAG = 0xE1C, 0xCA7, 0x3A9, 0x1AF, 0x1A7


def _seed(*keys: int) -> int:
    """A 31-bit seed from integer keys (SeedSequence; stable across runs and platforms)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] >> 1)


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode())


@dataclasses.dataclass
class StudyEvents:
    """The event file of a study, read once: events, groups, m, SR/SB masks, yields."""

    events: Events
    groups: dict[str, str]
    m: np.ndarray
    in_sr: np.ndarray
    in_sb: np.ndarray
    selected_cross_section_fb: dict[str, float]

    @classmethod
    def read(cls, config: SignalAwareConfig) -> StudyEvents:
        """Read and check ``events.file`` against the study's processes and regions.

        Raises
        ------
        ValueError
            A named process missing from the file, a file without cross sections or
            process groups, or a layout without the resonant variable.
        """
        from contrastx.events.generators.diphoton import group_labels
        from contrastx.events.io import read_events

        ec = config.events
        path = Path(ec.file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"events.file not found: {path}")
        ev = read_events(path)
        names = list(ev.process_names)
        for what, procs in (
            ("events.signals", ec.signals),
            ("events.background_processes", ec.background_processes),
        ):
            missing = [p for p in procs if p not in names]
            if missing:
                raise ValueError(f"{path}: {what} names {missing[0]!r}, not in the file {names}")
        xs = ev.metadata.get("selected_cross_section_fb")
        if not isinstance(xs, dict) or any(xs.get(p) is None for p in ec.background_processes):
            raise ValueError(
                f"{path}: the file records no selected cross sections of the backgrounds "
                "(metadata selected_cross_section_fb): write it with contrastx-generate "
                "--dataset diphoton"
            )
        glabels, gnames = group_labels(ev)
        groups = {}
        for k, p in enumerate(names):
            g = glabels[ev.labels == k]
            if g.size:
                groups[p] = gnames[int(g[0])]
        names_ev = [f.name for f in ev.layout.event_features]
        if ec.resonant_variable not in names_ev:
            raise ValueError(
                f"events.resonant_variable {ec.resonant_variable!r} is not an event feature "
                f"of layout {ev.layout.name!r} ({names_ev})"
            )
        m = ev.event_feature(ec.resonant_variable).astype(np.float64)
        regions = config.cathode.regions()
        return cls(
            events=ev,
            groups=groups,
            m=m,
            in_sr=regions.signal_mask(m),
            in_sb=regions.sideband_mask(m),
            selected_cross_section_fb={p: float(v) for p, v in xs.items() if v is not None},
        )

    def expected_yields(self, processes: Any, luminosity_fb: float) -> dict[str, float]:
        """sigma x L after the selection of every named process."""
        return {p: self.selected_cross_section_fb[p] * luminosity_fb for p in processes}

    def rows_of(self, processes: Any, rows: np.ndarray) -> np.ndarray:
        """The ``rows`` whose process is one of ``processes``."""
        labels = [self.events.process_names.index(p) for p in processes]
        return rows[np.isin(self.events.labels[rows], labels)]


class CathodeJob(NamedTuple):
    """What one cathode stage needs: configuration, encoder, instance, signals, upstream."""

    configuration: TrainingConfiguration
    encoder_index: int
    instance: int
    signals: list[str]
    encoder: StageResult
    split: StageResult
    pseudo: StageResult


class SignalAwareStudy(StageCache):
    """Runs (or skips) the stages of a signal-aware study.

    Parameters
    ----------
    config : SignalAwareConfig
    log : callable, optional
        Where progress messages go (default: this module's logger at INFO).
    """

    def __init__(
        self, config: SignalAwareConfig, *, log: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(config.out_dir, log if log is not None else logger.info)
        self.config = config
        self._data: StudyEvents | None = None

    @property
    def data(self) -> StudyEvents:
        """The event file, read on first use."""
        if self._data is None:
            self._data = StudyEvents.read(self.config)
        return self._data

    def configurations(self) -> dict[str, dict[str, TrainingConfiguration]]:
        """``{signal: {kind: TrainingConfiguration}}`` of the study."""
        ec = self.config.events
        d = self.data
        return training_configurations(
            ec.configurations,
            ec.signals,
            list(d.events.process_names),
            d.groups,
            ec.background_processes,
        )

    def _file_settings(self) -> dict[str, Any]:
        fp = file_fingerprint(self.config.events.file)
        return {"path": fp["path"], "size": fp["size"], "mtime_ns": fp["mtime_ns"]}

    # ------------------------------------------------------------------ stages
    def split_stage(self) -> StageResult:
        """Encoder half (60/20/20) and pseudo-data half of every process."""
        ec = self.config.events
        settings = {
            "file": self._file_settings(),
            "seed": self.config.run.seed,
            "encoder_fraction": ec.encoder_fraction,
            "test_fraction": ec.test_fraction,
            "max_encoder_events": ec.max_encoder_events,
        }

        def body(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
            d = self.data
            sp = split_rows(
                d.events.labels,
                d.events.process_names,
                seed=self.config.run.seed,
                encoder_fraction=ec.encoder_fraction,
                test_fraction=ec.test_fraction,
                max_encoder_events=ec.max_encoder_events or None,
            )
            sp.save(folder / "split.npz")
            counts = {}
            for k, p in enumerate(d.events.process_names):
                counts[p] = {
                    role: int((d.events.labels[getattr(sp, role)] == k).sum())
                    for role in ("encoder_train", "encoder_test", "pseudo", "unused")
                }
            return {"split": "split.npz"}, {"counts": counts, "groups": d.groups}

        return self.stage("split", "", settings, [], body)

    def encoder_stage(self, cfg: TrainingConfiguration, k: int, split: StageResult) -> StageResult:
        """Train encoder ``k`` of configuration ``cfg`` and embed the study's events."""
        c = self.config
        seed = _seed(c.run.seed, _ENCODER_TAG, k)
        tc = c.train_config(seed)
        settings = {
            "configuration": cfg.record(),
            "encoder": k,
            "train": {**tc.to_dict(), "device": None},
            "signals": list(c.events.signals),
            "background_processes": list(c.events.background_processes),
            "latent": c.run.latent,
        }
        label = f"[encoder/{cfg.name}/encoder{k}]"

        def body(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
            from contrastx.embed import Trainer, load_model

            d = self.data
            sp = StudySplit.load(split.path("split"))
            rows = d.rows_of(cfg.trained, sp.encoder_train)
            train_events = _group_labelled(d, rows)
            with torch_threads(c.run.torch_threads):
                self.say(
                    f"{label} training on {rows.size} events of {len(cfg.trained)} processes "
                    f"({len(train_events.process_names)} groups; held out: "
                    f"{', '.join(cfg.held_out) or 'none'})"
                )
                t0 = time.perf_counter()
                trainer = Trainer(tc).fit(
                    train_events,
                    checkpoint=folder / "checkpoint.pt",
                    resume=True,
                    event_file=c.events.file,
                    event_rows=rows,
                )
                trainer.metadata_["training_configuration"] = cfg.record()
                trainer.save(folder / "model.pt")
                train_seconds = time.perf_counter() - t0
                (folder / "checkpoint.pt").unlink(missing_ok=True)
                model = load_model(folder / "model.pt")
                emb_rows = _embedded_rows(d, sp, c.events)
                self.say(f"{label} embedding {emb_rows.size} events")
                t1 = time.perf_counter()
                z = model.embed(
                    d.events[emb_rows], device=c.run.device, sample_seed=_latent_seed(c, seed)
                )
            np.savez(folder / "latent.npz", rows=emb_rows, z=z.astype(np.float32))
            info = {
                "n_train_events": int(rows.size),
                "classes": list(train_events.process_names),
                "train_seconds": train_seconds,
                "embed_seconds": time.perf_counter() - t1,
                "history": trainer.history_,
                "configuration": cfg.record(),
            }
            return {"model": "model.pt", "latent": "latent.npz"}, info

        return self.stage("encoder", f"{cfg.name}/encoder{k}", settings, [split], body)

    def pseudo_data_stage(self, split: StageResult) -> StageResult:
        """Every pseudo-data instance: background at expected yields, injections."""
        c = self.config
        pd = c.pseudo_data
        settings = {
            "pseudo_data": dataclasses.asdict(pd),
            "seed": c.run.seed,
            "signals": list(c.events.signals),
            "background_processes": list(c.events.background_processes),
            "regions": [list(c.cathode.signal_region), list(c.cathode.sidebands)],
        }

        def body(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
            d = self.data
            sp = StudySplit.load(split.path("split"))
            yields = d.expected_yields(c.events.background_processes, pd.luminosity_fb)
            outputs, summaries = {}, []
            for i in range(pd.instances):
                inst = draw_instance(
                    d.events.labels,
                    d.events.process_names,
                    d.in_sr,
                    sp.pseudo,
                    yields,
                    c.events.signals,
                    pd.injections,
                    seed=c.run.seed,
                    instance=i,
                    min_eval_signal=pd.min_eval_signal,
                )
                inst.save(folder / f"instance{i}.npz")
                outputs[f"instance{i}"] = f"instance{i}.npz"
                summaries.append(inst.summary())
            info = {"expected_yields": yields, "instances": summaries}
            self.say(
                f"[pseudo_data] {pd.instances} instances at {pd.luminosity_fb:g} fb^-1: "
                f"{summaries[0]['n_background']} background events, "
                f"{summaries[0]['n_background_sr']} in the signal region"
            )
            return outputs, info

        return self.stage("pseudo_data", "", settings, [split], body)

    def cathode_stage(self, job: CathodeJob) -> StageResult:
        """CATHODE in the latent space of one encoder on one pseudo-data instance."""
        return self.stage(*self._cathode_spec(job))

    def _cathode_spec(
        self, job: CathodeJob
    ) -> tuple[str, str, dict[str, Any], list[StageResult], Callable]:
        """``(stage, name, settings, upstream, body)`` of :meth:`cathode_stage`."""
        cfg, k, instance, signals, encoder, split, pseudo = job
        c = self.config
        opts = replace_flat(c.cathode, device=c.run.device)
        settings = {
            "cathode": {**dataclasses.asdict(c.cathode), "device": None},
            "signals": signals,
            "instance": instance,
            "resonant_backgrounds": list(c.events.resonant_backgrounds),
            "luminosity_fb": c.pseudo_data.luminosity_fb,
            "seed": c.run.seed,
            "outputs": 2,  # the layout of scores.npz
        }
        name = f"{cfg.name}/encoder{k}/instance{instance}"
        label = f"[cathode/{name}]"

        def body(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
            return _run_cathode(
                self, folder, label, opts, k, instance, signals, encoder, split, pseudo
            )

        return "cathode", name, settings, [encoder, split, pseudo], body

    def _cathode_stages(self, jobs: list[CathodeJob]) -> list[StageResult]:
        """Run the cathode stages ``jobs`` where
        ``[executor]`` says: in this process, in local worker processes or on Dask.

        Every stage is seeded by its own settings and writes its own folder, so the
        results do not depend on where it ran; finished stages are skipped anywhere.
        """
        ex = self.config.executor
        if ex.executor == "inline":
            return [self.cathode_stage(job) for job in jobs]
        todo = [j for j in range(len(jobs)) if not self._stage_done(jobs[j])]
        out: dict[int, StageResult] = {
            j: self.cathode_stage(jobs[j]) for j in range(len(jobs)) if j not in todo
        }
        self.say(f"[cathode] {len(todo)} stage(s) on the {ex.executor} executor")
        t0 = time.perf_counter()
        from contrastx.distributed.tasks import map_tasks

        tasks = [(self.config, jobs[j]) for j in todo]
        for n, (t, res) in enumerate(map_tasks(ex, _cathode_task, tasks), 1):
            out[todo[t]] = self._finished(res, n, len(todo), t0)
        return [out[j] for j in range(len(jobs))]

    def _stage_done(self, job: CathodeJob) -> bool:
        """Whether the cathode stage of ``job`` finished before (its marker holds its key)."""
        return self.is_done(*self._cathode_spec(job)[:4])

    def _finished(self, res: StageResult, n: int, total: int, t0: float) -> StageResult:
        elapsed = time.perf_counter() - t0
        self.say(
            f"[cathode/{res.name}] finished in {res.seconds:.1f} s ({n}/{total}; "
            f"{elapsed:.0f} s elapsed, about {elapsed / n * (total - n):.0f} s to go)"
        )
        return res

    def map_stage(self, cfg: TrainingConfiguration, encoder: StageResult, split: StageResult):
        """2-D map of the latent space (encoder test events, per process group)."""
        rc = self.config.results
        settings = {"method": rc.map_method, "events": rc.map_events, "seed": self.config.run.seed}

        def body(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
            from contrastx.plots.latent import project_2d

            d = self.data
            sp = StudySplit.load(split.path("split"))
            z, rows = _latent(encoder, sp.encoder_test)
            ev = _group_labelled(d, rows)
            rng = np.random.default_rng(_seed(self.config.run.seed, _MAP_TAG))
            keep = []
            for g in range(len(ev.process_names)):
                idx = np.flatnonzero(ev.labels == g)
                keep.append(rng.permutation(idx)[: rc.map_events])
            keep = np.sort(np.concatenate(keep))
            t0 = time.perf_counter()
            xy, method = project_2d(z[keep], rc.map_method, seed=self.config.run.seed)
            np.savez(
                folder / "map.npz",
                xy=xy,
                labels=ev.labels[keep],
                groups=np.asarray(ev.process_names, dtype=str),
            )
            return {"map": "map.npz"}, {"method": method, "seconds": time.perf_counter() - t0}

        return self.stage("map", cfg.name, settings, [encoder, split], body)

    def information_stage(self, encoder: StageResult, split: StageResult) -> StageResult:
        """Appendix A: BDT on the ID latent, BDT on raw features, supervised transformer."""
        c = self.config
        epochs = c.results.supervised_epochs or c.train_config(0).epochs
        settings = {
            "seed": c.run.seed,
            "supervised_epochs": epochs,
            "train": c.train,
            "latent": c.run.latent,
            "outputs": 2,  # the BDT on the latent means
        }

        def body(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
            from .information import (
                bdt_confusion,
                information_classes,
                raw_physics_features,
                supervised_confusion,
            )

            d = self.data
            sp = StudySplit.load(split.path("split"))
            seed = _seed(c.run.seed, _INFO_TAG)
            z_test, test_rows = _latent(encoder, sp.encoder_test)
            train_rows = sp.encoder_train
            # The ID encoder trained on encoder_train: its latent of those events is the
            # BDT's training set; embed them now (they are not in latent.npz).
            from contrastx.embed import load_model

            model = load_model(encoder.path("model"))
            ev_train, ev_test = d.events[train_rows], d.events[test_rows]
            z_train = model.embed(
                ev_train,
                device=c.run.device,
                sample_seed=_latent_seed(c, _seed(c.run.seed, _INFO_TAG, 1)),
            )
            y_train, names = information_classes(ev_train)
            y_test, names_test = information_classes(ev_test)
            if list(names) != list(names_test):
                raise RuntimeError("encoder training and test events have different classes")
            out: dict[str, Any] = {}
            t0 = time.perf_counter()
            self.say("[information] BDT on the ID latent features")
            out["BDT on the ID latent space"] = bdt_confusion(
                z_train, y_train, z_test, y_test, names, seed=seed
            )
            if c.run.latent == "sample":
                # The draws add noise to the means: the means show what the encoder kept.
                self.say("[information] BDT on the ID latent means")
                out["BDT on the ID latent means"] = bdt_confusion(
                    model.embed(ev_train, device=c.run.device),
                    y_train,
                    model.embed(ev_test, device=c.run.device),
                    y_test,
                    names,
                    seed=seed,
                )
            self.say("[information] BDT on raw physics features")
            x_tr, feats = raw_physics_features(ev_train)
            x_te, _ = raw_physics_features(ev_test)
            out["BDT on raw physics features"] = bdt_confusion(
                x_tr, y_train, x_te, y_test, names, seed=seed
            )
            out["BDT on raw physics features"]["features"] = list(feats)
            self.say(f"[information] fully supervised transformer ({epochs} epochs)")
            tc = c.train_config(seed, epochs=epochs)
            out["fully supervised transformer"] = supervised_confusion(
                ev_train, y_train, ev_test, y_test, names, tc
            )
            from contrastx._json import dumps

            (folder / "information.json").write_text(dumps(out, indent=2))
            return {"information": "information.json"}, {"seconds": time.perf_counter() - t0}

        return self.stage("information", "", settings, [encoder, split], body)

    # --------------------------------------------------------------------- run
    def run(self, *, until: str | None = None) -> dict[str, StageResult]:
        """Run every stage (or up to ``until``: split, encoder, cathode, results)."""
        order = ("split", "encoder", "cathode", "results")
        if until is not None and until not in order:
            raise ValueError(f"until must be one of {order}; got {until!r}")
        stop = order.index(until) if until else len(order) - 1
        t0 = time.perf_counter()
        self._log(action="begin", config=self.config.to_dict())
        self._run(stop)
        total = time.perf_counter() - t0
        self._log(action="end", seconds=total)
        self.say(f"signal-aware study finished in {total:.1f} s; outputs in {self.out}")
        return self.results

    def _run(self, stop: int) -> None:
        from .results import results_stage

        c = self.config
        sp = self.results["split"] = self.split_stage()
        if stop < 1:
            return
        per_signal = self.configurations()
        unique: dict[str, TrainingConfiguration] = {}
        for by_kind in per_signal.values():
            for cfg in by_kind.values():
                unique.setdefault(cfg.name, cfg)
        encoders: dict[str, list[StageResult]] = {}
        for cname, cfg in unique.items():
            encoders[cname] = []
            for k in range(c.run.encoders):
                res = self.encoder_stage(cfg, k, sp)
                self.results[f"encoder/{res.name}"] = res
                encoders[cname].append(res)
        if stop < 2:
            return
        pseudo = self.results["pseudo_data"] = self.pseudo_data_stage(sp)
        jobs = []
        for cname, cfg in unique.items():
            signals = [s for s, by_kind in per_signal.items() if cname in _names(by_kind)]
            for k in range(c.run.encoders):
                for i in range(c.pseudo_data.instances):
                    jobs.append(CathodeJob(cfg, k, i, signals, encoders[cname][k], sp, pseudo))
        done = self._cathode_stages(jobs)
        cathode: dict[str, list[list[StageResult]]] = {}
        for job, res in zip(jobs, done):
            cname, k, i = job.configuration.name, job.encoder_index, job.instance
            self.results[f"cathode/{res.name}"] = res
            per_k = cathode.setdefault(cname, [])
            if i == 0:
                per_k.append([])
            per_k[k].append(res)
        maps = {}
        for cname, cfg in unique.items():
            maps[cname] = self.results[f"map/{cname}"] = self.map_stage(cfg, encoders[cname][0], sp)
        info = None
        if c.results.information and "ID" in unique:
            info = self.results["information"] = self.information_stage(encoders["ID"][0], sp)
        if stop < 3:
            return
        self.results["results"] = results_stage(
            self, per_signal, unique, encoders, cathode, maps, info, sp, pseudo
        )


def _latent_seed(c: SignalAwareConfig, seed: int) -> int | None:
    """Seed of the latent draws (``run.latent = "sample"``), None for the means."""
    return _seed(seed, _LATENT_TAG) if c.run.latent == "sample" else None


_WORKER_STUDY: dict[str, SignalAwareStudy] = {}
"""The study of a worker process (events read once per process and config)."""


def _cathode_task(config: SignalAwareConfig, job: CathodeJob) -> StageResult:
    """One cathode stage in a worker process (local pool or Dask)."""
    from contrastx.stagecache import config_hash

    key = config_hash(config.to_dict())
    study = _WORKER_STUDY.get(key)
    if study is None:
        _WORKER_STUDY.clear()
        study = _WORKER_STUDY[key] = SignalAwareStudy(config)
    return study.cathode_stage(job)


def _names(by_kind: dict[str, TrainingConfiguration]) -> set[str]:
    return {cfg.name for cfg in by_kind.values()}


def _group_labelled(d: StudyEvents, rows: np.ndarray) -> Events:
    """The events of ``rows`` labelled by process group (groups in file order)."""
    ev = d.events[rows]
    procs = ev.process_names
    groups = list(dict.fromkeys(d.groups[p] for p in procs if (ev.labels == procs.index(p)).any()))
    lut = np.array(
        [groups.index(d.groups[p]) if d.groups.get(p) in groups else -1 for p in procs] + [-1],
        dtype=np.int64,
    )
    return dataclasses.replace(ev, labels=lut[ev.labels], process_names=tuple(groups))


def _embedded_rows(d: StudyEvents, sp: StudySplit, ec: Any) -> np.ndarray:
    """Rows every encoder embeds: encoder test events, and the pseudo-data half of the
    backgrounds and tested signals."""
    pseudo = d.rows_of([*ec.background_processes, *ec.signals], sp.pseudo)
    return np.union1d(sp.encoder_test, pseudo)


def _latent(encoder: StageResult, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latent vectors of file ``rows`` (sorted, every one embedded by the encoder stage)."""
    with np.load(encoder.path("latent")) as f:
        all_rows, z = f["rows"], f["z"]
    rows = np.asarray(rows)
    idx = np.searchsorted(all_rows, rows)
    if rows.size and (idx.max() >= all_rows.size or not np.array_equal(all_rows[idx], rows)):
        raise RuntimeError(f"{encoder.dir}: latent.npz lacks some of the requested rows")
    return z[idx].astype(np.float64), rows


def _run_cathode(
    study: SignalAwareStudy,
    folder: Path,
    label: str,
    opts: Any,
    k: int,
    instance: int,
    signals: list[str],
    encoder: StageResult,
    split: StageResult,
    pseudo: StageResult,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cathode stage's body (see :meth:`SignalAwareStudy.cathode_stage`)."""
    from contrastx.cathode import Cathode, ConditionalFlow, TemplateComponent

    c = study.config
    d = study.data
    say = study.say
    sp = StudySplit.load(split.path("split"))
    inst = PseudoDataInstance.load(pseudo.path(f"instance{instance}"))
    regions = opts.regions()
    lo, hi = regions.signal_region

    # Hybrid template: simulated resonant SM backgrounds (encoder test events in the SR)
    # with their expected SR yields at the study's luminosity.
    extras = []
    yields = d.expected_yields(c.events.resonant_backgrounds, c.pseudo_data.luminosity_fb)
    for p in c.events.resonant_backgrounds:
        rows_p = d.rows_of([p], sp.encoder_test)
        sr_p = rows_p[d.in_sr[rows_p]]
        if sr_p.size == 0:
            raise ValueError(f"no encoder test events of {p!r} in the signal region")
        z_p, _ = _latent(encoder, sr_p)
        extras.append(
            TemplateComponent(
                x=z_p, m=d.m[sr_p], expected_events=yields[p] * sr_p.size / rows_p.size, name=p
            )
        )

    # Evaluation events (SR only): the instance's unused background (weighted) and each
    # signal's never-injected events.
    eval_b = inst.eval_background
    keep = d.in_sr[eval_b]
    eval_b, w_b = eval_b[keep], inst.eval_background_weights[keep]
    z_eval_b, _ = _latent(encoder, eval_b)
    z_eval_s = {s: _latent(encoder, inst.eval_signal(s))[0] for s in signals}

    bkg = inst.background
    z_bkg, _ = _latent(encoder, bkg)
    m_bkg = d.m[bkg]
    sb = d.in_sb[bkg]
    flow_seed = _seed(c.run.seed, _CATHODE_TAG, k, instance)
    say(f"{label} flow on {int(sb.sum())} sideband events")
    t0 = time.perf_counter()
    with torch_threads(opts.torch_threads):
        flow = ConditionalFlow(opts.flow).fit(
            z_bkg[sb], m_bkg[sb], seed=flow_seed, device=opts.device, progress=False
        )
    flow.save(folder / "flow.pt")
    info: dict[str, Any] = {"flow_seconds": time.perf_counter() - t0, "n_sideband": int(sb.sum())}

    arrays: dict[str, np.ndarray] = {
        "eval_background/rows": eval_b,
        "eval_background/weights": w_b,
    }
    for s in signals:
        arrays[f"eval_signal/{s}/rows"] = inst.eval_signal(s)

    def fit(x: np.ndarray, m: np.ndarray, seed: int) -> Cathode:
        o = replace_flat(opts, seed=seed)
        return Cathode(o).fit(x, m, flow=flow, extra_background=extras, progress=False)

    points = []
    r_zero = [r for r in inst.injections if r == 0.0]
    t1 = time.perf_counter()
    if r_zero:
        # No signal: one classifier serves every signal; the sculpting checks.
        cath = fit(z_bkg, m_bkg, _seed(c.run.seed, _CATHODE_TAG, k, instance, 0))
        scores_b = cath.classifier_.predict_models(z_eval_b)
        for s in signals:
            arrays[f"scores/0/{s}/background"] = scores_b
            arrays[f"scores/0/{s}/signal"] = cath.classifier_.predict_models(z_eval_s[s])
        sculpt = cath.sculpting_test(z_bkg[d.in_sr[bkg]])
        arrays["sculpting/fpr"], arrays["sculpting/tpr"] = sculpt.roc.fpr, sculpt.roc.tpr
        info["sculpting"] = sculpt.as_dict()
        info["mass_sculpting"] = [
            {
                "efficiency": chk["efficiency"],
                "threshold": chk["threshold"],
                **{r: chk[r].as_dict() for r in ("signal_region", "sidebands")},
            }
            for chk in cath.mass_sculpting()
        ]
        if instance == 0:
            arrays["projections/background"] = z_bkg[d.in_sr[bkg]]
        points.append(
            {"signal": None, "injection": 0.0, "n_sr_data": int(cath.counts_["signal_region"])}
        )
    for s in signals:
        for ri, r in enumerate(inst.injections):
            if r == 0.0:
                continue
            rows_s = inst.injected(s, r)
            x = np.concatenate([z_bkg, _latent(encoder, rows_s)[0]])
            m = np.concatenate([m_bkg, d.m[rows_s]])
            seed = _seed(c.run.seed, _CATHODE_TAG, k, instance, _name_key(s), ri)
            cath = fit(x, m, seed)
            arrays[f"scores/{r:g}/{s}/background"] = cath.classifier_.predict_models(z_eval_b)
            arrays[f"scores/{r:g}/{s}/signal"] = cath.classifier_.predict_models(z_eval_s[s])
            n_sb_sig = int(d.in_sb[rows_s].sum())
            points.append(
                {
                    "signal": s,
                    "injection": r,
                    "n_signal_sr": int(d.in_sr[rows_s].sum()),
                    "n_signal_sb_not_in_flow": n_sb_sig,
                    "n_sr_data": int(cath.counts_["signal_region"]),
                }
            )
            if instance == 0 and r == c.results.nominal_injection and s == signals[0]:
                # Fig. 1: SR data with the signal, its true background, template, signal.
                arrays["projections/data"] = x[cath.signal_mask_]
                arrays["projections/template"] = cath.x_template_
                arrays["projections/template_weights"] = cath.w_template_
                arrays["projections/signal"] = _latent(encoder, rows_s[d.in_sr[rows_s]])[0]
                info["projections_signal"] = s
            say(
                f"{label} {s} at S/sqrt(B) = {r:g}: {points[-1]['n_signal_sr']} signal events "
                f"in the SR ({time.perf_counter() - t1:.0f} s so far)"
            )
    info["classifier_seconds"] = time.perf_counter() - t1
    info["points"] = points
    info["signal_region"] = [lo, hi]
    np.savez(folder / "scores.npz", **arrays)
    return {"scores": "scores.npz", "flow": "flow.pt"}, info
