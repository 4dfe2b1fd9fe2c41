"""The one generic runner: spec → data groups → streams → batched training → probes → rows.

Every experiment (synthetic, real data, IEMOCAP) goes through :func:`run_experiment`;
what differs between them is the spec, never the code path.
"""
from __future__ import annotations

import contextlib
import hashlib
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ..analysis import analyze
from ..analysis.curves import dense_ratios
from ..data.controls import control_subsets, with_permuted_copies
from ..data.dataset import DataError, MultimodalDataset
from ..data.sources import is_per_seed, load_source
from ..data.splits import cv_folds, fold_rows, make_split, nested_sample, sample_size
from ..data.subsets import (FORWARD, effective_selection, forward_path, proper_pairs, select_subsets,
                            subset_name)
from ..errors import DataWarning, OutputError, SpecError
from ..models.components import FUSIONS, resolve_widths
from ..results import DataFacts, Group, RunResult, StreamTable
from ..tasks import Task, get_task
from ..training.batched import DeviceData, Streams, chunk_streams, emulation_note, resolve_device
from ..training.batched import BatchedTrainer
from ..training.protocol import TrainingProtocol
from .backends import LocalBackend
from .budget import Estimate, bytes_per_row, check, estimate, matmul_peak_gflops, work_counts, work_record
from .progress import Progress
from .chunk import DIVERGED_OUTPUT, ChunkJob
from .layout import RunLayout
from ..probes.kinds import column_prefix
from .selection import forward_subsets
from ..spec import ExperimentSpec, resolve_design

@dataclass
class DataGroup:
    variant: dict[str, Any]
    seed: int | None          # the seed the data were drawn with (per-seed sources), else None
    dataset: MultimodalDataset
    fold: int | None = None   # cross-fitting: the fold whose rows are this group's test rows
    rows: np.ndarray | None = None   # cross-fitting: the data file's row of each of this group's rows


def load_groups(spec: ExperimentSpec) -> tuple[list[DataGroup], dict[str, Any]]:
    """The run's data groups and its design (:func:`.spec.resolve_design`): one group per data
    variant, and per seed for generated data; with cross-fitting, one per fold, each the same rows
    under another split (:func:`..data.splits.fold_rows`)."""
    per_seed = is_per_seed(spec.data)
    if per_seed:
        design = resolve_design(spec, True, True)
        seeds = list(range(design["seeds"]))
        groups = [DataGroup(v, s, load_source(spec.data, s, v, spec.data_args)) for v in spec.variants for s in seeds]
    else:
        raw = {i: load_source(spec.data, 0, v, spec.data_args, split=False) for i, v in enumerate(spec.variants)}
        design = resolve_design(spec, raw[0].split is not None, False)
        if design["folds"]:
            groups = []
            for i, v in enumerate(spec.variants):
                ds = raw[i]
                folds = cv_folds(ds, design["folds"], spec.data_args.get("split_seed", 0))
                parts = fold_rows(ds, folds, spec.data_args.get("split_seed", 0))
                for f, (tr, te) in enumerate(parts):
                    rows = np.concatenate([tr, te])
                    split = np.array(["train"] * len(tr) + ["test"] * len(te))
                    groups.append(DataGroup(v, None, ds.take(rows, split), fold=f, rows=rows))
                design.update(n_scored=len(parts) * len(parts[0][1]), n_rows=ds.n,
                              method="grouped" if ds.groups is not None else
                              "stratified" if ds.task == "classification" else "random")
        else:
            groups = [DataGroup(v, None, raw[i] if raw[i].split is not None else
                                make_split(raw[i], seed=spec.data_args.get("split_seed", 0),
                                           test_fraction=spec.data_args.get("test_fraction", 0.2)))
                      for i, v in enumerate(spec.variants)]
    ref = groups[0].dataset
    for g in groups[1:]:
        ds = g.dataset
        if ds.dims != ref.dims or ds.task != ref.task or ds.n_outputs != ref.n_outputs:
            raise DataError(f"{ds.name}: data variants must share modalities, dims and task "
                            f"({ds.dims} vs {ref.dims})")
    if ref.split is None:
        raise DataError(f"{ref.name}: no train/test split (the loader should have made one)")
    sizes = {tuple(len(i) for i in g.dataset.train_test_indices()) for g in groups}
    if len(sizes) > 1:
        raise DataError(f"data variants have different train/test sizes: {sorted(sizes)}")
    n_test, k = min(t for _, t in sizes), spec.resolved_protocol().probe_folds
    if n_test < k:
        raise DataError(f"{ref.source or ref.name}: the test part has {n_test} row(s); the cross-fitted probe "
                        f"that measures latent quality splits it into {k} folds and needs at least {k} rows. "
                        "Give the data more test rows (a larger test share, or --cv)")
    return groups, design


