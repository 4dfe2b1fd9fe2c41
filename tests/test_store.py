"""Runs that survive: the durable store, resume after SIGKILL/SIGINT/SIGTERM, the folder lock,
byte-identical repeats, and the Ray backend (local instance)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mmgain.cli import main
from mmgain.run.store import FolderLock, ResultStore, atomic_write

# Six chunks of one stream each (a tiny --memory-gb), each a fraction of a second: room to
# interrupt a run between chunks.
RUN = ["run", "--cv", "0", "--subsets", "fou,kar,fou+kar", "--ratios", "0.1", "1", "--seeds", "3", "--epochs", "6",
       "--quiet", "--memory-gb", "0.000001"]
N_CHUNKS = 6


def mmgain(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmgain", *map(str, args)], capture_output=True, text=True,
                          timeout=600, **kw)


def start(*args) -> subprocess.Popen:
    """The run in the background; SIGINT at its default (a suite started in a shell's background, e.g.
    under nohup, hands its children SIGINT ignored, and Ctrl-C would then never reach the run)."""
    return subprocess.Popen([sys.executable, "-m", "mmgain", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def committed(folder: Path) -> int:
    return len(list((folder / "store").glob("chunk-*.npz")))


def wait_for_chunks(p: subprocess.Popen, folder: Path, k: int) -> None:
    deadline = time.time() + 300
    while committed(folder) < k:
        assert p.poll() is None, p.communicate()
        assert time.time() < deadline
        time.sleep(0.01)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    r = mmgain(*RUN, "--out", out)
    assert r.returncode == 0, r.stderr
    return out


def test_the_same_command_twice_gives_byte_identical_results(uninterrupted, tmp_path):
    r = mmgain(*RUN, "--out", tmp_path / "again")
    assert r.returncode == 0, r.stderr
    for name in ("results.csv", "summary.json", "outcomes.npz"):
        assert (tmp_path / "again" / name).read_bytes() == (uninterrupted / name).read_bytes(), name


def test_sigkill_then_resume_equals_the_uninterrupted_run(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    p = start(*RUN, "--out", out)
    wait_for_chunks(p, out, 2)
    p.kill()
    p.wait()
    done = committed(out)
    assert 2 <= done < N_CHUNKS, "the run finished before it was killed: the test proves nothing"
    assert json.loads((out / "run.json").read_text())["status"] == "running"   # it never knew
    # The folder is readable: collect derives the finished part without training.
    r = mmgain("collect", out)
    assert r.returncode == 0, r.stderr
    assert f"collected {done} of {N_CHUNKS} chunks" in r.stdout
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * done
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert json.loads((out / "summary.json").read_text())["partial"]["chunks_done"] == done
    # Resume: only the rest is trained, and nothing is lost or counted twice.
    r = mmgain("resume", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"{done} of {N_CHUNKS} chunks are already in the store" in r.stderr
    assert (out / "results.csv").read_bytes() == (uninterrupted / "results.csv").read_bytes()
    assert (out / "outcomes.npz").read_bytes() == (uninterrupted / "outcomes.npz").read_bytes()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and len(run["resumed"]) == 1


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_end_cleanly_and_resume(uninterrupted, tmp_path, sig, code):
    out = tmp_path / "stopped"
    p = start(*RUN, "--out", out)
    wait_for_chunks(p, out, 2)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert "Traceback" not in err and f"mmgain resume {out}" in err
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["interrupted_by"] == sig.name
    done = run["chunks_done"]
    assert 2 <= done < N_CHUNKS and committed(out) == done
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 3 * done   # what finished, written
    r = mmgain(*RUN, "--resume", out)                  # the run command itself can resume too
    assert r.returncode == 0, r.stderr
    assert (out / "results.csv").read_bytes() == (uninterrupted / "results.csv").read_bytes()


def test_a_signal_just_after_a_commit_still_counts_that_chunk(uninterrupted, tmp_path, monkeypatch, capsys):
    """The interrupt lands between a chunk's commit and its record in memory (a race CI hit):
    run.json, results.csv and the store must still agree on what finished."""
    commit, calls = ResultStore.commit, []

    def interrupted_after_the_second(self, plan, ci, part):
        commit(self, plan, ci, part)
        calls.append(ci)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(ResultStore, "commit", interrupted_after_the_second)
    out = tmp_path / "raced"
    assert main([*RUN, "--out", str(out)]) == 130
    assert "interrupted (SIGINT) after 2 of 6 chunks" in capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["chunks_done"] == committed(out) == 2
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 3 * 2
    monkeypatch.setattr(ResultStore, "commit", commit)
    assert main(["resume", str(out), "--quiet"]) == 0
    assert (out / "results.csv").read_bytes() == (uninterrupted / "results.csv").read_bytes()


def test_a_second_run_into_the_same_folder_is_refused(uninterrupted, tmp_path, capsys):
    lock = FolderLock(uninterrupted).acquire()     # as a running mmgain would hold it
    try:
        assert main(["resume", str(uninterrupted)]) == 2
        assert "in use by another mmgain run" in capsys.readouterr().err
        assert main([*RUN, "--out", str(uninterrupted), "--overwrite"]) == 2
        assert "in use by another mmgain run" in capsys.readouterr().err
    finally:
        lock.release()
    assert (uninterrupted / "results.csv").exists()    # nothing was removed


def test_resume_refuses_another_spec_or_other_data_and_says_which(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    y = rng.integers(0, 2, 200)
    np.savez(data, a=rng.standard_normal((200, 3)) + y[:, None], b=rng.standard_normal((200, 2)), y=y)
    out = tmp_path / "run"
    base = ["run", "--cv", "0", "--data", str(data), "--ratios", "1", "--seeds", "2", "--epochs", "2", "--quiet"]
    assert main([*base, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main([*base[:8], "3", *base[9:], "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert "another spec" in err and 'seeds: 2 in the folder, 3 now' in err
    assert main([*base, "--lr", "0.5", "--resume", str(out)]) == 2
    assert "protocol_overrides.lr" in capsys.readouterr().err
    np.savez(data, a=rng.standard_normal((200, 3)), b=rng.standard_normal((200, 2)), y=y)
    assert main([*base, "--resume", str(out)]) == 2
    assert "run on other data" in capsys.readouterr().err
    assert main(["resume", str(tmp_path)]) == 2
    assert "no mmgain run store here" in capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())       # the refusals left the folder as it was
    assert run["status"] == "complete" and run["spec"]["seeds"] == 2 and "resumed" not in run


def test_a_finished_run_resumes_to_the_same_outputs_without_training(uninterrupted, tmp_path):
    import shutil
    out = tmp_path / "copy"
    shutil.copytree(uninterrupted, out)
    (out / "results.csv").unlink()
    r = mmgain("resume", out, "--quiet")
    assert r.returncode == 0 and f"{N_CHUNKS} of {N_CHUNKS} chunks are already in the store" in r.stderr
    assert (out / "results.csv").read_bytes() == (uninterrupted / "results.csv").read_bytes()


def test_atomic_write_leaves_the_old_file_or_the_new_one(tmp_path):
    path = tmp_path / "f.json"
    atomic_write(path, lambda f: f.write(b"old"))

    def half(f):
        f.write(b"ne")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_a_damaged_chunk_is_named(uninterrupted, tmp_path, capsys):
    import shutil
    out = tmp_path / "copy"
    shutil.copytree(uninterrupted, out)
    (out / "store" / "chunk-0003.npz").write_bytes(b"PK\x03\x04 truncated")
    assert main(["collect", str(out)]) == 2
    err = capsys.readouterr().err
    assert "chunk-0003.npz: its contents differ from what this run wrote" in err and "Traceback" not in err
    assert ResultStore(out).exists()


ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'mmgain[ray]'")


def _ray_workers() -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if b"ray::_ray_chunk" in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                continue
    return pids


def test_ray_backend_equals_the_local_backend(uninterrupted, tmp_path):
    r = mmgain(*RUN, "--out", tmp_path / "ray", "--backend", "ray")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "ray" / "run.json").read_text())["backend"] == "ray"
    for name in ("results.csv", "outcomes.npz"):
        assert (tmp_path / "ray" / name).read_bytes() == (uninterrupted / name).read_bytes(), name


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds Ray workers through /proc")
def test_a_killed_ray_worker_does_not_lose_its_chunk(uninterrupted, tmp_path):
    out = tmp_path / "ray"
    p = start(*RUN, "--out", out, "--backend", "ray")
    killed = None
    deadline = time.time() + 300
    while killed is None:
        assert p.poll() is None, p.communicate()
        assert time.time() < deadline
        workers = _ray_workers()
        if workers and committed(out) >= 1:
            os.kill(workers[0], signal.SIGKILL)          # a worker busy with a chunk
            killed = workers[0]
        time.sleep(0.01)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert committed(out) == N_CHUNKS
    assert (out / "results.csv").read_bytes() == (uninterrupted / "results.csv").read_bytes()


def test_a_folder_run_with_subsets_all_resumes_under_the_auto_default(tmp_path, capsys):
    """Folders from before the 'auto' default recorded 'all': resuming one without --subsets is
    the same lattice (up to 8 modalities), not another spec."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    np.savez(tmp_path / "d.npz", a=rng.normal(size=(120, 2)) + y[:, None], b=rng.normal(size=(120, 2)), y=y)
    args = ["run", "--data", str(tmp_path / "d.npz"), "--cv", "0", "--seeds", "2", "--ratios", "1", "--epochs", "2",
            "--hidden", "4", "--quiet", "--out", str(tmp_path / "r")]
    assert main([*args, "--subsets", "all"]) == 0
    assert json.loads((tmp_path / "r" / "run.json").read_text())["spec"]["subsets"] == "all"
    capsys.readouterr()
    assert main([arg for arg in args if arg != "--out" and arg != str(tmp_path / "r")] + ["--resume", str(tmp_path / "r")]) == 0
    assert "holds a complete run" in capsys.readouterr().err
    assert main([*args[:-2], "--subsets", "a,b", "--resume", str(tmp_path / "r")]) == 2       # another lattice
    assert "another spec" in capsys.readouterr().err


