"""mmgain from Python: :func:`analyze` runs the study, :func:`load` reads a run folder back, and
both return a :class:`Study`.  The CLI is built on the same functions, so every option has one
meaning, one default and one check.

    >>> import mmgain
    >>> study = mmgain.analyze({"image": X_img, "text": X_txt}, y=labels)   # doctest: +SKIP
    >>> study.verdicts                                                     # doctest: +SKIP
"""
from __future__ import annotations

import csv
import hashlib
import io
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .analysis import analyze as _analyze_result
from .analysis.forecast import parse_costs
from .catalog import EXPERIMENTS
from .data.dataset import MultimodalDataset
from .data.sources import SOURCES, DataSource, is_per_seed
from .errors import DataError, DataWarning, OutputError, SpecError, Terminated, UserError
from .files import is_output_name, read_json, read_regular, write_json
from .report.html import build_report, cards_html
from .report.layouts import LAYOUTS
from .report.outputs import write_run_folder
from .report.schema import validate_folder_files
from .report.sections import sections_text
from .report.tables import wrap_text
from .run.backends import get_backend
from .run.folder import prepare_out_dir
from .run.runner import RunInterrupted, assemble, plan_run, run_experiment
from .run.store import FolderLock, ResultStore
from .spec import ExperimentSpec
from .training.batched import resolve_device, set_threads
from .models.components import ENCODERS, OwnEncoders, resolve_widths
from .training.protocol import PROTOCOLS

__all__ = ["Study", "analyze", "load", "resume", "configure", "Execution"]

PROTOCOL_OPTIONS = ("epochs", "lr", "batch_size", "hidden", "activation", "encoder", "fusion", "head", "head_width",
                    "head_activation", "precision", "probe_epochs")


# ------------------------------------------------------------------ the spec from options


# `--quick`: each modality added to all the others (the primary questions) and the same at a tenth
# of the rows, so that the verdicts come with "from how much data on".
QUICK = {"subsets": "leave-one-out", "ratios": (0.1, 1.0)}


def configure(spec: ExperimentSpec, *, seeds=None, subsets=None, protocol=None, theory=None, ratios=None,
              grid=None, margin=None, null_control=None, cv=None, primary=None, probes=None, data_args=None,
              costs=None, budget=None, target_n=None, quick: bool = False, quiet: bool = False, **protocol_options) -> ExperimentSpec:
    """``spec`` with the user's options, as the CLI's flags and :func:`analyze`'s keywords give
    them (None: the spec's own).  ``protocol_options`` are the protocol overrides
    (:data:`PROTOCOL_OPTIONS`).  ``quick``: the :data:`QUICK` design (leave-one-out subsets at two
    sample sizes) where ``subsets`` / ``ratios`` are not given: a first answer for every modality
    at a small fraction of the full lattice's work."""
    unknown = set(protocol_options) - set(PROTOCOL_OPTIONS)
    if unknown:
        raise SpecError(f"unknown option(s) {', '.join(sorted(unknown))}; protocol options are "
                        f"{', '.join(PROTOCOL_OPTIONS)}")
    overrides = dict(spec.protocol_overrides)
    overrides.update({k: v for k, v in protocol_options.items() if v is not None})
    epochs = protocol_options.get("epochs")
    if epochs is not None and protocol_options.get("probe_epochs") is None:
        preset = PROTOCOLS.get(protocol or spec.protocol).probe_epochs
        if preset is not None and preset > epochs and not quiet:
            print(f"mmgain: --epochs {epochs} is below the preset's probe budget ({preset}); "
                  f"probing after {epochs} epochs", file=sys.stderr)
    if grid == "dense" and ratios:
        raise SpecError("--grid dense chooses the sample sizes itself; leave out --ratios")
    if quick:
        subsets = subsets or QUICK["subsets"]
        ratios = ratios or (None if grid else QUICK["ratios"])
    if isinstance(primary, str):
        primary = tuple(x.strip() for x in primary.split(",") if x.strip()) or None
    if isinstance(probes, str):
        probes = tuple(x.strip() for x in probes.split(",") if x.strip())
    if isinstance(subsets, (list, tuple)):
        subsets = ",".join(subsets)
    merged = dict(spec.data_args)
    merged.update({k: v for k, v in (data_args or {}).items() if v is not None})
    return spec.with_(seeds=seeds, subsets=subsets, protocol=protocol, protocol_overrides=overrides,
                      theory=theory or None, ratios=tuple(float(r) for r in ratios) if ratios else None,
                      grid=grid, margin=margin, null_control=null_control or None, cv=cv,
                      primary=tuple(primary) if primary else None, data_args=merged,
                      probes=tuple(probes) if probes else None, costs=parse_costs(costs),
                      budget=None if budget is None else float(budget),
                      target_n=None if target_n is None else int(target_n))


# ------------------------------------------------------------------ data given in memory


def _as_dataset(data, y, task: str | None, modalities: Mapping[str, list] | None) -> MultimodalDataset:
    """A dict of 2-D arrays (modality → rows × features, in the dict's order) or a pandas
    DataFrame with ``modalities`` (modality → its columns), and the target ``y`` (an array, or
    the DataFrame's column name)."""
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):          # a pandas DataFrame
        if not modalities:
            raise SpecError("a DataFrame needs modalities={'name': [columns], …}: which columns form which "
                            "modality")
        missing = [c for cols in modalities.values() for c in cols if c not in data.columns]
        if missing:
            raise DataError(f"DataFrame: no column(s) {', '.join(map(str, missing[:5]))}")
        if isinstance(y, str):
            if y not in data.columns:
                raise DataError(f"DataFrame: no target column {y!r}")
            y = data[y].to_numpy()
        arrays = {str(k): data[list(cols)].to_numpy() for k, cols in modalities.items()}
    elif isinstance(data, Mapping):
        arrays = {str(k): np.asarray(v) for k, v in data.items()}
    else:
        raise SpecError(f"data must be a path, a registered dataset name, a dict of 2-D arrays or a pandas "
                        f"DataFrame, got {type(data).__name__}")
    if y is None:
        raise SpecError("data given in memory need the target: y=…")
    y = np.asarray(y)
    for k, v in arrays.items():
        if v.ndim != 2:
            raise DataError(f"modality {k!r}: expected a 2-D array (rows × features), got shape {v.shape}")
    return MultimodalDataset(arrays, y, task=task or "classification", name="in-memory", source="in-memory")


def _register_memory(ds: MultimodalDataset) -> str:
    """Register data given in memory as a data source named by its content, so that the one
    runner reads it like any other source (the name goes into run.json; a later ``mmgain resume``
    in another process cannot see the arrays, and says so)."""
    h = hashlib.sha256()
    ds.update_hash(h)
    h.update(ds.task.encode())
    name = f"memory:{h.hexdigest()[:16]}"
    if name not in SOURCES:
        SOURCES.register(name, DataSource(lambda seed, **kw: ds, per_seed=False,
                                          description="arrays given to mmgain.analyze in this process"))
    return name


# ------------------------------------------------------------------ execution


@dataclass
class Execution:
    """Where and how a run executes (the CLI's execution flags; :func:`analyze`'s keywords)."""

    device: str = "auto"
    threads: int | None = None
    backend: str = "local"
    address: str | None = None
    memory_gb: float | None = None
    allow_large: bool = False
    progress: bool = True
    out: Path | None = None
    overwrite: bool = False
    resume: Path | None = None
    tables: bool = True           # print the layout's tables at the end (the CLI)

    def __post_init__(self) -> None:
        if self.memory_gb is not None and not self.memory_gb > 0:
            raise SpecError(f"--memory-gb must be > 0, got {self.memory_gb}")


def notes_of(caught) -> list[str]:
    """The data warnings recorded while a run ran: printed, and kept in run.json."""
    return list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, DataWarning)))


def read_run(folder: Path) -> dict:
    """A run folder's run.json, for ``resume`` and ``collect``."""
    if not ResultStore(folder).exists():
        raise OutputError(f"{folder}: no mmgain run store here (no store/manifest.json); "
                          "only runs of mmgain ≥ 0.1 with a store can be resumed or collected")
    run = read_json(folder / "run.json", "run.json")
    if not isinstance(run, dict) or not isinstance(run.get("spec"), dict):
        raise OutputError(f"{folder / 'run.json'}: not an mmgain run.json (no 'spec' object)")
    return run


