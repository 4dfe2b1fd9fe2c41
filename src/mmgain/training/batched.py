"""Training many small late-fusion models as one batched program.

A run trains every (stream, subset) pair, where a *stream* is what the
subsets of one comparison share: a data group (one dataset draw), a seed (the
initial encoder weights and the minibatch order) and the rows of the training
sample.  All models step together: one gather of the minibatch per stream, one
batched matmul per modality, one Adam update on the stacked parameters.  No
Python loop runs over models; the per-step loop over streams only picks batch
indices.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ..models.late_fusion import BatchedLateFusion
from ..errors import SpecError
from ..tasks import Task, as_numpy_rows, get_task
from .protocol import TrainingProtocol
from .schedule import BatchSchedule


DEVICE_FORMS = "cpu, cuda, cuda:N, mps or auto"
TILE_BYTES = 6 * 2 ** 20     # one modality's hidden activations for a row tile: what a CPU's caches hold
TILE_MAX_DIM = 64            # tile only when the first layer is memory-bound (a mean input width this small)


def row_tile(model: BatchedLateFusion, n_streams: int, batch: int, device: torch.device) -> int:
    """Rows per forward/backward pass inside one minibatch step (gradients accumulate over the tiles).

    When the inputs are narrow (a mean d_k ≤ ``TILE_MAX_DIM``, weighted by the hidden units that
    read them), the first layer does few FLOPs per hidden value, and a step over the whole
    minibatch spends its time moving hidden tensors of S·A_k·H_k values per row through memory;
    tiles of rows that keep one modality's tensor within ``TILE_BYTES`` stay in the caches.  Wide
    inputs keep whole minibatches (smaller GEMMs would only lose speed), as does every device but
    the CPU.  A pure function of the shapes, so a plan gives the same numbers on the same machine;
    tiling changes results only by floating-point summation order (docs/design.md)."""
    if device.type != "cpu" or not model.used:
        return batch
    units = {k: len(model.members[k]) * model.widths[k] for k in model.used}
    mean_d = sum(u * model.dims[k] for k, u in units.items()) / sum(units.values())
    per_row = 4 * n_streams * max(max(units.values()), len(model.subsets) * model.head_hidden)
    if mean_d > TILE_MAX_DIM or per_row * batch <= TILE_BYTES:
        return batch
    return min(batch, 1 << (max(TILE_BYTES // per_row, 32).bit_length() - 1))   # a power of two, ≥ 32


def set_threads(threads: int | None = None) -> int:
    """Set torch's compute threads deliberately: ``threads``, or the CPUs this process may run on.

    torch's own default counts the machine's cores, whoever else uses them; two processes that
    each take every core slow each other down many times over (docs/benchmarks.md, "Threads").
    """
    if threads is None:
        try:
            threads = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):    # pragma: no cover - not Linux
            threads = os.cpu_count() or 1
    if threads < 1:
        raise SpecError(f"--threads must be ≥ 1, got {threads}")
    if torch.get_num_threads() != int(threads):   # an unneeded call costs: see probes.latent._spd_solve
        torch.set_num_threads(int(threads))
    return int(threads)


@contextlib.contextmanager
def flush_denormals(device: torch.device):
    """Subnormal floats (|x| < 1.2e-38) flushed to zero while training on the CPU.

    Late in training a confident model's softmax gradients underflow into subnormals, and
    arithmetic on subnormal operands is slow on x86: the late epochs of a default mfeat chunk
    run markedly slower without this (docs/design.md).  Values that small
    cannot move any result mmgain reports.  The previous mode is restored afterwards (torch
    has no getter: a subnormal that reads back as 0 says the mode was on)."""
    if device.type != "cpu":
        yield
        return
    was_on = float(torch.tensor(1e-40)) == 0.0
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_on)


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware (CPU: AMX or AVX512-BF16; CUDA:
    compute capability ≥ 8).  Elsewhere bfloat16 is emulated and slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    probes = [getattr(torch.cpu, n, None) for n in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(p() for p in probes if p is not None)


def emulation_note(device: torch.device, precision: str) -> str | None:
    """What to tell a user who asked for bfloat16 where it is emulated (slower, not faster)."""
    if precision != "bfloat16" or native_bfloat16(device):
        return None
    return (f"precision bfloat16: this {device.type} has no bfloat16 matmul units (CPU: AMX or AVX512-BF16; "
            "GPU: compute capability 8 or later), so it is emulated and likely slower than float32")


def autocast(device: torch.device, precision: str):
    """The context a training forward pass and its loss run in: nothing for ``"float32"``;
    ``torch.autocast`` to bfloat16 for ``"bfloat16"`` (weights, gradients and Adam stay float32:
    autocast rounds the inputs of each matmul, and accumulates in float32)."""
    if precision == "float32":
        return contextlib.nullcontext()
    if device.type not in ("cpu", "cuda"):
        raise SpecError(f"precision {precision!r} runs on cpu or cuda, not {device.type}")
    return torch.autocast(device.type, dtype=torch.bfloat16)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device for ``--device``; anything torch cannot run here is a SpecError."""
    text = str(device).strip()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not index.isdigit()) or (index and kind != "cuda"):
        raise SpecError(f"--device {text!r} is not a device mmgain can use; choose {DEVICE_FORMS}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise SpecError("--device cuda was asked for but no CUDA device is available "
                            "(is the CUDA build of torch installed? see docs/guide/quickstart.md, 'GPU')")
        if index and int(index) >= torch.cuda.device_count():
            raise SpecError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SpecError("--device mps was asked for but this torch build or machine has no MPS backend")
    return torch.device(text)


