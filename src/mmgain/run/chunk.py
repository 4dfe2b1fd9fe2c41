"""One chunk of streams: train, score and probe it.  The unit a backend runs and the store commits."""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ..probes.kinds import PROBES, column_prefix
from ..probes.latent import (Latent, block_latent, cross_fitted_probe, fit_probe, in_model_groups, latent_gap_probe,
                             one_solve_group_bytes, probe_folds, solver_work, PROBE_GROUP_BYTES,
                             SEQUENTIAL_WORK)
from ..tasks import Task, as_numpy_rows, get_task
from ..training.batched import BatchedTrainer, DeviceData, Streams
from ..training.flops import training_flops
from ..training.protocol import TrainingProtocol
from .diagnostics import joint_diagnostics
from .theory_terms import population_metrics, theory_chunk

DIVERGED_OUTPUT = 1e6   # a trained model whose outputs exceed this on the test rows has diverged


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
    probes: tuple[str, ...] = ()                              # registered probes beside the paper's


def run_chunk(job: ChunkJob, train: DeviceData, test: DeviceData, device: torch.device,
              on_step=None, on_probe=None) -> dict[str, dict[str, np.ndarray]]:
    """Train, score and probe one chunk of streams.  Returns ``{"metrics": {name: (s, A)},
    <rows part>: {name: (s, A|Q, n_test)}}`` for the chunk's s streams, in chunk order, and the
    chunk's counted and timed ``work`` (:func:`mmgain.run.budget.work_counts`), one value each."""
    task = get_task(job.task)
    cs = job.streams
    trainer = BatchedTrainer(job.protocol, job.dims, job.subsets, job.n_outputs, task, device)
    started = time.perf_counter()
    trainer.fit(train, cs, on_step=on_step)
    trained = time.perf_counter()
    if on_probe is not None and not job.theory:
        on_probe(0)                                   # training is done: scoring and probes from here
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
    probe = _probes_fitting_memory(device, trainer, cs.groups, train, test, task, job.n_outputs, job.protocol,
                                   job.memory_budget, on_probe, job.pairs, job.block_probes, job.probes)
    sizes = [len(r) for r in cs.train_rows]
    probe["work"].update(train_s=np.asarray([trained - started]), probe_s=np.asarray([time.perf_counter() - trained]),
                         train_flops=np.asarray([training_flops(job.protocol, job.dims, job.subsets, job.n_outputs,
                                                                sizes)]))
    for where, values in probe.items():
        if where == "diagnostics":
            part["metrics"].update({f"probe_{k}": v for k, v in values.items()})
        else:
            part[where] = values
    return part


def _probes_fitting_memory(device: torch.device, *args) -> dict[str, dict]:
    """:func:`_probe_chunk` in its device's layout; on a GPU whose memory the one-solve layout
    outgrows, again call by call (the same numbers, slower), with a warning instead of a lost run."""
    try:
        return _probe_chunk(*args)
    except torch.OutOfMemoryError:
        if device.type == "cpu":
            raise
        torch.cuda.empty_cache()
        warnings.warn(f"the probes of a chunk of {len(args[1])} streams did not fit in {device} memory as one "
                      "solve; they were fitted call by call instead (the same numbers, slower)", RuntimeWarning)
        return _probe_chunk(*args, one_solve=False)


