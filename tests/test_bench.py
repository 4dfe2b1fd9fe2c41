"""`mmgain bench --quick`: the benchmark runs, its models agree with the naive loop's, and its last
line is the JSON that scripts read (a smoke test: speed targets live in the README, not here)."""
import json

import pytest

from mmgain.cli import main
from mmgain.run.bench import workload
from mmgain.training.flops import training_flops
from mmgain.training import TrainingProtocol


def test_bench_quick_runs_and_agrees_with_the_naive_loop(capsys):
    assert main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert set(result) >= {"device", "batched_s", "naive_s", "speedup", "train_speedup", "probe_speedup",
                           "useful_gflops", "real_gflops", "peak_gflops", "train_frac_peak", "peak_mem_mb",
                           "probe_evals", "probe_frac_peak", "floor_s", "batched_over_floor"}
    assert result["probe_evals"] >= 140                   # 140 models, each evaluated at least once
    assert 0 < result["probe_rounds"] < result["probe_evals"]
    assert 0 < result["probe_frac_peak"] < 1 and 0 < result["floor_s"] < result["batched_s"]
    assert result["real_gflops"] < result["useful_gflops"]                      # the honest count is lower
    assert result["train_frac_peak"] == round(result["real_gflops"] / result["peak_gflops"], 3)
    assert result["max_test_acc_diff"] <= 0.5            # the same models, trained two ways
    assert abs(result["mean_probe_acc_diff"]) <= 2.0      # two solvers of the same convex probe
    assert result["batched_s"] > 0 and result["naive_s"] > 0 and result["useful_gflops"] > 0
    # the default `mmgain run` (mfeat: 63 subsets × 5 ratios × 5 folds of 1600 training rows), counted
    # by hand: each modality in 32 subsets, first layer 2 × 2·d·128, the head 3 × 2·128·10 per modality
    from mmgain.data.splits import sample_size
    from mmgain.catalog import RATIOS
    dims = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
    per_row = sum(32 * (4 * d * 128 + 6 * 128 * 10) for d in dims.values())
    rows = 5 * 100 * sum(sample_size(r, 1600) for r in RATIOS)
    run = result["default_run"]
    assert run["models"] == 1575 and run["train_flops"] == pytest.approx(per_row * rows, rel=1e-3)
    assert run["train_floor_s"] == pytest.approx(run["train_flops"] / 1e9 / result["peak_gflops"], rel=0.01)


def test_training_flops_count_only_the_modalities_and_rows_asked_for():
    w = workload(quick=True)
    p = TrainingProtocol(hidden=8, batch_size=2048, epochs=2)
    one = training_flops(p, w.dims, [("text",)], 6, [100], real=False)
    # 100 real rows × 2 epochs; forward 2·d·H + 2·H·C per row; backward twice that
    assert one == 3 * (2 * 20 * 8 + 2 * 8 * 6) * 100 * 2
    both = training_flops(p, w.dims, [("text", "video")], 6, [100], real=False)
    assert both == 3 * (2 * (20 + 64) * 8 + 2 * 2 * 8 * 6) * 100 * 2
    deep = training_flops(p.with_(encoder="mlp2"), w.dims, [("text",)], 6, [100], real=False)
    assert deep == 3 * (2 * 20 * 8 + 2 * 8 * 8 + 2 * 8 * 6) * 100 * 2          # the second layer counts too
    widths = p.with_(hidden={"text": 8, "audio": 4, "video": 16})                # per-modality widths
    mixed = training_flops(widths, w.dims, [("text", "video")], 6, [100], real=False)
    assert mixed == 3 * (2 * (20 * 8 + 64 * 16) + 2 * (8 + 16) * 6) * 100 * 2


def test_real_flops_take_the_first_layer_at_twice_its_forward():
    """The first layer's input needs no gradient: forward + weight gradient, 2× forward; the head
    (and a second encoder layer) forward + both gradients, 3× forward (issue: the old count was
    1.48× high on the bench)."""
    w = workload(quick=True)
    p = TrainingProtocol(hidden=8, batch_size=2048, epochs=2)
    one = training_flops(p, w.dims, [("text",)], 6, [100])
    assert one == (2 * 2 * 20 * 8 + 3 * 2 * 8 * 6) * 100 * 2
    deep = training_flops(p.with_(encoder="mlp2"), w.dims, [("text",)], 6, [100])
    assert deep == (2 * 2 * 20 * 8 + 3 * 2 * 8 * 8 + 3 * 2 * 8 * 6) * 100 * 2
    mlp = training_flops(p.with_(head="mlp", head_width=5), w.dims, [("text",)], 6, [100])
    assert mlp == (2 * 2 * 20 * 8 + 3 * 2 * 8 * 5 + 3 * 2 * 5 * 6) * 100 * 2   # the mlp head: both layers


def test_bench_k_is_bounded(capsys):
    assert main(["bench", "--quick", "--k", "20"]) == 2
    assert "--k must lie in 2..12" in capsys.readouterr().err