def default_memory_budget(dev: torch.device) -> float:
    """Memory for one chunk: half the free GPU memory, or 2 GB on the CPU."""
    return (0.5 * torch.cuda.mem_get_info(dev)[0]) if dev.type == "cuda" else 2e9


def plan_chunks(protocol: TrainingProtocol, dims: dict[str, int], subsets, samples, memory_budget: float):
    """The streams (training samples ``samples``) grouped into chunks trained together."""
    return chunk_streams([min(protocol.batch_size, len(r)) for r in samples],
                         bytes_per_row(protocol, dims, subsets), memory_budget)


@dataclass
class RunPlan:
    """What a run will compute, before anything is trained: data on the device, the streams,
    and their chunks.  The result of a run is a function of the plan and nothing else, so a
    run resumed from the store with the same plan gives the same numbers."""

    spec: ExperimentSpec
    protocol: TrainingProtocol
    device: torch.device
    groups: list[DataGroup]
    task: Task
    subsets: list[tuple[str, ...]]
    controls: list[bool]
    train: DeviceData
    test: DeviceData
    table: StreamTable
    streams: Streams
    pairs: list[tuple[int, int]]
    chunks: list[list[int]]
    memory_budget: float
    seeds: list[int]
    selection: list[dict] | None = None       # --subsets forward: the greedy path, stage by stage
    design: dict[str, Any] = field(default_factory=dict)   # folds and seeds (.spec.resolve_design)
    estimate: Estimate | None = None          # the up-front cost (plan_run sets it): where the ETA starts

    def progress(self, chunks: list[int], desc: str, stream=None, **kw) -> Progress:
        """One display over the training and the probes of ``chunks``, paced by the estimate."""
        train_s, probe_s = zip(*(self.chunk_seconds(ci) for ci in chunks))
        return Progress(desc, self.n_steps(chunks), sum(train_s), sum(len(self.chunks[ci]) for ci in chunks),
                        sum(probe_s), stream=stream, **kw)

    def chunk_seconds(self, ci: int) -> tuple[float, float]:
        """The estimate's training and probe seconds of chunk ``ci``: training in proportion to
        its streams' rows, probes to its streams."""
        est = self.estimate
        rows = self.table.n_train.astype(float)
        mine = self.chunks[ci]
        return (est.train_seconds * rows[mine].sum() / max(rows.sum(), 1.0),
                est.probe_seconds * len(mine) / max(len(rows), 1))

    def job(self, ci: int) -> ChunkJob:
        ref = self.groups[0].dataset
        top = self.table.ratio.max()          # the per-modality deficit is probed at the largest sample size
        return ChunkJob(self.streams.subset(self.chunks[ci]), self.protocol, ref.dims, self.subsets,
                        ref.n_outputs, self.task.name, self.pairs, self.memory_budget,
                        [bool(self.table.ratio[i] == top) for i in self.chunks[ci]], self.spec.theory,
                        [g.dataset.population for g in self.groups] if ref.population is not None else None,
                        probes=tuple(self.spec.probes))

    def layout(self) -> RunLayout:
        """The run without its data (:mod:`.layout`): what assembling and analysing its chunks needs."""
        ref = self.groups[0].dataset
        tr = ref.train_test_indices()[0]
        facts = DataFacts(list(ref.names), dict(ref.dims), ref.n_classes, ref.n_outputs,
                          self.task.default_margin(ref.y[tr]),
                          None if ref.classes is None else [str(c) for c in ref.classes], _row_file(self))
        data = {"modalities": ref.dims, "task": self.task.name, "n_train": self.train.n, "n_test": self.test.n,
                "source": ref.source or ref.name, **ref.notes, "classes": facts.classes}
        return RunLayout(self.spec, self.task, self.subsets, self.controls, self.pairs, self.chunks, self.table,
                         [Group(g.variant, g.seed, g.fold, g.dataset.population) for g in self.groups], facts,
                         self.design, self.seeds, data, _device_name(self.device), self.selection)

    def n_steps(self, chunks) -> int:
        """Training steps of these chunks (twice as many with the theory's label-flip fits)."""
        return (2 if self.spec.theory else 1) * sum(BatchedTrainer.n_steps(self.protocol, self.streams.subset(
            self.chunks[ci])) for ci in chunks)

    def stream_keys(self) -> list[list]:
        """(data group, seed, ratio) of each stream: what the store's manifest keys chunks by."""
        return [[int(g), int(s), float(r)] for g, s, r in zip(self.table.group, self.table.seed, self.table.ratio)]

    def data_fingerprint(self) -> str:
        """sha256 of every data group as trained on (features, target, split): a resumed run must
        see the same data."""
        h = hashlib.sha256()
        for g in self.groups:
            g.dataset.update_hash(h)
        return h.hexdigest()


