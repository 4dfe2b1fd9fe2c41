"""Degenerate data and options answered before training, and outputs inside the guarded region.

Each case of the hostile-input campaign (issue: files from elsewhere are data) that used to
end in a traceback, a stale ``running`` status or a silently wrong answer.
"""
import json

import numpy as np
import pytest

from mmgain.cli import main

FAST = ["--seeds", "2", "--ratios", "1", "--epochs", "2", "--probe-epochs", "1", "--hidden", "8", "--quiet"]


def _err(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _npz(path, n=60, y=None, **mods):
    r = np.random.default_rng(0)
    y = np.arange(n) % 3 if y is None else y
    arrays = {"a": r.normal(size=(n, 3)) + np.asarray(y, dtype=float)[:, None], "b": r.normal(size=(n, 2))}
    arrays.update(mods)
    np.savez(path, y=y, **arrays)
    return path


@pytest.mark.parametrize("kind", ["complex", "datetime"])
def test_complex_and_datetime_modalities_are_refused(tmp_path, capsys, kind):
    n = 60
    bad = (np.ones((n, 2)) + 1j) if kind == "complex" else np.arange(n * 2).reshape(n, 2).astype("M8[s]")
    assert main(["run", "--data", str(_npz(tmp_path / "d.npz", b=bad)), *FAST, "--out", str(tmp_path / "r")]) == 2
    err = _err(capsys)
    assert "modality 'b'" in err and ("complex" in err or "date/time" in err)


def test_a_value_beyond_float32_is_refused_after_the_cast(tmp_path, capsys):
    r = np.random.default_rng(0)
    b = r.normal(size=(60, 2))
    b[7, 1] = 1e39                                  # finite in float64, inf in float32
    split = np.where(np.arange(60) < 45, "train", "test")
    assert main(["run", "--data", str(_npz(tmp_path / "d.npz", b=b, split=split)), *FAST,
                 "--out", str(tmp_path / "r")]) == 2
    err = _err(capsys)
    assert "row 7" in err and "float32" in err
    assert not (tmp_path / "r").exists()


def test_a_constant_regression_target_is_refused(tmp_path, capsys):
    data = _npz(tmp_path / "d.npz", y=np.full(60, 2.5))
    assert main(["run", "--data", str(data), "--task", "regression", *FAST, "--out", str(tmp_path / "r")]) == 2
    assert "constant" in _err(capsys)


def test_a_huge_regression_target_gets_advice_to_scale_it(tmp_path, capsys):
    y = np.random.default_rng(0).normal(size=60) * 1e20
    data = _npz(tmp_path / "d.npz", y=y)
    assert main(["run", "--data", str(data), "--task", "regression", *FAST, "--out", str(tmp_path / "r")]) == 2
    err = _err(capsys)
    assert "scale the target" in err.lower() and "--lr" not in err
    assert not (tmp_path / "r").exists()


def test_too_few_test_rows_for_the_probe_folds_is_a_clear_refusal(tmp_path, capsys):
    split = np.array(["train"] * 58 + ["test"] * 2)
    data = _npz(tmp_path / "d.npz", split=split)
    assert main(["run", "--data", str(data), *FAST, "--out", str(tmp_path / "r")]) == 2
    err = _err(capsys)
    assert "test part has 2 row(s)" in err and "folds" in err


def test_a_ratio_that_leaves_one_row_per_class_still_runs(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "--data", str(_npz(tmp_path / "d.npz", n=90)), "--seeds", "1", "--ratios", "0.05", "1",
                 "--epochs", "2", "--probe-epochs", "1", "--hidden", "8", "--quiet", "--out", str(out)]) == 0
    _err(capsys)
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_a_headerless_csv_with_a_short_label_file_is_refused(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    rows = np.random.default_rng(0).normal(size=(30, 3))
    (d / "a.csv").write_text("\n".join(",".join(f"{v:.3f}" for v in r) for r in rows) + "\n")
    (d / "labels.csv").write_text("y\n" + "\n".join(str(i % 3) for i in range(28)) + "\n")   # two rows short
    assert main(["run", "--data", str(d), *FAST, "--out", str(tmp_path / "r")]) == 2
    err = _err(capsys)
    assert "a.csv" in err


def test_a_csv_that_is_not_utf8_is_refused_by_name(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.csv").write_bytes(b"f1,f2\n" + b"\n".join(b"%d,\xff%d" % (i, i) for i in range(30)) + b"\n")
    (d / "labels.csv").write_text("y\n" + "\n".join(str(i % 3) for i in range(30)) + "\n")
    assert main(["run", "--data", str(d), *FAST, "--out", str(tmp_path / "r")]) == 2
    assert "a.csv" in _err(capsys)


@pytest.mark.parametrize("option", [["--split-seed", "-1"], ["--memory-gb", "inf"], ["--memory-gb", "0"],
                                    ["--seeds", "1e9"], ["--seeds", "0"], ["--test-fraction", "1"],
                                    ["--margin", "-1"], ["--epochs", "1e9"], ["--subsets", "sampled:²"],
                                    ["--subsets", "sampled:999999999999"]])
def test_options_out_of_range_are_refused_before_any_work(tmp_path, capsys, option):
    data = _npz(tmp_path / "d.npz")
    assert main(["run", "--data", str(data), *FAST, *option, "--out", str(tmp_path / "r")]) == 2
    err = _err(capsys)
    assert option[0] in err or "sampled" in err
    assert not (tmp_path / "r").exists()


def test_a_failure_while_writing_outputs_ends_the_run_failed_not_running(tmp_path, capsys, monkeypatch):
    from mmgain.cli import LAYOUTS

    layout = LAYOUTS.get("sweep")

    def broken(*a, **k):
        raise RuntimeError("figure code broke")

    monkeypatch.setattr(type(layout), "figures", broken)
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="figure code broke"):
        main(["run", "--data", str(_npz(tmp_path / "d.npz")), *FAST, "--cv", "0", "--out", str(out)])
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and "figure code broke" in run["error"] and "mmgain collect" in run["note"]


def test_the_memory_estimate_is_within_2x_of_the_peak_and_printed_with_quiet(tmp_path):
    """An 8-modality lattice (255 models, 1,016 width-matched controls): the estimate is printed
    although --quiet (it is above a GB) and lies within 2× of the measured peak (ru_maxrss of a
    fresh process, which includes Python and torch themselves)."""
    import re
    import subprocess
    import sys

    r = np.random.default_rng(0)
    y = np.arange(60) % 3
    np.savez(tmp_path / "k8.npz", y=y, **{f"m{i}": r.normal(size=(60, 2)) + (y[:, None] if i < 3 else 0)
                                        for i in range(8)})
    code = ("import resource, sys; from mmgain.cli import main; "
            "rc = main(sys.argv[1:]); print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)")
    proc = subprocess.run([sys.executable, "-c", code, "run", "--data", str(tmp_path / "k8.npz"), "--subsets", "all",
                           "--cv", "0", "--seeds", "1", "--ratios", "1", "--epochs", "5", "--quiet",
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    est = float(re.search(r"and ([0-9.]+) GB of memory \(estimate\)", proc.stderr).group(1)) * 1e9
    peak = float(re.search(r"PEAK (\d+)", proc.stdout).group(1))
    assert est > 1e9
    assert peak / 2 <= est <= 2 * peak, (est, peak)


def test_a_default_folder_that_cannot_be_created_is_a_clear_error(tmp_path, capsys, monkeypatch):
    """Without --out, runs go to ./runs/; a file named 'runs' (or an unwritable folder) used to
    loop for ever looking for a free name."""
    data = _npz(tmp_path / "d.npz")
    work = tmp_path / "w"
    work.mkdir()
    (work / "runs").write_text("not a folder")
    monkeypatch.chdir(work)
    assert main(["run", "--data", str(data), *FAST]) == 2
    err = _err(capsys)
    assert "runs" in err and "--out" in err


def test_a_ray_address_where_nothing_listens_is_refused_at_once(tmp_path, capsys):
    pytest.importorskip("ray")
    data = _npz(tmp_path / "d.npz")
    out = tmp_path / "r"
    assert main(["run", "--data", str(data), *FAST, "--backend", "ray", "--address", "127.0.0.1:1",
                 "--out", str(out)]) == 2
    err = _err(capsys)
    assert "--address 127.0.0.1:1: nothing answers" in err
    assert not out.exists()                     # failed before training: no folder left behind
    assert main(["run", "--data", str(data), *FAST, "--backend", "ray", "--address", "nowhere",
                 "--out", str(tmp_path / "r2")]) == 2
    assert "HOST:PORT" in _err(capsys)


def test_a_full_disk_is_a_clear_error_and_the_committed_chunks_resume(tmp_path, capsys, monkeypatch):
    import errno

    from mmgain.run.store import ResultStore

    data = _npz(tmp_path / "d.npz")
    out = tmp_path / "r"
    commit = ResultStore.commit
    calls = []

    def full_after_one(self, plan, ci, part):
        calls.append(ci)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(self._chunk_path(ci)))
        return commit(self, plan, ci, part)

    monkeypatch.setattr(ResultStore, "commit", full_after_one)
    args = ["run", "--data", str(data), "--cv", "0", "--seeds", "3", "--ratios", "1", "--epochs", "2",
            "--probe-epochs", "1", "--hidden", "8", "--quiet", "--memory-gb", "0.000001"]
    assert main([*args, "--out", str(out)]) == 2
    err = _err(capsys)
    assert "the disk is full writing" in err and "mmgain resume" in err
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    monkeypatch.setattr(ResultStore, "commit", commit)          # space freed
    assert main(["resume", str(out), "--quiet"]) == 0
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_a_ray_start_up_timeout_is_a_clear_error(tmp_path, capsys, monkeypatch):
    ray = pytest.importorskip("ray")

    def slow(*a, **k):
        raise TimeoutError("the local Ray instance did not start within 60 s")

    monkeypatch.setattr(ray, "init", slow)
    assert main(["run", "--data", str(_npz(tmp_path / "d.npz")), *FAST, "--backend", "ray",
                 "--out", str(tmp_path / "r")]) == 2
    assert "cannot start or reach Ray at a new local instance" in _err(capsys)
