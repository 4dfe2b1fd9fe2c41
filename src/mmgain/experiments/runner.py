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

from ..data.controls import control_subsets, with_permuted_copies
from ..data.dataset import DataError, MultimodalDataset
from ..data.sources import is_per_seed, load_source
from ..data.splits import cv_folds, fold_rows, make_split, nested_sample, sample_size
from ..data.subsets import FORWARD, forward_path, proper_pairs, select_subsets, subset_name
from ..errors import DataWarning, OutputError, SpecError
from ..models.components import FUSIONS, resolve_widths
from ..probes.latent import Latent, block_latent, cross_fitted_probe, in_model_groups, latent_gap_probe, probe_folds
from ..tasks import Task, as_numpy_rows, get_task
from ..training.batched import BatchedTrainer, DeviceData, Streams, chunk_streams, emulation_note, resolve_device
from ..training.protocol import TrainingProtocol
from .budget import bytes_per_row, check, estimate
from .curves import dense_ratios
from .diagnostics import joint_diagnostics
from .estimates import add_latent_estimates
from .references import REFERENCES
from .selection import forward_subsets
from .spec import ExperimentSpec, resolve_design
from .summary import summarize
from .theory import add_theory_metrics, population_metrics, theory_chunk

DIVERGED_OUTPUT = 1e6   # a trained model whose outputs exceed this on the test rows has diverged


@dataclass
class DataGroup:
    variant: dict[str, Any]
    seed: int | None          # the seed the data were drawn with (per-seed sources), else None
    dataset: MultimodalDataset
    fold: int | None = None   # cross-fitting: the fold whose rows are this group's test rows
    rows: np.ndarray | None = None   # cross-fitting: the data file's row of each of this group's rows


@dataclass
class StreamTable:
    """What identifies each stream: its data group, seed, sample-size ratio and training rows."""

    group: np.ndarray
    seed: np.ndarray
    ratio: np.ndarray
    n_train: np.ndarray

    def __len__(self) -> int:
        return len(self.seed)

    def where(self, group_ids, ratio: float) -> np.ndarray:
        """The streams of these data groups at this ratio, in seed order."""
        js = np.flatnonzero(np.isin(self.group, list(group_ids)) & (self.ratio == ratio))
        return js[np.argsort(self.seed[js], kind="stable")]