def test_a_folder_from_before_the_probes_decrease_test_is_read_as_it_ran(tmp_path, capsys):
    """A store written before ``probe_ftol``/``heldout_ftol`` existed ran without the decrease test
    (training.protocol.ADDED_SINCE), not with today's default: resuming it under the new default
    is refused with the field named, so no run mixes the two rules."""
    from mmgain.errors import SpecError
    from mmgain.spec import ExperimentSpec
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    y = rng.integers(0, 2, 200)
    np.savez(data, a=rng.standard_normal((200, 3)) + y[:, None], b=rng.standard_normal((200, 2)), y=y)
    out = tmp_path / "old"
    assert main(["run", "--cv", "0", "--data", str(data), "--ratios", "1", "--seeds", "1", "--epochs", "2",
                 "--quiet", "--out", str(out)]) == 0
    manifest = out / "store" / "manifest.json"
    m = json.loads(manifest.read_text())
    spec = ExperimentSpec.from_dict(m["spec"])
    for name in ("probe_ftol", "heldout_ftol"):
        del m["spec"]["resolved_protocol"][name]               # as a store from before the fields
    manifest.write_text(json.dumps(m))
    store = ResultStore(out)
    with pytest.raises(SpecError, match=r"heldout_ftol: 0\.0 in the folder, 1e-05 now"):
        store.check_spec(spec)