def _probe_chunk(trainer: BatchedTrainer, groups: np.ndarray, train: DeviceData, test: DeviceData, task: Task,
                 n_out: int, protocol: TrainingProtocol, memory_budget: float, report,
                 pairs: list[tuple[int, int]] = (), block_streams=None, extra_probes=(),
                 one_solve: bool | None = None) -> dict[str, dict]:
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

    ``one_solve`` (default: on any device but the CPU; logistic probes only) fits a group's
    cross-fitted problems — models, controls, blocks, every fold — in one solver call, and the
    paper's probe in another, padded to the widest latent, instead of one call per width and
    fold.  The same problems and optima; more arithmetic, far fewer solver rounds one after the
    other, which is what a GPU's probe time follows.  On the CPU the padding's arithmetic costs
    more than the rounds save (``benchmarks/2026-12-04-one-solve.md``).
    """
    model = trainer.probe_model_
    S, A = model.n_streams, len(model.subsets)
    per_stream = train.n * sum(len(model.members[k]) * model.widths[k] for k in model.used) * 4 * 4
    size = max(1, int(memory_budget // max(per_stream, 1))) if task.stacked_probes else 1
    folds = probe_folds(test.y[0].cpu().numpy(), protocol.probe_folds, stratify=task.stratified)
    one = task.probe_kind == "logistic" and (train.y.device.type != "cpu" if one_solve is None else one_solve)
    group_bytes = one_solve_group_bytes(train.y.device) if one else PROBE_GROUP_BYTES
    grouped = lambda probe: in_model_groups(probe, n_out, not task.stacked_probes, group_bytes)   # noqa: E731
    fit = grouped(lambda Z, y, Zt, yt: PROBES.get("paper").fit(task, Z, y, Zt, yt, n_out, protocol,
                                                               **({"by_width": False} if one else {})))
    fit_heldout = grouped(lambda Z, y, Zt, yt, **kw: fit_probe(task, Z, y, Zt, yt, n_out, protocol, heldout=True,
                                                                by_width=not one, **kw))
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    work = dict.fromkeys(("evaluations", "flops", "fits", "unconverged", *SEQUENTIAL_WORK), 0.0)   # every probe's

    def count(per_model: dict) -> None:
        for k, v in per_model.items():
            work[k] += float(v.sum())
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
        count(solver_work(paper))
        keep("probe_test", paper["test"], js)
        for name in extra_probes:                     # registered probes beside the paper's (probes.kinds)
            kind = PROBES.get(name)
            res = grouped(lambda Z, y, Zt, yt, kind=kind: kind.fit(task, Z, y, Zt, yt, n_out, protocol))(Z, y, Zt, yt)
            count(solver_work(res))
            keep(f"{column_prefix(name)}_test", res["test"], js)
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
        # Each modality's block of each model alone (flagged streams; the others NaN, same keys).
        cols = {f"block_{k}_{name}": np.full(len(js) * A, np.nan) for k in model.names for name in metric_names}
        flagged = [s for s in range(len(js)) if block_streams is not None and block_streams[js[s]]]
        blocks = None
        if flagged and any(len(sub) > 1 for sub in model.subsets):
            # single-modality models are left out: their block is their whole latent, probed above
            Zb = Zt if model.latent_members() == model.members else _stacked_latent(part, test, g, "encoders")[0]
            blocks, origin = block_latent(Zb, {s * A + a for s in flagged for a in range(A)
                                               if len(model.subsets[a]) > 1})
            yb = yt[:, [m for m, _ in origin]] if yt.dim() == 2 else yt
        held = latent_gap_probe(fit_heldout, Zt, yt, folds, matches, seeds_, stacked=one,
                                extra=(blocks, yb) if one and blocks is not None else None)
        for where in held.values():
            count(where["work"])
        for where in ("fit", "eval"):
            keep(f"heldout_{where}", held["models"][where], js)
            if pairs:
                keep(f"matched_{where}", held["controls"][where], js, width=len(pairs))
        if blocks is not None:
            res = held["extra"] if one else cross_fitted_probe(fit_heldout, blocks, yb, folds)
            if not one:
                count(res["work"])
            for name, v in task.metrics(as_numpy_rows(res["eval"])).items():     # (n_blocks,)
                for i, (mi, k) in enumerate(origin):
                    cols[f"block_{k}_{name}"][mi] = v[i]
        keep("diagnostics", cols, js)
        if report:
            report(js[-1] + 1)
    return {**{w: {k: np.concatenate(v) for k, v in d.items()} for w, d in out.items()},
            "work": {f"probe_{k}": np.asarray([v]) for k, v in work.items()}}


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