@dataclass
class RunResult:
    """A run's results as arrays, kept structured until they are written.

    ``metrics[name]`` is (S, A) — stream × subset; ``rows[name]`` is (S, A, n_test):
    per-row outcomes on the test rows of the models (``test``), of the paper's
    probe (``probe_test``) and of the cross-fitted probe (``heldout_fit``: in-fold,
    ``heldout_eval``: out-of-fold), each a dict of the task's row outcomes
    (``loss``, ``correct``); ``rows["matched_*"]`` is (S, Q, n_test) for the width-matched
    control of each pair in ``pairs``.  :meth:`table` flattens to one row per
    model for the CSV writer only.
    """

    spec: ExperimentSpec
    task: Task
    subsets: list[tuple[str, ...]]
    controls: list[bool]                      # per subset: a null-control subset (holds a permuted copy)
    groups: list[DataGroup]
    streams: StreamTable
    metrics: dict[str, np.ndarray]
    rows: dict[str, dict[str, np.ndarray]]
    pairs: list[tuple[int, int]] = field(default_factory=list)   # (a, b): subsets[a] = subsets[b] + one modality
    summary: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    eta_reference: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[str, np.ndarray] = field(default_factory=dict)   # per stream (S, ...): see .diagnostics
    design: dict[str, Any] = field(default_factory=dict)          # folds and seeds (.spec.resolve_design)

    def group_ids(self, variant: dict[str, Any]) -> list[int]:
        """The data groups (one per seed for generated data, else one) of a data variant."""
        return [gi for gi, g in enumerate(self.groups) if g.variant == variant]

    def replicates(self, group_ids, ratio: float) -> np.ndarray:
        """The streams of these data groups at this ratio as (seeds, folds): row s holds seed s's
        stream of each cross-fitting fold (one column without cross-fitting).  A seed missing a
        fold (an unfinished run) is left out."""
        js = self.streams.where(group_ids, ratio)
        folds = [self.groups[int(self.streams.group[j])].fold or 0 for j in js]
        K = max(folds, default=-1) + 1
        by_seed: dict[int, dict[int, int]] = {}
        for j, f in zip(js, folds):
            by_seed.setdefault(int(self.streams.seed[j]), {})[f] = int(j)
        rows = [[d[f] for f in range(K)] for _, d in sorted(by_seed.items()) if len(d) == K]
        return np.array(rows, dtype=np.int64).reshape(len(rows), K)

    def table(self) -> list[dict[str, Any]]:
        """One row per model, in spec order (subsets within streams)."""
        out = []
        for s in range(len(self.streams)):
            g = self.groups[int(self.streams.group[s])]
            for a, sub in enumerate(self.subsets):
                row = {"experiment": self.spec.name, "subset": subset_name(sub), "n_modalities": len(sub),
                       **g.variant, **({"fold": g.fold} if g.fold is not None else {}),
                       "seed": int(self.streams.seed[s]), "ratio": float(self.streams.ratio[s]),
                       "n_train": int(self.streams.n_train[s])}
                if any(self.controls):
                    row["control"] = int(self.controls[a])
                row.update({k: float(v[s, a]) for k, v in self.metrics.items()})
                out.append(row)
        return out


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
class ChunkJob:
    """One chunk of streams: the unit a backend trains and the store commits.  Picklable, so
    that a Ray worker can run it; the data travel separately."""

    streams: Streams
    protocol: TrainingProtocol
    dims: dict[str, int]
    subsets: list[tuple[str, ...]]
    n_outputs: int
    task: str
    pairs: list[tuple[int, int]]
    memory_budget: float
    block_probes: list[bool] = field(default_factory=list)   # per stream: probe each modality's block alone
    theory: bool = False                                      # the theorems' per-model terms (.theory)
    populations: list | None = None                           # per data group: its known distribution, if any


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

    def job(self, ci: int) -> ChunkJob:
        ref = self.groups[0].dataset
        top = self.table.ratio.max()          # the per-modality deficit is probed at the largest sample size
        return ChunkJob(self.streams.subset(self.chunks[ci]), self.protocol, ref.dims, self.subsets,
                        ref.n_outputs, self.task.name, self.pairs, self.memory_budget,
                        [bool(self.table.ratio[i] == top) for i in self.chunks[ci]], self.spec.theory,
                        [g.dataset.population for g in self.groups] if ref.population is not None else None)

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
            ds = g.dataset
            for name in ds.names:
                x = np.ascontiguousarray(ds.modalities[name])
                h.update(f"{name}:{x.dtype}:{x.shape}".encode())
                h.update(x.tobytes())
            for arr in (ds.y, ds.split, ds.groups):
                if arr is not None:
                    h.update(np.asarray(arr).astype(str if arr.dtype == object else arr.dtype).tobytes())
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
    cost = estimate(protocol, ref.dims, subsets, [len(r) for r in sample], train.n, test.n, len(pair_index),
                    len(groups), dev.type, spec.theory, memory_budget, ref.n_outputs, not task.stacked_probes,
                    sum(len(subsets[a]) for a, _ in pair_index))
    check(cost, allow_large)
    if progress or cost.seconds > 60 or cost.memory_gb > 1:     # worth knowing even with --quiet
        print(f"mmgain: {cost.line()}", file=sys.stderr)
    if chunks is None:
        chunks = plan_chunks(protocol, ref.dims, subsets, sample, memory_budget)
    elif sorted(i for c in chunks for i in c) != list(range(len(streams))):
        raise DataError(f"the stored chunks do not cover the run's {len(streams)} streams exactly")
    return RunPlan(spec, protocol, dev, groups, task, subsets, controls, train, test, table, streams,
                   pair_index, [list(map(int, c)) for c in chunks], memory_budget, seeds, selection, design)