def test_bench_batched_only_times_the_lattice_alone(capsys):
    assert main(["bench", "--quick", "--k", "3", "--batched-only"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["k"] == 3 and result["subsets"] == 7 and result["models"] == 14
    assert result["ms_per_model"] == round(1000 * result["batched_s"] / 14, 2) or \
        abs(result["ms_per_model"] - 1000 * result["batched_s"] / 14) < 0.1
    assert "naive" not in " ".join(out)


def test_the_estimate_calibrates_itself_from_this_machines_matmul_peak():
    """The rates come from the reference machine (AMX); on another CPU the matmul share of the time
    scales with the peaks, in the precision that trains.  On the reference peaks the estimate is the
    uncalibrated one; half the float32 peak slows the matmul share twofold; bfloat16 is estimated
    faster where its matmul is (the reference day's measured 21.7 s against 50.4 s) and slower where
    it is emulated (AVX2); run.json's record holds the training floor at the peak."""
    from mmgain.run.budget import GEMM_SHARE, PROBE_REFERENCE_GFLOPS, REFERENCE_PEAK_GFLOPS, estimate
    from mmgain.training.protocol import PROTOCOLS

    proto = PROTOCOLS.get("huang2021")
    rest = ({"a": 50, "b": 30}, [("a",), ("b",), ("a", "b")], [400, 1600], 1600, 400, 2, 1, "cpu")
    base = estimate(proto, *rest)
    at_reference = estimate(proto, *rest, peaks=dict(REFERENCE_PEAK_GFLOPS))
    assert at_reference.train_seconds == pytest.approx(base.train_seconds)
    probes_day = estimate(proto, *rest, peaks={"float32": PROBE_REFERENCE_GFLOPS})
    assert probes_day.probe_seconds == pytest.approx(base.probe_seconds)
    slow = estimate(proto, *rest, peaks={"float32": REFERENCE_PEAK_GFLOPS["float32"] / 2})
    assert slow.train_seconds == pytest.approx(base.train_seconds * (1 + GEMM_SHARE))
    bf = proto.with_(precision="bfloat16")
    amx = estimate(bf, *rest, peaks=dict(REFERENCE_PEAK_GFLOPS))
    assert amx.train_seconds / base.train_seconds == pytest.approx(21.7 / 50.4, rel=0.02)
    avx2_f32 = estimate(proto, *rest, peaks={"float32": 157.0})
    avx2_bf16 = estimate(bf, *rest, peaks={"float32": 157.0, "bfloat16": 60.0})
    assert avx2_bf16.train_seconds > avx2_f32.train_seconds > base.train_seconds
    assert avx2_bf16.probe_seconds == pytest.approx(avx2_f32.probe_seconds)       # probes run in float32
    rec = avx2_bf16.record()
    assert rec["train_floor_s"] == pytest.approx(avx2_bf16.train_flops / 60e9, rel=5e-3)   # 3 significant digits
    assert rec["matmul_peak_gflops"] == {"float32": 157.0, "bfloat16": 60.0}
    # on a GPU training and the probes scale apart (training ran 78×, the probes 4.3× the reference
    # CPU's rates on an H200): the probes are most of a GPU run
    from mmgain.run.budget import GPU_PROBE_SPEEDUP, GPU_TRAIN_SPEEDUP
    gpu = estimate(proto, *rest[:-1], "cuda", peaks=dict(REFERENCE_PEAK_GFLOPS))      # peaks: CPU only
    assert gpu.train_seconds == pytest.approx(base.train_seconds / GPU_TRAIN_SPEEDUP)
    assert gpu.probe_seconds == pytest.approx(base.probe_seconds / GPU_PROBE_SPEEDUP)
    assert gpu.probe_seconds / gpu.train_seconds > base.probe_seconds / base.train_seconds


def test_available_memory_counts_what_the_kernel_can_reclaim(tmp_path):
    """A machine whose page cache holds recently read files has almost no free pages; the memory a
    run can use is MemAvailable (the README's first command was refused for 1.3 GB 'available' on a
    23 GB machine with 21 GB of cache)."""
    from mmgain.run.budget import available_memory_gb

    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       24000000 kB\nMemFree:          500000 kB\nMemAvailable:   22000000 kB\n")
    assert available_memory_gb(str(info)) == pytest.approx(22000000 * 1024 / 1e9)
    assert available_memory_gb(str(tmp_path / "absent")) > 0                  # falls back to the free pages


def test_work_counts_sum_the_chunks_and_refuse_a_record_this_version_does_not_write():
    import numpy as np

    from mmgain.run.budget import WORK_KEYS, work_counts
    one = {k: np.asarray([2.0]) for k in WORK_KEYS}
    got = work_counts([one, {**one, "probe_fits": np.asarray([3.0])}])
    assert got["probe_fits"] == 5 and got["train_s"] == 4.0 and got["probe_evals"] == 4
    assert work_counts([one, {k: v for k, v in one.items() if k != "probe_s"}]) is None      # a key missing
    assert work_counts([{**one, "train_s": np.asarray(["x"])}]) is None                        # not a number
    assert work_counts([{**one, "probe_flops": np.asarray([np.inf])}]) is None                # not finite
    # the solver's sequential counts: summed where every chunk has them (an older chunk has not)
    from mmgain.run.budget import SEQUENTIAL_KEYS
    seq = {**one, **{k: np.asarray([1.5]) for k in SEQUENTIAL_KEYS}}
    both = work_counts([seq, seq])
    assert [both[k] for k in SEQUENTIAL_KEYS] == [3, 3, 3]
    assert not set(SEQUENTIAL_KEYS) & set(work_counts([seq, one]))
    assert not set(SEQUENTIAL_KEYS) & set(work_counts([seq, {**seq, "probe_rounds": np.asarray([np.nan])}]))
