"""`mmgain bench --quick`: the benchmark runs, its models agree with the naive loop's, and its last
line is the JSON that scripts read (a smoke test: speed targets live in the README, not here)."""
import json

from mmgain.cli import main
from mmgain.run.bench import _useful_flops, workload
from mmgain.training import TrainingProtocol


def test_bench_quick_runs_and_agrees_with_the_naive_loop(capsys):
    assert main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert set(result) >= {"device", "batched_s", "naive_s", "speedup", "train_speedup", "probe_speedup",
                           "useful_gflops", "real_gflops", "peak_gflops", "train_frac_peak", "peak_mem_mb"}
    assert result["real_gflops"] < result["useful_gflops"]                      # the honest count is lower
    assert result["train_frac_peak"] == round(result["real_gflops"] / result["peak_gflops"], 3)
    assert result["max_test_acc_diff"] <= 0.5            # the same models, trained two ways
    assert abs(result["mean_probe_acc_diff"]) <= 2.0      # two solvers of the same convex probe
    assert result["batched_s"] > 0 and result["naive_s"] > 0 and result["useful_gflops"] > 0


def test_useful_flops_count_only_the_modalities_and_rows_asked_for():
    w = workload(quick=True)
    p = TrainingProtocol(hidden=8, batch_size=2048, epochs=2)
    one = _useful_flops(w, [("text",)], [list(range(100))], [0], p)
    # 100 real rows × 2 epochs; forward 2·d·H + 2·H·C per row; backward twice that
    assert one == 3 * (2 * 20 * 8 + 2 * 8 * 6) * 100 * 2
    both = _useful_flops(w, [("text", "video")], [list(range(100))], [0], p)
    assert both == 3 * (2 * (20 + 64) * 8 + 2 * 2 * 8 * 6) * 100 * 2
    deep = _useful_flops(w, [("text",)], [list(range(100))], [0], p.with_(encoder="mlp2"))
    assert deep == 3 * (2 * 20 * 8 + 2 * 8 * 8 + 2 * 8 * 6) * 100 * 2          # the second layer counts too
    widths = p.with_(hidden={"text": 8, "audio": 4, "video": 16})                # per-modality widths
    mixed = _useful_flops(w, [("text", "video")], [list(range(100))], [0], widths)
    assert mixed == 3 * (2 * (20 * 8 + 64 * 16) + 2 * (8 + 16) * 6) * 100 * 2


def test_real_flops_take_the_first_layer_at_twice_its_forward():
    """The first layer's input needs no gradient: forward + weight gradient, 2× forward; the head
    (and a second encoder layer) forward + both gradients, 3× forward (issue: the old count was
    1.48× high on the bench)."""
    w = workload(quick=True)
    p = TrainingProtocol(hidden=8, batch_size=2048, epochs=2)
    one = _useful_flops(w, [("text",)], [list(range(100))], [0], p, real=True)
    assert one == (2 * 2 * 20 * 8 + 3 * 2 * 8 * 6) * 100 * 2
    deep = _useful_flops(w, [("text",)], [list(range(100))], [0], p.with_(encoder="mlp2"), real=True)
    assert deep == (2 * 2 * 20 * 8 + 3 * 2 * 8 * 8 + 3 * 2 * 8 * 6) * 100 * 2


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
