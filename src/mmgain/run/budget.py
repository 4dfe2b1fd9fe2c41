"""What a run will cost, said before it starts — and refused above a limit unless asked.

The estimate is deliberately simple: the multiply–adds of training (every model, every
epoch, every row of its sample, only the modalities in its subset, forward + backward)
and the work of the probes, divided by rates measured on the project's 2-core CPU
(the default mfeat and MOSI runs) or, on a GPU, those rates times the speed-ups of training and
of the probes measured on one card (:data:`GPU_TRAIN_SPEEDUP`, :data:`GPU_PROBE_SPEEDUP`).  It is a rough
guide to tell minutes from days, not a promise.

On a CPU the rates calibrate themselves: a large matmul is timed once per process
(:func:`matmul_peak_gflops`), and the time of the matmul part of the work (:data:`GEMM_SHARE`)
scales with the reference machine's peak over this one's, in the precision that trains —
so an AVX2-only CPU (slower float32, bfloat16 emulated) is estimated slower than the AMX
machine the rates come from, and ``--precision bfloat16`` faster only where its matmul is.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import SpecError

# Calibrated on the project's 2-core CPU (Intel Xeon with AMX): TRAIN_RATE on 2026-11-27,
# PROBE_PER_FIT_S on 2026-12-03, PROBE_RATE and PROBE_OVERHEAD_S on 2026-12-03 (afternoon);
# the runs and their figures: benchmarks/2026-12-03-estimate.md.  PROBE_RATE and PROBE_PER_FIT_S
# were rescaled on 2026-12-04 for the probe's intercept step, which cut the solver's evaluations
# per run (benchmarks/2026-12-04-intercept-step.md).
TRAIN_RATE = 3.6e10          # training multiply–adds per second
PROBE_RATE = 9.0e8           # probe work units (rows × latent width × L-BFGS passes) per second
PROBE_OVERHEAD_S = 0.5       # per stream: the probes' per-iteration Python
PROBE_PER_FIT_S = 2.2e-3     # per probe fit (model or control, per fold): iterations on small separable data
HELDOUT_ROW_WEIGHT = 4.5     # a test row's probe work against a training row's: the cross-fitted probe's folds and rule
# On a GPU, the reference machine's times divided by these: training and probes apart, from the
# default run on an NVIDIA H200 (benchmarks/2026-12-04-h200.md), where training is seconds and the
# probes' solver is bound by its sequential iterations, not by arithmetic.
GPU_TRAIN_SPEEDUP = 78.0
GPU_PROBE_SPEEDUP = 4.3
# The reference machine's matmul_peak_gflops on the day TRAIN_RATE was set, and the matmul share
# of training's time that the same day's float32 and bfloat16 trainings imply; derivation and raw
# figures: benchmarks/2026-12-03-estimate-calibration.md.
REFERENCE_PEAK_GFLOPS = {"float32": 265.0, "bfloat16": 1319.0}
GEMM_SHARE = 0.71
# The same machine's float32 peak on 2026-12-03, the day the probe rates were set
# (benchmarks/2026-12-03-bench-real-flops.md): the probes' reference.
PROBE_REFERENCE_GFLOPS = 181.8
PROCESS_BYTES = 4e8          # Python, torch and numpy loaded, before any data
MAX_MODELS = 20_000
MAX_HOURS = 12.0


_PEAKS: dict[tuple[str, str], float] = {}


def matmul_peak_gflops(device, precision: str = "float32") -> float:
    """A large plain matmul's FLOP/s in ``precision`` on ``device`` (the practical peak), timed once
    per process and device; ``mmgain bench`` and the estimate both use it."""
    import time

    import torch

    device = torch.device(device)
    key = (str(device), precision)
    if key not in _PEAKS:
        n = 2048 if device.type == "cpu" else 8192
        dtype = getattr(torch, precision)
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        (a @ b).sum().item()
        reps, t0 = 3, time.perf_counter()
        for _ in range(reps):
            c = a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        _ = c[0, 0].item()
        _PEAKS[key] = 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9
    return _PEAKS[key]


WORK_KEYS = ("train_s", "probe_s", "train_flops", "probe_flops", "probe_evaluations", "probe_fits",
             "probe_unconverged")
SEQUENTIAL_KEYS = ("probe_solves", "probe_rounds", "probe_objective_calls")   # solver calls and what runs in turn


def work_counts(chunks: list[dict]) -> dict | None:
    """The run's counted work from its chunks' records (:func:`mmgain.run.chunk.run_chunk`):
    seconds of training and of what follows it (scoring, diagnostics, probes), training's
    counted FLOPs (:mod:`mmgain.training.flops`), the probes' solver evaluations and FLOPs, their
    fits and how many stopped short of the tolerance, and their solver calls with the rounds
    and objective calls those ran one after the other (what a GPU's probe time follows).  None if a chunk's record is not one this
    version writes (a stored chunk is read from a folder: untrusted)."""
    for c in chunks:
        if any(k not in c or np.asarray(c[k]).dtype.kind not in "fiu" or not np.isfinite(c[k]).all()
               for k in WORK_KEYS):
            return None
    total = lambda k: float(sum(float(np.sum(c[k])) for c in chunks))   # noqa: E731
    out = {"train_s": round(total("train_s"), 2), "probe_s": round(total("probe_s"), 2),
           "train_flops": float(f"{total('train_flops'):.4g}"), "probe_flops": float(f"{total('probe_flops'):.4g}"),
           "probe_evals": int(total("probe_evaluations")), "probe_fits": int(total("probe_fits")),
           "probe_fits_short": int(total("probe_unconverged"))}
    if all(k in c and np.asarray(c[k]).dtype.kind in "fiu" and np.isfinite(c[k]).all()
           for c in chunks for k in SEQUENTIAL_KEYS):   # chunks stored by an older version lack them
        out.update({k: int(round(total(k))) for k in SEQUENTIAL_KEYS})
    return out


def work_record(work: dict, device, precision: str, wall_s: float | None) -> dict:
    """run.json's ``work``: the counts (:func:`work_counts`) set against this machine's matmul
    peak: the fraction of the peak training and the probes ran at, and the floor — the run's
    counted FLOPs at 100 % of the peak (training in its precision, probes in float32) — with the
    wall time over it (``wall_s`` None: a resumed run, whose chunks ran in more than one process)."""
    peak_train = matmul_peak_gflops(device, precision) * 1e9
    peak_probe = matmul_peak_gflops(device, "float32") * 1e9
    floor = work["train_flops"] / peak_train + work["probe_flops"] / peak_probe
    frac = lambda flops, s, peak: float(f"{flops / s / peak:.3g}") if s > 0 else None   # noqa: E731
    return {**work, "peak_gflops": {precision: round(peak_train / 1e9, 1), "float32": round(peak_probe / 1e9, 1)},
            "train_frac_peak": frac(work["train_flops"], work["train_s"], peak_train),
            "probe_frac_peak": frac(work["probe_flops"], work["probe_s"], peak_probe),
            "floor_s": float(f"{floor:.3g}"), "wall_over_floor": round(wall_s / floor, 1) if floor > 0 and wall_s else None}


def time_factor(peak_gflops: float, reference_gflops: float = REFERENCE_PEAK_GFLOPS["float32"]) -> float:
    """This machine's time for work that took 1 on the reference machine in float32: the matmul
    share scales with the peaks, the rest (elementwise passes, Python) is taken as equal."""
    return GEMM_SHARE * reference_gflops / peak_gflops + (1.0 - GEMM_SHARE)


@dataclass
class Estimate:
    models: int
    streams: int
    subsets: int
    seconds: float
    memory_gb: float
    train_seconds: float = 0.0           # of ``seconds``: training (with --theory, its label-flip fits)
    probe_seconds: float = 0.0           # of ``seconds``: the latent probes
    train_flops: float = 0.0             # training's counted FLOPs, as run.json's work counts them
    peaks: dict | None = None            # this machine's matmul GFLOP/s by precision (CPU runs)
    precision: str = "float32"

    def record(self) -> dict:
        """What run.json keeps of the estimate: the seconds said up front, the training FLOPs and
        their floor at this machine's matmul peak (the time at 100 % of it), the calibration."""
        peak = (self.peaks or {}).get(self.precision)
        return {"seconds": round(self.seconds, 1), "train_seconds": round(self.train_seconds, 1),
                "probe_seconds": round(self.probe_seconds, 1), "train_flops": float(f"{self.train_flops:.4g}"),
                "train_floor_s": None if not peak else float(f"{self.train_flops / (peak * 1e9):.3g}"),
                "matmul_peak_gflops": {k: round(v, 1) for k, v in (self.peaks or {}).items()} or None,
                "reference_peak_gflops": {"training": REFERENCE_PEAK_GFLOPS, "probes": PROBE_REFERENCE_GFLOPS},
                "precision": self.precision}

    def line(self) -> str:
        t = self.seconds
        when = f"{t:.0f} s" if t < 120 else (f"{t / 60:.0f} min" if t < 7200 else f"{t / 3600:.1f} h")
        return (f"{self.models} models ({self.streams} streams × {self.subsets} subsets), roughly {when} "
                f"and {self.memory_gb:.1f} GB of memory (estimate)")


def estimate(protocol, dims: dict[str, int], subsets, sample_sizes, n_train: int, n_test: int, n_pairs: int,
             n_groups: int, device_type: str, theory: bool = False, memory_budget: float = 2e9,
             n_out: int = 10, dense_probe: bool = False, pair_blocks: int | None = None,
             peaks: dict[str, float] | None = None) -> Estimate:
    """``pair_blocks``: the modality blocks of the width-matched controls, Σ |M| over the pairs
    (M, N); each control is as wide as M.  None: one block per pair.  ``peaks``: this machine's
    matmul GFLOP/s by precision (:func:`matmul_peak_gflops`; CPU only): the rates are scaled by
    :func:`time_factor`, training's in its precision, the probes' in float32 (they always run in
    it).  None: the reference machine's rates as they are."""
    from ..training.flops import training_flops

    H = protocol.max_width()
    per_row = sum(sum(dims[k] + 1 for k in s) * H for s in subsets)         # one row through every model
    train = sum(protocol.epochs * n for n in sample_sizes) * per_row * 3      # forward + backward
    train *= 2 if theory else 1                                               # --theory: the label-flip fits
    latent_width = sum(len(s) for s in subsets) + (n_pairs if pair_blocks is None else pair_blocks)
    probe = len(sample_sizes) * (n_train + HELDOUT_ROW_WEIGHT * n_test) * latent_width * H * 60   # ~60 passes
    fits = len(sample_sizes) * (len(subsets) + n_pairs) * (1 + protocol.probe_folds)   # paper probe + cross-fit
    gpu = device_type == "cuda"
    precision = getattr(protocol, "precision", "float32")
    train_f = probe_f = 1.0
    if peaks and device_type != "cuda":
        train_f = time_factor(peaks.get(precision, peaks["float32"]))
        probe_f = time_factor(peaks["float32"], PROBE_REFERENCE_GFLOPS)
    train_s = train / TRAIN_RATE / (GPU_TRAIN_SPEEDUP if gpu else 1.0) * train_f
    probe_s = (probe / PROBE_RATE * probe_f + PROBE_OVERHEAD_S * len(sample_sizes) + PROBE_PER_FIT_S * fits) \
        / (GPU_PROBE_SPEEDUP if gpu else 1.0)
    return Estimate(len(sample_sizes) * len(subsets), len(sample_sizes), len(subsets), train_s + probe_s,
                    peak_memory(protocol, dims, subsets, sample_sizes, n_train, n_test, n_pairs, n_groups,
                                memory_budget, n_out, dense_probe) / 1e9, train_s, probe_s,
                    training_flops(protocol, dims, subsets, n_out, sample_sizes) * (2 if theory else 1),
                    dict(peaks) if peaks else None, precision)


def bytes_per_row(protocol, dims: dict[str, int], subsets) -> float:
    """Rough training working set per minibatch row of one stream (activations and inputs):
    what the runner packs chunks by."""
    pairs = sum(len(s) for s in subsets)           # (subset, modality) encoders
    return pairs * protocol.max_width() * 4 * 8 + sum(dims.values()) * 4 * 2


def peak_memory(protocol, dims, subsets, sample_sizes, n_train, n_test, n_pairs, n_groups, memory_budget,
                n_out, dense_probe) -> float:
    """Bytes at the run's peak: the process and its data, one chunk's parameters (with Adam's
    state and gradients), and the larger of its training activations and its probes.  Chunks
    are sized to ``memory_budget`` and probe groups to a fixed cap, but one stream (one
    model's probe) is the least a chunk (a group) holds: a budget below that is exceeded, and
    counted here."""
    from ..probes.latent import PROBE_GROUP_BYTES, probe_bytes_per_model

    H = protocol.max_width()
    data = n_groups * (n_train + n_test) * sum(dims.values()) * 4
    outcomes = len(sample_sizes) * (len(subsets) + n_pairs) * n_test * 30
    params = 4 * 4 * sum(sum((dims[k] + 1) * H for k in s) + len(s) * H * n_out for s in subsets)  # per stream
    batch = min(protocol.batch_size, max(sample_sizes, default=1))
    stream = params + batch * bytes_per_row(protocol, dims, subsets)
    together = max(1, min(len(sample_sizes), int(memory_budget // max(stream, 1))))   # streams in one chunk
    width = len(dims) * H if dense_probe else max((len(s) for s in subsets), default=1) * H
    one = probe_bytes_per_model(n_train, width, n_out, dense_probe)
    probes = max(one, min(PROBE_GROUP_BYTES, one * together * (len(subsets) + n_pairs)))
    latents = together * (n_train + n_test) * sum(len(s) for s in subsets) * H * 4 * 2
    return PROCESS_BYTES + data + outcomes + max(together * stream, together * params + latents + probes)


def available_memory_gb(meminfo: str = "/proc/meminfo") -> float:
    """Memory a new run can use: Linux's MemAvailable (free pages plus the page cache and other
    memory the kernel can reclaim), else the free pages.  Free pages alone are near 0 on a machine
    whose page cache holds recently read files, and refused ordinary runs there."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):   # pragma: no cover - not POSIX
        return float("inf")


def check(est: Estimate, allow_large: bool) -> None:
    """Refuse a run beyond the limits unless ``allow_large`` (``--yes``)."""
    reasons = []
    if est.models > MAX_MODELS:
        reasons.append(f"more than {MAX_MODELS} models")
    if est.seconds > MAX_HOURS * 3600:
        reasons.append(f"more than {MAX_HOURS:g} hours")
    mem = available_memory_gb()
    if est.memory_gb > 0.8 * mem:
        reasons.append(f"more memory than the {mem:.1f} GB available")
    if reasons and not allow_large:
        raise SpecError(f"this run needs {est.line()}: {', '.join(reasons)}. Fewer --seeds, --ratios or "
                        "--subsets make it smaller; pass --yes to run it anyway")