def plan_run(spec: ExperimentSpec, device: str = "auto", progress: bool = True,
             memory_budget: float | None = None, allow_large: bool = False,
             chunks: list[list[int]] | None = None, stored_selection: list[dict] | None = None) -> RunPlan:
    """Load the data, lay out the streams and chunk them; estimate the cost and refuse a run
    beyond the limits of :mod:`.budget` unless ``allow_large``.  ``chunks`` (from a run
    folder's store) replaces the chunking, so that a resumed run trains the same chunks, and
    ``stored_selection`` the forward-selection path (it is not selected again)."""
    protocol = spec.resolved_protocol()
    dev = resolve_device(device)
    groups, design = load_groups(spec)
    seeds = list(range(design["seeds"]))
    ref = groups[0].dataset
    task = get_task(ref.task)
    names = ref.names
    forward = spec.subsets == FORWARD
    if memory_budget is None:
        memory_budget = default_memory_budget(dev)
    subsets = None if forward else select_subsets(spec.subsets, names)
    if not forward and (chosen := effective_selection(spec.subsets, names)) not in (spec.subsets, "all"):
        print(f"mmgain: {len(names)} modalities: training --subsets {chosen}, the prefixes of random orderings "
              f"({len(subsets)} subsets: unbiased Shapley values, a γ pair per step), not all "
              f"{2 ** len(names) - 1:,}; --subsets all trains every subset", file=sys.stderr)
    widths = resolve_widths(protocol.hidden, names)  # per-modality widths must name these modalities
    FUSIONS.get(protocol.fusion)().out_width(list(widths.values()))   # and suit the fusion
    if spec.theory and (protocol.encoder, protocol.fusion) != ("linear", "concat"):
        raise SpecError("--theory measures the paper's model class, one Linear layer per modality and "
                        f"concatenation (encoder 'linear', fusion 'concat'); this protocol has encoder "
                        f"{protocol.encoder!r}, fusion {protocol.fusion!r}")
    if spec.null_control:
        groups = [replace(g, dataset=with_permuted_copies(g.dataset, g.seed or 0)) for g in groups]
    ref = groups[0].dataset

    split = [g.dataset.train_test_indices() for g in groups]
    train = DeviceData.stack([(g.dataset.rows(tr), g.dataset.y[tr]) for g, (tr, _) in zip(groups, split)], dev)
    test = DeviceData.stack([(g.dataset.rows(te), g.dataset.y[te]) for g, (_, te) in zip(groups, split)], dev)
    if protocol.standardize:
        moments = train.moments()
        train, test = train.standardized(moments), test.standardized(moments)

    ratios = dense_ratios(train.n, ref.n_classes) if spec.grid == "dense" else spec.ratios
    # One stream per (data group, seed, ratio): what its subsets share.
    keys = [(gi, seed, float(ratio)) for gi, g in enumerate(groups)
            for seed in ([g.seed] if g.seed is not None else seeds) for ratio in ratios]
    sample = [nested_sample(train.n, ratio, seed) for _, seed, ratio in keys]
    sizes = {}
    for ratio in ratios:
        sizes.setdefault(sample_size(float(ratio), train.n), []).append(float(ratio))
    for n_rows, rs in sizes.items():
        if len(rs) > 1:
            warnings.warn(f"ratios {', '.join(f'{r:g}' for r in rs)} all give n={n_rows} training rows here "
                          f"({train.n} in all): their models are identical", DataWarning)
    streams = Streams(np.array([k[0] for k in keys]), np.array([k[1] for k in keys]), sample)
    selection = None
    if forward and stored_selection:      # a resumed or collected run: the path its store recorded
        chosen = [tuple(step["subset"].split("+")) for step in stored_selection]
        subsets, _ = forward_path(names, lambda cands: [float(c in chosen) for c in cands])
        selection = stored_selection
    elif forward:   # refuse a run beyond the limits before selecting (an upper bound: the widest modalities first)
        widest, _ = forward_path(names, lambda cands: [sum(ref.dims[k] for k in c) for c in cands])
        check(estimate(protocol, ref.dims, widest, [len(r) for r in sample], train.n, test.n,
                       len(proper_pairs(widest)) if spec.pairs else 0, len(groups), dev.type, spec.theory,
                       memory_budget, ref.n_outputs, not task.stacked_probes),
              allow_large)
        top = [i for i, k in enumerate(keys) if k[2] == max(ratios)]
        subsets, selection = forward_subsets(names, protocol, ref.dims, ref.n_outputs, task, train,
                                             streams.subset(top), dev, progress)
    controls = [False] * len(subsets)
    if spec.null_control:
        extra = control_subsets(subsets)
        subsets, controls = subsets + extra, controls + [True] * len(extra)
    table = StreamTable(streams.groups, streams.seeds, np.array([k[2] for k in keys]),
                        np.array([len(r) for r in sample]))

    pair_index = [(subsets.index(m), subsets.index(n)) for m, n in proper_pairs(subsets)] if spec.pairs else []
    known = {(frozenset(m), frozenset(n)) for m, n in proper_pairs(subsets)}
    for question in spec.primary or ():
        m, n = (frozenset(x.split("+")) for x in question.split(":"))
        if (m, n) not in known:
            raise SpecError(f"--primary {question}: not a pair this run compares (M must be N plus one modality, "
                            f"both among the trained subsets; modalities: {', '.join(names)})")
    unknown = sorted(set(spec.costs or {}) - set(names))
    if unknown:
        raise SpecError(f"--costs names {', '.join(unknown)}, which the data do not have (modalities: {', '.join(names)})")
    peaks = None if dev.type == "cuda" else \
        {p: matmul_peak_gflops(dev, p) for p in dict.fromkeys(("float32", protocol.precision))}
    cost = estimate(protocol, ref.dims, subsets, [len(r) for r in sample], train.n, test.n, len(pair_index),
                    len(groups), dev.type, spec.theory, memory_budget, ref.n_outputs, not task.stacked_probes,
                    sum(len(subsets[a]) for a, _ in pair_index), peaks)
    check(cost, allow_large)
    if progress or cost.seconds > 60 or cost.memory_gb > 1:     # worth knowing even with --quiet
        print(f"mmgain: {cost.line()}", file=sys.stderr)
    if chunks is None:
        chunks = plan_chunks(protocol, ref.dims, subsets, sample, memory_budget)
    elif sorted(i for c in chunks for i in c) != list(range(len(streams))):
        raise DataError(f"the stored chunks do not cover the run's {len(streams)} streams exactly")
    return RunPlan(spec, protocol, dev, groups, task, subsets, controls, train, test, table, streams,
                   pair_index, [list(map(int, c)) for c in chunks], memory_budget, seeds, selection, design, cost)