@dataclass
class DeviceData:
    """G same-shaped datasets resident on the device: ``xs[k]`` (G, n, d_k), ``y`` (G, n).

    ``x_index`` (G,) lets several label sets share features without copying them: data group g
    reads the features of group ``x_index[g]`` (see :meth:`relabelled`)."""

    xs: dict[str, Tensor]
    y: Tensor
    x_index: Tensor | None = None

    @classmethod
    def stack(cls, parts: Sequence[tuple[Mapping[str, np.ndarray], np.ndarray]], device) -> "DeviceData":
        names = list(parts[0][0])
        xs = {k: torch.from_numpy(np.stack([p[0][k] for p in parts]).astype(np.float32)).to(device)
              for k in names}
        y = torch.from_numpy(np.stack([p[1] for p in parts])).to(device)
        return cls(xs, y)

    @property
    def n(self) -> int:
        return int(self.y.shape[1])

    def to_numpy(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The data as host arrays, bit for bit (to ship to another process or machine)."""
        return {k: x.cpu().numpy() for k, x in self.xs.items()}, self.y.cpu().numpy()

    @classmethod
    def from_numpy(cls, xs: Mapping[str, np.ndarray], y: np.ndarray, device) -> "DeviceData":
        return cls({k: torch.from_numpy(np.array(x)).to(device) for k, x in xs.items()},
                   torch.from_numpy(np.array(y)).to(device))

    def moments(self) -> dict[str, tuple[Tensor, Tensor]]:
        """Per group and feature: mean and std (1 where a feature is constant)."""
        out = {}
        for k, x in self.xs.items():
            sd = x.std(1, unbiased=False, keepdim=True)
            out[k] = (x.mean(1, keepdim=True), torch.where(sd > 0, sd, torch.ones_like(sd)))
        return out

    def standardized(self, moments: dict[str, tuple[Tensor, Tensor]]) -> "DeviceData":
        return DeviceData({k: (x - moments[k][0]) / moments[k][1] for k, x in self.xs.items()}, self.y)

    def gather(self, groups: Tensor, rows: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Rows ``rows`` (S, B) of group ``groups[s]`` for each stream: xs (S, B, d_k), y (S, B)."""
        g = groups[:, None]
        gx = g if self.x_index is None else self.x_index[groups][:, None]
        return {k: x[gx, rows] for k, x in self.xs.items()}, self.y[g, rows]

    def relabelled(self, y: Tensor, x_groups) -> "DeviceData":
        """Other labels ``y`` (G', n) on these features: new group i reads group ``x_groups[i]``."""
        if self.x_index is not None:
            raise ValueError("relabelled data cannot be relabelled again")
        return DeviceData(self.xs, y, torch.as_tensor(np.asarray(x_groups), device=y.device))


@dataclass
class Streams:
    """Per stream: its data group, its seed, and the rows of its training sample."""

    groups: np.ndarray
    seeds: np.ndarray
    train_rows: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.seeds)

    def subset(self, idx: Sequence[int]) -> "Streams":
        return Streams(self.groups[list(idx)], self.seeds[list(idx)], [self.train_rows[i] for i in idx])