def run_chunk(job: ChunkJob, train: DeviceData, test: DeviceData, device: torch.device,
              on_step=None, on_probe=None) -> dict[str, dict[str, np.ndarray]]:
    """Train, score and probe one chunk of streams.  Returns ``{"metrics": {name: (s, A)},
    <rows part>: {name: (s, A|Q, n_test)}}`` for the chunk's s streams, in chunk order."""
    task = get_task(job.task)
    cs = job.streams
    trainer = BatchedTrainer(job.protocol, job.dims, job.subsets, job.n_outputs, task, device)
    trainer.fit(train, cs, on_step=on_step)
    test_rows = trainer.test_rows(test, cs.groups)
    test_max_output = trainer.max_abs_output_.cpu().numpy()            # before the training rows reset it
    train_rows = trainer.train_rows(train, cs)
    scores = {**task.metrics(test_rows, "test_"), **trainer.train_metrics(train, cs, train_rows)}
    # Diverged: a non-finite loss, or outputs so large (|output| > 1e6) that softmax/MSE are meaningless.
    scores["diverged"] = (~np.isfinite(scores[f"train_{task.risk}"]) | ~np.isfinite(scores[f"test_{task.risk}"])
                          | (test_max_output > DIVERGED_OUTPUT)).astype(np.float64)
    extra = joint_diagnostics(trainer.model_, train, test, cs, task)
    part: dict[str, dict[str, np.ndarray]] = {"metrics": {**scores, **extra["metrics"]}, "test": dict(test_rows),
                                              "extras": extra["extras"]}
    if job.theory:
        part["metrics"].update(theory_chunk(trainer, train, cs, task, job.n_outputs, on_step, train_rows))
    if job.populations is not None:
        part["metrics"].update(population_metrics(trainer.model_, job.populations, cs.groups))
    probe = _probe_chunk(trainer, cs.groups, train, test, task, job.n_outputs, job.protocol, job.memory_budget,
                         on_probe, job.pairs, job.block_probes)
    for where, values in probe.items():
        if where == "diagnostics":
            part["metrics"].update({f"probe_{k}": v for k, v in values.items()})
        else:
            part[where] = values
    return part


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
    from .backends import LocalBackend

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
        parts = store.load()
        if parts:
            print(f"mmgain: {len(parts)} of {len(plan.chunks)} chunks are already in the store; "
                  "training the rest", file=sys.stderr)
    todo = [ci for ci in range(len(plan.chunks)) if ci not in parts]
    backend = backend or LocalBackend()
    try:
        with contextlib.closing(backend.run(plan, todo, progress)) as finished:
            for ci, part in finished:
                if store is not None:
                    store.commit(plan, ci, part)
                parts[ci] = part
    except KeyboardInterrupt as exc:
        partial = assemble(plan, parts, time.time() - t0) if parts else None
        raise RunInterrupted(partial, len(parts), len(plan.chunks), exc) from None
    return assemble(plan, parts, time.time() - t0)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM ended a run; ``partial`` is the result of the chunks finished (or None)."""

    def __init__(self, partial: "RunResult | None", done: int, total: int, cause: BaseException):
        super().__init__(f"interrupted after {done} of {total} chunks")
        self.partial, self.done, self.total, self.cause = partial, done, total, cause


def assemble(plan: RunPlan, parts: dict[int, dict], wall_time: float = 0.0) -> RunResult:
    """The run's result from its chunks' parts: every stream if every chunk is there, else the
    streams of the chunks finished (``meta["partial"]``)."""
    done = sorted(parts)
    streams = [i for ci in done for i in plan.chunks[ci]]
    order = np.argsort(streams, kind="stable")
    keep = np.asarray(streams)[order]
    metrics: dict[str, np.ndarray] = {}
    rows: dict[str, dict[str, np.ndarray]] = {}
    extras: dict[str, np.ndarray] = {}
    first = parts[done[0]]                      # every chunk has the same keys, in the same order
    keys = {w: list(d) for w, d in first.items()}
    for ci in done:
        if {w: list(d) for w, d in parts[ci].items()} != keys:
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
    result = RunResult(plan.spec, task, subsets, plan.controls, plan.groups, table, metrics, rows, plan.pairs,
                       extras=extras, design=plan.design)
    add_latent_estimates(result)
    if plan.spec.theory:
        add_theory_metrics(result)
    result.summary = summarize(result)
    reference = REFERENCES.get(plan.spec.reference) if plan.spec.reference else None
    if reference is not None:
        reference.annotate(result.summary)
    ref = plan.groups[0].dataset
    S, A = len(table), len(subsets)
    result.meta = {
        "spec": plan.spec.to_dict(), "seeds": plan.seeds, "device": _device_name(plan.device),
        "n_models": S * A, "n_streams": S, "n_chunks": len(plan.chunks),
        "wall_time_s": round(wall_time, 2),
        "design": plan.design,
        "versions": _versions(), "data": {"modalities": ref.dims, "task": task.name,
                                           "n_train": plan.train.n, "n_test": plan.test.n,
                                           "source": ref.source or ref.name, **ref.notes,
                                           "classes": None if ref.classes is None else [str(c) for c in ref.classes]},
    }
    if plan.selection is not None:
        result.meta["forward_selection"] = plan.selection
        result.summary["forward_selection"] = plan.selection
    if len(done) < len(plan.chunks):
        result.meta["partial"] = {"chunks_done": len(done), "chunks": len(plan.chunks),
                                  "streams_done": S, "streams": len(plan.table)}
    return result


def _probe_chunk(trainer: BatchedTrainer, groups: np.ndarray, train: DeviceData, test: DeviceData, task: Task,
                 n_out: int, protocol: TrainingProtocol, memory_budget: float, report,
                 pairs: list[tuple[int, int]] = (), block_streams=None) -> dict[str, dict]:
    """The latent probes of every model of a trained chunk.

    Two probes per model: the paper's (fitted on the full training set of its group, scored
    on the test rows: per-row ``probe_test`` outcomes, in-sample ``diagnostics``), and the
    cross-fitted probe on the test rows that no encoder has seen (``heldout_fit``,
    ``heldout_eval``, per test row), fitted also to one width-matched control per pair
    (``matched_fit``, ``matched_eval``, (S, Q, n) for the Q ``pairs`` (a, b) of subset
    indices, M = subsets[a]), which gives the corrected γ̂.  For the streams flagged in
    ``block_streams``, the cross-fitted probe also fits each modality's block of each model
    with two or more modalities alone (``diagnostics`` ``block_<k>_<metric>``, NaN elsewhere):
    the per-modality deficit, against the k-only model's own cross-fitted probe.
    Arrays are (S, A, ...).

    The probes of as many streams as fit the memory budget are fitted together (one batched
    L-BFGS, or one batched solve); least-squares probes, whose Gram matrices are large, one
    stream at a time.
    """
    model = trainer.probe_model_
    S, A = model.n_streams, len(model.subsets)
    per_stream = train.n * sum(len(model.members[k]) * model.widths[k] for k in model.used) * 4 * 4
    size = max(1, int(memory_budget // max(per_stream, 1))) if task.stacked_probes else 1
    folds = probe_folds(test.y[0].cpu().numpy(), protocol.probe_folds, stratify=task.stratified)
    grouped = lambda probe: in_model_groups(probe, n_out, not task.stacked_probes)   # noqa: E731
    fit = grouped(lambda Z, y, Zt, yt: task.probe(Z, y, Zt, yt, n_out, protocol))
    fit_heldout = grouped(lambda Z, y, Zt, yt: task.probe(Z, y, Zt, yt, n_out, protocol, heldout=True))
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    metric_names = list(task.metrics(as_numpy_rows(task.row_outcomes(torch.zeros(1, n_out, device=test.y.device),
                                                                      test.y[0, :1]))))

    def keep(where: str, values: dict, js: list[int], width: int = A) -> None:
        if where.endswith("_fit"):        # in-fold averages: fractions, not 0/1
            values = {k: v.float().cpu().numpy() for k, v in values.items()}
        elif where != "diagnostics":
            values = as_numpy_rows(values)
        for k, v in values.items():       # (S·width, ...)
            out.setdefault(where, {}).setdefault(k, []).append(np.asarray(v).reshape(len(js), width, *np.shape(v)[1:]))

    for start in range(0, S, size):
        js = list(range(start, min(start + size, S)))
        part = model.select(js)
        g = torch.as_tensor(groups[js], device=train.y.device)
        Z, y = _stacked_latent(part, train, g)
        Zt, yt = _stacked_latent(part, test, g)
        paper = fit(Z, y, Zt, yt)                      # the paper's probe: fitted on the training rows
        keep("probe_test", paper["test"], js)
        keep("diagnostics", {f"train_{k}": v for k, v in task.metrics(as_numpy_rows(paper["train"])).items()}, js)
        keep("diagnostics", {k: paper[k].cpu().numpy() for k in ("iterations", "converged") if k in paper}, js)
        # The cross-fitted probe on rows no encoder has seen, with one width-matched control
        # per pair (M, N) and stream; permutations keyed by (seed, modality).
        matches, seeds_ = [], []
        for s in range(len(js)):
            for a, b in pairs:
                (k,) = set(model.subsets[a]) - set(model.subsets[b])
                matches.append((s * A + a, s * A + b, k))
                seeds_.append(int(model.seeds[js[s]]) * 1009 + model.names.index(k))
        held = latent_gap_probe(fit_heldout, Zt, yt, folds, matches, seeds_)
        for where in ("fit", "eval"):
            keep(f"heldout_{where}", held["models"][where], js)
            if pairs:
                keep(f"matched_{where}", held["controls"][where], js, width=len(pairs))
        # Each modality's block of each model alone (flagged streams; the others NaN, same keys).
        cols = {f"block_{k}_{name}": np.full(len(js) * A, np.nan) for k in model.names for name in metric_names}
        flagged = [s for s in range(len(js)) if block_streams is not None and block_streams[js[s]]]
        if flagged and any(len(sub) > 1 for sub in model.subsets):
            # single-modality models are left out: their block is their whole latent, probed above
            Zb = Zt if model.latent_members() == model.members else _stacked_latent(part, test, g, "encoders")[0]
            blocks, origin = block_latent(Zb, {s * A + a for s in flagged for a in range(A)
                                               if len(model.subsets[a]) > 1})
            res = cross_fitted_probe(fit_heldout, blocks, yt[:, [m for m, _ in origin]] if yt.dim() == 2 else yt,
                                     folds)
            for name, v in task.metrics(as_numpy_rows(res["eval"])).items():     # (n_blocks,)
                for i, (mi, k) in enumerate(origin):
                    cols[f"block_{k}_{name}"][mi] = v[i]
        keep("diagnostics", cols, js)
        if report:
            report(js[-1] + 1)
    return {w: {k: np.concatenate(v) for k, v in d.items()} for w, d in out.items()}


def _stacked_latent(model, data: DeviceData, groups: torch.Tensor, view: str = "latent") -> tuple[Latent, torch.Tensor]:
    """Latents of S streams × A subsets as one Latent of S·A models (stream-major), and y (n, S·A).
    ``view``: the latent the head reads (``"latent"``), or each modality's encoder output
    (``"encoders"``; the same for concat fusion)."""
    S, A = model.n_streams, len(model.subsets)
    with torch.no_grad():
        r = torch.arange(data.n, device=data.y.device)[None].expand(S, -1)
        xs, y = data.gather(groups, r)                                  # (S, n, d_k), (S, n)
        raw = model.latent_blocks(xs) if view == "latent" else model.encoder_blocks(xs)
        owners = model.latent_members() if view == "latent" else model.members
        blocks = {k: v.permute(1, 0, 2, 3).reshape(data.n, -1, v.shape[-1])   # (n, S·A_k, H_k)
                  for k, v in raw.items()}
    members = {k: [s * A + a for s in range(S) for a in owners[k]] for k in blocks}
    names = [k for k in owners if k in blocks]
    return Latent(blocks, members, names, S * A), y.T[:, :, None].expand(-1, S, A).reshape(data.n, S * A)


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _versions() -> dict[str, str]:
    from .. import __version__
    return {"mmgain": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__}