def execute(spec: ExperimentSpec, how: Execution) -> tuple[int, Any]:
    """Run a spec into a run folder; run.json says 'running', then 'complete', 'diverged',
    'failed' or 'interrupted'.  Every finished chunk is committed to the folder's store at
    once, so an interrupted run keeps what it did and ``mmgain resume`` continues it.  A
    command that fails on the user's input before anything was trained leaves no folder.
    Returns the exit status and the (analysed) result, or None."""
    if spec.data not in SOURCES and not Path(spec.data).exists():   # a typo makes no run folder
        if spec.data.startswith("memory:"):
            raise DataError(f"{spec.data}: this run's data were given in memory to mmgain.analyze in another "
                            "process; give them again (mmgain.analyze(..., out=folder, overwrite=True))")
        raise DataError(f"{spec.data}: no such file or folder, and no registered dataset of that name "
                        f"({', '.join(n for n in SOURCES.names() if not n.startswith('memory:'))})")
    resolve_device(how.device)      # a bad --device is answered before any folder is made
    threads = set_threads(how.threads)
    backend = get_backend(how.backend, how.address, threads)
    previous: dict = {}
    if how.resume is not None:
        if how.out is not None and Path(how.out).resolve() != Path(how.resume).resolve():
            raise SpecError(f"--out {how.out} and --resume {how.resume} name different folders; give one")
        previous = read_run(how.resume)
        out, created, lock = Path(how.resume), False, FolderLock(how.resume).acquire()
    else:
        out, created, lock = prepare_out_dir(how.out, spec.name, overwrite=how.overwrite,
                                             data=None if spec.data in SOURCES else spec.data)
    try:
        return _execute(spec, how, out, created, previous, threads, backend,
                        None if how.memory_gb is None else how.memory_gb * 1e9)
    finally:
        lock.release()


def _execute(spec, how: Execution, out: Path, created: bool, previous: dict, threads: int, backend,
             memory) -> tuple[int, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    status = {"status": "running", "started": previous.get("started", now), "command": sys.argv,
              "spec": spec.to_dict(), "threads": threads, "backend": how.backend}
    if previous:
        status["resumed"] = previous.get("resumed", []) + [now]
        status["commands"] = previous.get("commands", [previous.get("command")]) + [sys.argv]
    write_json(out / "run.json", status)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        try:
            result = run_experiment(spec, device=how.device, progress=how.progress, allow_large=how.allow_large,
                                    memory_budget=memory, store=ResultStore(out), backend=backend)
        except UserError:
            if created:              # nothing was trained: leave nothing behind
                shutil.rmtree(out, ignore_errors=True)
            elif previous:           # a refused resume leaves the folder as it was
                write_json(out / "run.json", previous)
            else:
                write_json(out / "run.json", {**status, "status": "failed"})
            raise
        except RunInterrupted as exc:
            notes = notes_of(caught)
            how_ = "SIGTERM" if isinstance(exc.cause, Terminated) else "SIGINT"
            stopped = {**status, "status": "interrupted", "interrupted_by": how_,
                       "chunks_done": exc.done, "chunks": exc.total}
            if exc.partial is not None:
                write_run_folder(out, exc.partial, stopped, notes, figures=False)
            else:
                write_json(out / "run.json", stopped)
            kept = (f"what finished is kept in {out}/ (results.csv holds it)" if (out / "results.csv").is_file()
                    else f"nothing had finished; {out}/run.json records the run")
            print(f"\nmmgain: interrupted ({how_}) after {exc.done} of {exc.total} chunks; {kept}. "
                  f"Continue with: mmgain resume {out}", file=sys.stderr)
            return (143 if how_ == "SIGTERM" else 130), exc.partial
        except BaseException as exc:
            write_json(out / "run.json", {**status, "status": "failed" if not isinstance(exc, KeyboardInterrupt)
                                          else "interrupted", "error": f"{type(exc).__name__}: {exc}"})
            raise
    if (previous.get("status") == "complete" and result.trained_chunks == 0      # checked, and nothing to do
            and all((out / f).is_file() for f in previous.get("files") or ["results.csv"] if is_output_name(f))):
        write_json(out / "run.json", previous)
        print(f"mmgain: {out} holds a complete run (finished {previous.get('finished', '?')}); nothing to resume, "
              f"nothing changed. Its report: mmgain report {out}", file=sys.stderr)
        return 0, None
    notes = notes_of(caught)
    for w in caught:
        if not issubclass(w.category, DataWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for note in notes:
        print(f"mmgain: warning: {note}", file=sys.stderr)
    all_diverged = bool((result.metrics["diverged"] > 0).all())
    try:                 # summaries, figures and report are part of the run: run.json never stays 'running'
        files = write_run_folder(out, result, {**status, "status": "diverged" if all_diverged else "complete"},
                                 notes, figures=not all_diverged)
    except BaseException as exc:
        write_json(out / "run.json", {**status, "status": "interrupted" if isinstance(exc, KeyboardInterrupt)
                                      else "failed", "error": f"{type(exc).__name__}: {exc}",
                                      "note": f"training finished; rebuild the outputs with: mmgain collect {out}"})
        raise
    if all_diverged:
        print(f"mmgain: error: every one of the {result.meta['n_models']} models diverged (non-finite loss); "
              f"nothing to compare. Lower --lr (now {spec.resolved_protocol().lr:g}). Outputs are in {out}/",
              file=sys.stderr)
        return 3, result
    if how.tables:
        print(LAYOUTS.get(spec.layout).text(result))
        if extra := sections_text(result.summary, result.meta):
            print("\n" + extra)
    precision = spec.resolved_protocol().precision
    print("\n" + wrap_text(f"wrote {out}/: {', '.join(files + ['run.json'])}")
          + (f"\nreport: {out / 'report.html'}" if "report.html" in files else "")
          + f"\n{result.meta['n_models']} models in {result.meta['wall_time_s']:.1f} s on {result.meta['device']}"
          + (f", trained in {precision}" if precision != "float32" else ""),
          file=sys.stdout if how.tables else sys.stderr)
    return 0, result


def collect(folder: Path) -> int:
    """Derive a run folder's outputs from its store: what a crashed (kill -9) run finished.  The
    data are not needed: the store records the run's layout (:mod:`mmgain.run.layout`)."""
    run = read_run(folder)
    lock = FolderLock(folder).acquire()
    try:
        store = ResultStore(folder)
        spec = ExperimentSpec.from_dict(run["spec"], source=str(folder / "run.json"))
        store.check_spec(spec)
        plan = None if is_per_seed(spec.data) else store.layout(spec)    # generated data: no file to miss
        if plan is None:             # a store without a layout: from the data, checked against it
            plan = plan_run(spec, device="cpu", progress=False, allow_large=True, chunks=store.chunks(),
                            stored_selection=store.selection())
            store.open(plan)
        parts = store.load()
        if not parts:
            print(f"mmgain: {folder}: no chunk has finished yet; nothing to collect", file=sys.stderr)
            return 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            result = _analyze_result(assemble(plan, parts))
        notes = notes_of(caught)
        partial = "partial" in result.meta
        state = run.get("status")
        if partial and state in ("running", "failed", None):
            state = "interrupted"          # no process holds the folder: it crashed or was killed
        files = write_run_folder(folder, result, {**run, "status": state if partial else "complete"}, notes,
                                 figures=not partial)
    finally:
        lock.release()
    done = f"{result.meta['partial']['chunks_done']} of {result.meta['partial']['chunks']} chunks" if partial \
        else "every chunk"
    print(f"mmgain: collected {done} ({result.meta['n_models']} models) into {folder}/ ({', '.join(files)})"
          + (f"; continue with: mmgain resume {folder}" if partial else ""))
    return 0


# ------------------------------------------------------------------ the public entry points


def analyze(data, *, y=None, task: str | None = None, modalities: Mapping[str, list] | None = None,
            subsets=None, ratios=None, quick: bool = False, seeds: int | None = None, grid: str | None = None, cv: int | None = None,
            margin: float | None = None, primary=None, null_control: bool = False, theory: bool = False,
            probes=None, costs=None, budget: float | None = None, target_n: int | None = None,
            protocol: str | None = None, epochs: int | None = None, lr: float | None = None,
            batch_size: int | None = None, hidden=None, activation: str | None = None, encoder: str | None = None,
            fusion: str | None = None, head: str | None = None, head_width: int | None = None,
            head_activation: str | None = None, precision: str | None = None, probe_epochs: int | None = None,
            split_seed: int | None = None, test_fraction: float | None = None, max_load_gb: float | None = None,
            out: str | Path | None = None, overwrite: bool = False, device: str = "auto",
            threads: int | None = None, backend: str = "local", address: str | None = None,
            memory_gb: float | None = None, allow_large: bool = False, progress: bool = True,
            encoders: Mapping[str, Any] | None = None, init: str = "reset", frozen=()) -> "Study":
    """Does adding each modality help, from how much data on, and why?  Trains every subset ×
    sample size × seed, probes the latents, and returns the answer as a :class:`Study`.

    ``data``: a path (.npz, a CSV folder, an IEMOCAP pickle), a registered dataset name
    (``"mfeat"``), a dict of 2-D arrays (modality → rows × features; ``y=`` the target), or a
    pandas DataFrame with ``modalities={"name": [columns]}`` and ``y=`` a column name or array.
    Every other keyword is the CLI's flag of the same name (``mmgain run --help``), with the same
    default and the same check.  With ``out``, the run folder is written as the CLI writes it
    (resumable with ``mmgain resume``); without, the results stay in memory until
    :meth:`Study.save`.

    ``encoders``: your own encoders for some modalities (``{"image": module}``, or a factory
    ``(d_in, width, activation) -> module``); the others get ``encoder``.  ``init="keep"`` starts
    from the modules' own weights (pretrained), ``"reset"`` redraws them per seed; ``frozen``
    (``True`` or modality names) keeps those encoders fixed.  Their latent widths are read from the
    modules.  See docs/api.md ("Bring your own encoder").
    """
    how = Execution(device=device, threads=threads, backend=backend, address=address, memory_gb=memory_gb,
                    allow_large=allow_large, progress=progress, out=Path(out) if out is not None else None,
                    overwrite=overwrite, tables=False)
    ds = None
    if isinstance(data, (str, Path)):
        source, data_task = str(data), task
    else:
        ds = _as_dataset(data, y, task, modalities)
        source, data_task = _register_memory(ds), None
    if encoders:
        encoder, hidden = _own_encoders(encoders, init, frozen, ds, source, data_task, encoder, protocol, hidden,
                                        activation, max_load_gb)
    elif init != "reset" or frozen:
        raise SpecError("init= and frozen= apply to your own encoders: give encoders={'modality': module}")
    spec = configure(EXPERIMENTS.get("run").with_(data=source), seeds=seeds, subsets=subsets, protocol=protocol,
                     theory=theory, ratios=ratios, grid=grid, margin=margin, null_control=null_control, cv=cv,
                     primary=primary, probes=probes, costs=costs, budget=budget, target_n=target_n,
                     quick=quick, quiet=not progress,
                     data_args={"task": data_task, "split_seed": split_seed, "test_fraction": test_fraction,
                                "max_load_gb": max_load_gb},
                     epochs=epochs, lr=lr, batch_size=batch_size, hidden=hidden, activation=activation,
                     encoder=encoder, fusion=fusion, head=head, head_width=head_width, head_activation=head_activation,
                     precision=precision, probe_epochs=probe_epochs)
    if how.out is not None:
        code, result = execute(spec, how)
        if result is None or code not in (0, 3):
            raise OutputError(f"the run stopped (exit status {code}); what finished is in {how.out}")
        return load(how.out) if code == 0 else Study.from_result(result, folder=how.out)
    resolve_device(device)
    result = run_experiment(spec, device=device, progress=progress, allow_large=allow_large,
                            memory_budget=None if memory_gb is None else memory_gb * 1e9,
                            backend=get_backend(backend, address, set_threads(threads)))
    return Study.from_result(result)


def _own_encoders(encoders, init, frozen, ds, source, task, encoder, protocol, hidden, activation, max_load_gb):
    """Register the user's encoders as one part for this process; returns its name and the latent
    widths (the modules' own, read with one trial forward pass; ``hidden`` for the rest)."""
    if ds is None:                           # a path or a registered name: the modalities' widths
        from .data.sources import load_source
        ds = load_source(source, 0, {}, {k: v for k, v in {"task": task, "max_load_gb": max_load_gb}.items()
                                          if v is not None}, split=False)
    unknown = sorted(set(encoders) - set(ds.names))
    if unknown:
        raise SpecError(f"encoders name modalities the data do not have: {', '.join(unknown)} "
                        f"(modalities: {', '.join(ds.names)})")
    preset = PROTOCOLS.get(protocol or EXPERIMENTS.get("run").protocol)
    frozen = list(encoders) if frozen is True else list(frozen or ())
    part = OwnEncoders(encoders, default=encoder or preset.encoder, init=init, frozen=frozen)
    base = resolve_widths(hidden if hidden is not None else preset.hidden, ds.names)
    widths = {k: OwnEncoders.out_width(part.modules[k] if isinstance(part.modules[k], torch.nn.Module)
                                       else part.modules[k](ds.dims[k], base[k], activation or preset.activation),
                                       ds.dims[k], k)
              if k in encoders else base[k] for k in ds.names}
    name = f"own-{len([n for n in ENCODERS.names() if n.startswith('own-')]) + 1}"
    ENCODERS.register(name, part)
    return name, widths


def resume(folder: str | Path, *, device: str = "auto", threads: int | None = None, backend: str = "local",
           address: str | None = None, allow_large: bool = False, progress: bool = True) -> "Study":
    """Continue an interrupted run in ``folder`` (``mmgain resume``): what is done is kept, the rest
    is trained with the same data, spec and protocol (checked)."""
    folder = Path(folder)
    spec = ExperimentSpec.from_dict(read_run(folder)["spec"], source=str(folder / "run.json"))
    code, result = execute(spec, Execution(device=device, threads=threads, backend=backend, address=address,
                                           allow_large=allow_large, progress=progress, resume=folder,
                                           tables=False))
    if code == 0 and result is None:             # already complete: nothing was trained
        return load(folder)
    if result is None or code not in (0, 3):
        raise OutputError(f"the run stopped (exit status {code}); what finished is in {folder}")
    return load(folder) if code == 0 else Study.from_result(result, folder=folder)


def load(folder: str | Path) -> "Study":
    """A run folder (written by ``mmgain run`` or :meth:`Study.save`) read back from its files alone;
    the files are untrusted input, checked as ``mmgain report`` checks them."""
    folder = Path(folder)
    for name in ("summary.json", "run.json", "results.csv"):
        if not (folder / name).is_file():
            raise OutputError(f"{folder}: not a finished mmgain run folder ({name} is missing)")
    summary = read_json(folder / "summary.json", "summary.json")
    run = read_json(folder / "run.json", "run.json")
    validate_folder_files(folder, summary, run)
    try:
        models = list(csv.DictReader(io.StringIO(read_regular(folder / "results.csv").decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise OutputError(f"{folder / 'results.csv'}: not a readable results table ({exc})") from None
    return Study(summary, run, [{k: _number(v) for k, v in r.items()} for r in models], folder=folder)


def _number(text: str):
    try:
        v = float(text)
    except (TypeError, ValueError):
        return text
    return int(v) if v.is_integer() and text.lstrip("-").isdigit() else v


class Study:
    """The answer of one run: the verdicts and the tables behind them as pandas DataFrames,
    ``summary`` (summary.json as a dict), ``meta`` (run.json), and the run folder if it has one.

    ``verdicts``: one row per pair (M = N + one modality) and sample size, with the word (helps,
    hurts, no effect, does not help, inconclusive), the gain and its interval, the corrected γ̂
    and a "why"; ``pairs``: the estimates behind them; ``cells``: per subset and sample size;
    ``models``: one row per trained model (results.csv); ``shapley``, ``curves``,
    ``crossovers``: attribution and learning curves; ``forecast`` (per modality: the gain at the
    target rows), ``selection`` (the best subset under the budget) and ``information`` (per pair
    of modalities: synergy − redundancy in nats): should I collect it, and why.
    """

    def __init__(self, summary: dict, meta: dict, models: list[dict], folder: Path | None = None, result=None):
        self.summary, self.meta, self._models = summary, meta, models
        self.folder, self.result = folder, result

    @classmethod
    def from_result(cls, result, folder: Path | None = None) -> "Study":
        summary = dict(result.summary)
        if "partial" in result.meta:
            summary["partial"] = result.meta["partial"]
        return cls(summary, dict(result.meta), result.table(), folder=folder, result=result)

    # ------------------------------------------------------------- views
    def _frame(self, key: str):
        import pandas as pd
        return pd.DataFrame(self.summary.get(key) or [])

    @property
    def verdicts(self):
        return self._frame("verdicts")

    @property
    def pairs(self):
        return self._frame("pairs")

    @property
    def cells(self):
        return self._frame("cells")

    @property
    def shapley(self):
        return self._frame("shapley")

    @property
    def curves(self):
        return self._frame("curves")

    @property
    def crossovers(self):
        return self._frame("crossovers")

    @property
    def forecast(self):
        return self._frame("forecast")

    @property
    def selection(self):
        return self._frame("selection")

    @property
    def information(self):
        """One row per pair of modalities (and data variant) with the identified PID quantities."""
        import pandas as pd
        return pd.DataFrame([{**{k: v for k, v in rec.items() if k not in ("values", "pairs", "dividends")}, **p}
                             for rec in self.summary.get("information") or [] for p in rec["pairs"]])

    @property
    def models(self):
        import pandas as pd
        return pd.DataFrame(self._models)

    @property
    def modalities(self) -> list[str]:
        """The modalities in the data's order."""
        names = list((self.meta.get("data") or {}).get("modalities") or [])
        return names or sorted({k for c in self.summary.get("cells", []) for k in c["subset"].split("+")})

    # ------------------------------------------------------------- files and views
    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Write the run folder (results.csv, outcomes.npz, summary.json, run.json, figures,
        report.html) as the CLI writes it; returns its path.  A study read with :func:`load`
        copies its folder's files."""
        out, _, lock = prepare_out_dir(folder, self.summary.get("experiment", "run"), overwrite=overwrite)
        try:
            if self.result is not None:
                status = {"status": "complete" if "partial" not in self.meta else "interrupted",
                          "command": ["mmgain.analyze"], "spec": self.result.spec.to_dict()}
                write_run_folder(out, self.result, status, [], figures="partial" not in self.meta)
            elif self.folder is not None:
                for f in sorted(self.folder.iterdir()):
                    if (is_output_name(f.name) or f.name == "run.json") and f.is_file() and not f.is_symlink():
                        shutil.copyfile(f, out / f.name)
            else:
                raise OutputError("this study has neither results in memory nor a folder to copy")
        finally:
            lock.release()
        self.folder = out
        return out

    def report(self) -> Path:
        """The path of report.html in the run folder (built if missing); :meth:`save` first if the
        study has no folder."""
        if self.folder is None:
            raise OutputError("this study has no run folder yet: study.save(folder) first")
        path = self.folder / "report.html"
        return path if path.is_file() else build_report(self.folder)

    def to_html(self) -> str:
        """The full report as one HTML page (written through a temporary run folder if needed)."""
        if self.folder is not None:
            return self.report().read_text(encoding="utf-8")
        with tempfile.TemporaryDirectory() as tmp:
            keep, self.folder = self.folder, None
            try:
                return Study(self.summary, self.meta, self._models, result=self.result).save(
                    Path(tmp) / "run").joinpath("report.html").read_text(encoding="utf-8")
            finally:
                self.folder = keep

    def _repr_html_(self) -> str:
        return cards_html(self.summary, self.modalities)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for v in self.summary.get("verdicts") or []:
            counts[v["verdict"]] = counts.get(v["verdict"], 0) + 1
        words = ", ".join(f"{k} {n}" for k, n in counts.items()) or "no pair verdicts"
        where = f", folder {self.folder}" if self.folder else ""
        return (f"<mmgain Study {self.summary.get('experiment', '')}: modalities {', '.join(self.modalities)}; "
                f"{len(self._models)} models; verdicts: {words}{where}>")