def run_experiment(spec: ExperimentSpec, device: str = "auto", progress: bool = True,
                   memory_budget: float | None = None, allow_large: bool = False,
                   store=None, backend=None) -> RunResult:
    """Train, score and probe every model of ``spec``.  The cost is estimated and printed
    before training; a run beyond the limits of :mod:`.budget` is refused unless
    ``allow_large``.

    With a ``store`` (:class:`.store.ResultStore`), each chunk is committed as soon as it
    is done and chunks already in the store are not trained again; an interrupt (Ctrl-C,
    SIGTERM) raises :class:`RunInterrupted` carrying the result of what is done.  The
    ``backend`` (:mod:`.backends`; default: this process) trains the chunks."""
    t0 = time.time()
    stored = None
    if store is not None:
        store.check_spec(spec)          # a mismatch is named before any data are loaded
        stored = store.chunks()
    plan = plan_run(spec, device, progress, memory_budget, allow_large, chunks=stored,
                    stored_selection=store.selection() if store is not None else None)
    if note := emulation_note(plan.device, plan.protocol.precision):   # here: collect trains nothing
        warnings.warn(note, DataWarning)
    parts: dict[int, dict] = {}
    if store is not None:
        store.open(plan)
        print(f"mmgain: run folder {store.folder}", file=sys.stderr)   # after the input was accepted
        parts = store.load()
        if parts:
            print(f"mmgain: {len(parts)} of {len(plan.chunks)} chunks are already in the store; "
                  + ("nothing to train" if len(parts) == len(plan.chunks) else "training the rest"), file=sys.stderr)
    todo = [ci for ci in range(len(plan.chunks)) if ci not in parts]
    backend = backend or LocalBackend()
    try:
        with contextlib.closing(backend.run(plan, todo, progress)) as finished:
            for ci, part in finished:
                if store is not None:
                    store.commit(plan, ci, part)
                parts[ci] = part
    except KeyboardInterrupt as exc:
        if store is not None:     # a chunk committed just before the signal, but not yet in parts, counts
            parts = {**store.load(), **parts}
        partial = analyze(assemble(plan, parts, time.time() - t0)) if parts else None
        raise RunInterrupted(partial, len(parts), len(plan.chunks), exc) from None
    result = analyze(assemble(plan, parts, time.time() - t0))
    result.trained_chunks = len(todo)
    if plan.estimate is not None:
        result.meta["estimate"] = plan.estimate.record()
    if "work" in result.meta:
        result.meta["work"] = work_record(result.meta["work"], plan.device, plan.protocol.precision,
                                          result.meta["wall_time_s"] if len(todo) == len(plan.chunks) else None)
    return result


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM ended a run; ``partial`` is the result of the chunks finished (or None)."""

    def __init__(self, partial: "RunResult | None", done: int, total: int, cause: BaseException):
        super().__init__(f"interrupted after {done} of {total} chunks")
        self.partial, self.done, self.total, self.cause = partial, done, total, cause


def assemble(plan: RunPlan | RunLayout, parts: dict[int, dict], wall_time: float = 0.0) -> RunResult:
    """The run's result from its chunks' parts and its plan (or only its stored layout: no data
    needed), before analysis (:func:`mmgain.analysis.analyze`): every stream if every chunk is
    there, else the streams of the chunks finished (``meta["partial"]``)."""
    plan = plan.layout() if isinstance(plan, RunPlan) else plan
    done = sorted(parts)
    streams = [i for ci in done for i in plan.chunks[ci]]
    order = np.argsort(streams, kind="stable")
    keep = np.asarray(streams)[order]
    metrics: dict[str, np.ndarray] = {}
    rows: dict[str, dict[str, np.ndarray]] = {}
    extras: dict[str, np.ndarray] = {}
    first = {w: d for w, d in parts[done[0]].items() if w != "work"}   # every chunk: the same keys, in order
    keys = {w: list(d) for w, d in first.items()}
    for ci in done:
        if {w: list(d) for w, d in parts[ci].items() if w != "work"} != keys:
            raise OutputError(f"chunk {ci} of this run holds other results than chunk {done[0]}: the store was "
                              "written by another version of mmgain. Start the run afresh (--overwrite), or "
                              "finish it with the version that began it")
    for where in first:
        stacked = {k: np.concatenate([parts[ci][where][k] for ci in done])[order] for k in first[where]}
        if where == "metrics":
            metrics.update(stacked)
        elif where == "extras":
            extras = stacked
        else:
            rows[where] = stacked
    task, subsets = plan.task, plan.subsets
    metrics.update(task.metrics(rows["probe_test"], "probe_"))
    metrics.update(task.metrics(rows["heldout_eval"], "heldout_"))
    metrics.update(task.metrics(rows["heldout_fit"], "heldout_fit_"))
    for name in plan.spec.probes:                  # registered probes beside the paper's
        metrics.update(task.metrics(rows[f"{column_prefix(name)}_test"], f"{column_prefix(name)}_"))
    diverged = metrics["diverged"] > 0
    if diverged.any():
        names = sorted({subset_name(subsets[a]) for a in np.flatnonzero(diverged.any(0))})
        warnings.warn(f"{int(diverged.sum())} of {diverged.size} models diverged (a non-finite loss, or outputs "
                      f"beyond ±{DIVERGED_OUTPUT:g}; subsets {', '.join(names[:5])}{' …' if len(names) > 5 else ''}): "
                      "they are marked in "
                      "results.csv (diverged = 1) and left out of every statistic; a smaller --lr may help",
                      DataWarning)
    t = plan.table
    table = StreamTable(t.group[keep], t.seed[keep], t.ratio[keep], t.n_train[keep])
    result = RunResult(plan.spec, task, subsets, plan.controls, plan.groups, plan.facts, table, metrics, rows,
                       plan.pairs, extras=extras, design=plan.design)
    S, A = len(table), len(subsets)
    result.meta = {
        "spec": plan.spec.to_dict(), "seeds": plan.seeds, "device": plan.device_name,
        "n_models": S * A, "n_streams": S, "n_chunks": len(plan.chunks),
        "wall_time_s": round(wall_time, 2),
        "design": plan.design,
        "versions": _versions(), "data": plan.data_meta,
    }
    if all("work" in parts[ci] for ci in done):    # chunks stored by an older version have no work record
        if (work := work_counts([parts[ci]["work"] for ci in done])) is not None:
            result.meta["work"] = work
    if plan.selection is not None:
        result.meta["forward_selection"] = plan.selection
    if len(done) < len(plan.chunks):
        result.meta["partial"] = {"chunks_done": len(done), "chunks": len(plan.chunks),
                                  "streams_done": S, "streams": len(plan.table)}
    return result


def _row_file(plan: RunPlan) -> tuple[str, list[dict]] | None:
    """Which row of the data file went where, for a split or folds that mmgain made:
    ``folds.csv`` (cross-fitting: the fold that scored each row) or ``split.csv``."""
    ds = plan.groups[0].dataset
    if plan.groups[0].fold is not None:
        fold_of = {}
        for g in plan.groups:
            _, te = g.dataset.train_test_indices()
            fold_of.update({int(r): g.fold for r in g.rows[te]})
        return "folds.csv", [{"row": r, "fold": fold_of.get(r, "")} for r in range(plan.design["n_rows"])]
    if "split" in ds.notes:
        return "split.csv", [{"row": i, "part": p, **({"group": g} if ds.groups is not None else {})}
                             for i, (p, g) in enumerate(zip(ds.split, ds.groups if ds.groups is not None
                                                            else ds.split))]
    return None


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _versions() -> dict[str, str]:
    from .._version import __version__
    return {"mmgain": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__}