class BatchedAdam:
    """Adam on stacked parameters, stream by stream.

    Adam is elementwise, so stacking is exact; ``step(active)`` updates only the
    streams still inside their own step budget and leaves the others (and their
    moment estimates and step counts) untouched.  Same arithmetic as torch.optim.Adam.
    """

    def __init__(self, params: Sequence[Tensor], n_streams: int, lr: float, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = torch.zeros(n_streams, device=self.params[0].device, dtype=torch.float64)
        self._fused = hasattr(torch, "_fused_adam_")

    @torch.no_grad()
    def step(self, active: Tensor) -> None:
        b1, b2 = self.betas
        self.t += active
        if self._fused and bool(active.all()) and bool((self.t == self.t[0]).all()):
            # Every stream at the same step: torch's fused Adam kernel, same arithmetic, one pass.
            steps = [torch.tensor(float(self.t[0]), device=p.device) for p in self.params]
            try:
                torch._fused_adam_(self.params, [p.grad for p in self.params], self.m, self.v, [], steps,
                                   lr=self.lr, beta1=b1, beta2=b2, weight_decay=0.0, eps=self.eps,
                                   amsgrad=False, maximize=False)
                return
            except (AttributeError, NotImplementedError, RuntimeError):  # older torch: no such kernel here
                self._fused = False
        t = self.t.clamp(min=1)
        step_size = (self.lr / (1 - b1 ** t)).float()
        bc2_sqrt = (1 - b2 ** t).sqrt().float()
        every = bool(active.all())
        for p, m, v in zip(self.params, self.m, self.v):
            shape = (-1,) + (1,) * (p.dim() - 1)
            g = p.grad
            if every:
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(self.eps)
                p.sub_(step_size.view(shape) * (m / denom))
            else:
                a = active.view(shape).bool()
                m.copy_(torch.where(a, m.lerp(g, 1 - b1), m))
                v.copy_(torch.where(a, v * b2 + (1 - b2) * g * g, v))
                denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(self.eps)
                p.copy_(torch.where(a, p - step_size.view(shape) * (m / denom), p))


class BatchedTrainer:
    """Fits S streams × A subsets of :class:`BatchedLateFusion` and scores them.

    Hyper-parameters come from the ``protocol``; learned state is ``model_``,
    ``probe_model_`` (the encoders frozen after ``protocol.probe_epochs``; the
    final model when that is None).  :meth:`train_metrics` gives each model's
    risk on its own full training sample (not the last minibatch), the
    empirical risk L̂ of the theory.
    """

    def __init__(self, protocol: TrainingProtocol, dims: Mapping[str, int], subsets: Sequence[Sequence[str]],
                 n_outputs: int, task: str | Task, device: str | torch.device = "cpu"):
        self.protocol, self.dims, self.subsets = protocol, dict(dims), list(subsets)
        self.n_outputs, self.task, self.device = n_outputs, get_task(task), torch.device(device)

    @staticmethod
    def n_steps(protocol: TrainingProtocol, streams: Streams) -> int:
        return max(BatchSchedule(s, len(r), protocol.batch_size, protocol.epochs).n_steps
                   for s, r in zip(streams.seeds, streams.train_rows))

    def fit(self, train: DeviceData, streams: Streams, on_step: Callable[[], None] | None = None) -> "BatchedTrainer":
        p = self.protocol
        arch = p.architecture()
        self.model_ = model = BatchedLateFusion(self.dims, self.subsets, streams.seeds, self.n_outputs,
                                                arch.pop("hidden"), device=self.device, **arch)
        if p.solver == "lstsq":
            return self._fit_least_squares(train, streams, on_step)
        with flush_denormals(self.device):
            return self._fit_adam(model, train, streams, on_step)

    def _fit_adam(self, model: BatchedLateFusion, train: DeviceData, streams: Streams,
                  on_step: Callable[[], None] | None) -> "BatchedTrainer":
        p, S = self.protocol, len(streams)
        opt = BatchedAdam([v for v in model.params.values() if v.requires_grad], S, p.lr, p.betas, p.eps)
        schedules = [BatchSchedule(s, len(r), p.batch_size, p.epochs)
                     for s, r in zip(streams.seeds, streams.train_rows)]
        batches = [iter(sc) for sc in schedules]
        n_steps = np.array([sc.n_steps for sc in schedules])
        B = min(p.batch_size, max(len(r) for r in streams.train_rows))
        groups = torch.as_tensor(streams.groups, device=self.device)
        rows_np = [np.asarray(r) for r in streams.train_rows]
        tile = row_tile(model, S, B, self.device)
        snap_at = None
        if p.probe_epochs is not None:
            snap_at = torch.as_tensor([p.probe_epochs * sc.steps_per_epoch for sc in schedules], device=self.device)
            snapshot = {k: v.detach().clone() for k, v in model.params.items()}
        for t in range(int(n_steps.max())):
            active_np = t < n_steps
            rows = np.zeros((S, B), dtype=np.int64)
            valid = np.zeros((S, B), dtype=np.float32)
            for s in np.flatnonzero(active_np):
                pos = next(batches[s])
                rows[s, :len(pos)] = rows_np[s][pos]
                valid[s, :len(pos)] = 1.0
            xb, yb = train.gather(groups, torch.from_numpy(rows).to(self.device))
            valid_t = torch.from_numpy(valid).to(self.device)
            count = valid_t.sum(1).clamp(min=1)[:, None]
            for prm in model.params.values():
                prm.grad = None
            for r0 in range(0, B, tile):
                xt = {k: v[:, r0:r0 + tile] for k, v in xb.items()} if tile < B else xb
                with autocast(self.device, p.precision):
                    out = model.forward(xt)                                   # (S, b, A, O)
                    loss = self.task.loss(out, yb[:, r0:r0 + tile, None].expand(-1, -1, out.shape[2]))
                per_model = (loss * valid_t[:, r0:r0 + tile, None]).sum(1) / count
                per_model.sum().backward()
            opt.step(torch.from_numpy(active_np).to(self.device))
            if snap_at is not None and bool((hit := snap_at == t + 1).any()):
                for k, v in model.params.items():
                    snapshot[k][hit] = v.detach()[hit]
            if on_step is not None:
                on_step()
        self.probe_model_ = model if snap_at is None else model.with_params(snapshot)
        return self

    @torch.no_grad()
    def _fit_least_squares(self, train: DeviceData, streams: Streams, on_step=None) -> "BatchedTrainer":
        """``solver="lstsq"``: every model set to its exact least-squares fit.  A linear late-fusion
        model with hidden ≥ d_k holds any linear function: W_k = [I, 0], V_k = [β_k, 0], c = the
        intercept.  The steps are counted as Adam's would be, for the progress bar."""
        if self.task.name != "regression" or self.n_outputs != 1:
            raise SpecError("protocol.solver 'lstsq' fits squared loss: it needs a regression task")
        model = self.model_
        narrow = [k for k, d in self.dims.items() if model.widths[k] < d]
        if narrow:
            raise SpecError("protocol.solver 'lstsq' needs each encoder at least as wide as its modality: "
                            + ", ".join(f"{k} has {self.dims[k]} features, width {model.widths[k]}" for k in narrow))
        prm = {k: torch.zeros_like(v) for k, v in model.params.items()}
        for s, (g, rows) in enumerate(zip(streams.groups, streams.train_rows)):
            r = torch.as_tensor(np.asarray(rows), device=self.device)
            xb, yb = train.gather(torch.as_tensor([int(g)], device=self.device), r[None])
            xs, y = {k: v[0].double() for k, v in xb.items()}, yb[0].double()
            for a, sub in enumerate(self.subsets):
                used = [k for k in model.names if k in sub]
                X = torch.cat([torch.ones(len(r), 1, dtype=torch.float64, device=self.device)] + [xs[k] for k in used], 1)
                coef = (torch.linalg.pinv(X) @ y).float()                # minimum-norm least squares
                prm["c"][s, a, 0] = coef[0]
                start = 1
                for k in used:
                    d, pos = self.dims[k], model.members[k].index(a)
                    prm[f"enc.{k}.0.weight"][s, pos, :d, :] = torch.eye(d, device=self.device)
                    prm[f"V.{k}"][s, pos, :d, 0] = coef[start:start + d]
                    start += d
        for k, v in model.params.items():
            v.copy_(prm[k])
        self.probe_model_ = model
        if on_step is not None:
            for _ in range(self.n_steps(self.protocol, streams)):
                on_step()
        return self

    # --------------------------------------------------------------- scoring
    @torch.no_grad()
    def _outcomes(self, data: DeviceData, groups: Tensor, rows: Tensor, chunk: int = 2048) -> dict[str, Tensor]:
        """Per-row outcomes of every model on rows ``rows`` (S, n) of its stream's group: (S, A, n)."""
        parts: dict[str, list[Tensor]] = {}
        self.max_abs_output_ = torch.zeros(len(groups), len(self.subsets), device=self.device)
        for r0 in range(0, rows.shape[1], chunk):
            xb, yb = data.gather(groups, rows[:, r0:r0 + chunk])
            out = self.model_.forward(xb)                                        # (S, b, A, O)
            self.max_abs_output_ = torch.maximum(self.max_abs_output_,
                                                 out.abs().nan_to_num(float("inf")).amax(dim=(1, 3)))
            for k, v in self.task.row_outcomes(out, yb[:, :, None].expand(-1, -1, out.shape[2])).items():
                parts.setdefault(k, []).append(v.transpose(1, 2))
        return {k: torch.cat(v, dim=2) for k, v in parts.items()}

    def test_rows(self, data: DeviceData, groups: np.ndarray) -> dict[str, np.ndarray]:
        """Per-row test outcomes of every model on every row of its group: ``{name: (S, A, n)}``."""
        g = torch.as_tensor(groups, device=self.device)
        rows = torch.arange(data.n, device=self.device)[None].expand(len(g), -1)
        return as_numpy_rows(self._outcomes(data, g, rows))

    def train_rows(self, train: DeviceData, streams: Streams) -> tuple[dict[str, Tensor], Tensor]:
        """Per-row outcomes of every model on its own training sample, ``{name: (S, A, n)}``
        padded to the largest sample, and the mask (S, n) of real rows."""
        n = max(len(r) for r in streams.train_rows)
        rows = np.zeros((len(streams), n), dtype=np.int64)
        mask = np.zeros((len(streams), n), dtype=bool)
        for s, r in enumerate(streams.train_rows):
            rows[s, :len(r)], mask[s, :len(r)] = r, True
        g = torch.as_tensor(streams.groups, device=self.device)
        return self._outcomes(train, g, torch.from_numpy(rows).to(self.device)), torch.from_numpy(mask).to(self.device)

    def train_metrics(self, train: DeviceData, streams: Streams, rows=None) -> dict[str, np.ndarray]:
        """Each model's metrics on its own full training sample (S, A): the empirical risk L̂.
        ``rows``: what :meth:`train_rows` returned for these streams, if already computed."""
        out, mask = rows if rows is not None else self.train_rows(train, streams)
        m = mask[:, None, :].double()
        means = {k: ((v.double() * m).sum(2) / m.sum(2)).cpu().numpy()[..., None] for k, v in out.items()}
        return self.task.metrics(means, "train_")


def chunk_streams(sizes: Sequence[int], bytes_per_row: float, budget_bytes: float) -> list[list[int]]:
    """Group streams into chunks that fit the memory budget, similar sample sizes together.

    A chunk pads every stream's minibatch to its largest one, so streams are sorted by
    batch rows (``sizes``) and packed greedily, and a stream with fewer than half the rows
    of its chunk's largest starts a new chunk: small samples never pay for large ones
    (``mmgain bench`` measured a 2048-row padding of every stream as the CPU's main cost).
    """
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    chunks: list[list[int]] = []
    for i in order:
        if chunks and 2 * sizes[i] >= sizes[chunks[-1][0]] \
                and (len(chunks[-1]) + 1) * sizes[chunks[-1][0]] * bytes_per_row <= budget_bytes:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks
