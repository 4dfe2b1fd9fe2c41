"""Broken files and impossible options, answered with a clear error (exit 2, no traceback, no folder)."""
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mmgain.cli import main

FAST = ["--seeds", "1", "--ratios", "1", "--epochs", "1", "--probe-epochs", "1", "--hidden", "4", "--quiet"]


def _good_npz(path):
    r = np.random.default_rng(0)
    np.savez(path, a=r.normal(size=(60, 3)), y=np.arange(60) % 2)
    return path


def _run(tmp_path, capsys, data, *extra):
    out = tmp_path / "r"
    code = main(["run", "--cv", "0", "--data", str(data), *FAST, "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and not out.exists(), err
    return err


def _corrupt_member(path):
    """Flip a byte inside the first member's compressed data: its CRC no longer matches."""
    np.savez_compressed(path, a=np.arange(600.0).reshape(200, 3), y=np.arange(200) % 2)
    with zipfile.ZipFile(path) as z:
        info = z.infolist()[0]
    raw = bytearray(path.read_bytes())
    raw[info.header_offset + 30 + len(info.filename) + 40] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


CASES = {
    "empty file": (lambda p: (p.write_bytes(b""), p)[1], "empty file"),
    "truncated": (lambda p: (p.write_bytes(_good_npz(p).read_bytes()[:200]), p)[1], "not a readable .npz"),
    "bad crc": (_corrupt_member, "is corrupt"),
    "npy renamed": (lambda p: (np.save(p.with_suffix(".npy"), np.zeros(3)), p.write_bytes(
        p.with_suffix(".npy").read_bytes()), p)[2], "a single array (.npy)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_npz_files(tmp_path, capsys, case):
    make, message = CASES[case]
    data = make(tmp_path / "d.npz")
    err = _run(tmp_path, capsys, data)
    assert message in err and "d.npz" in err


def _folder(tmp_path):
    d = tmp_path / "f"
    d.mkdir()
    (d / "labels.csv").write_text("y\n" + "\n".join(str(i % 2) for i in range(20)) + "\n")
    (d / "text.csv").write_text("a,b\n" + "\n".join(f"{i},{i * 2}" for i in range(20)) + "\n")
    return d


def test_a_csv_that_is_a_folder(tmp_path, capsys):
    d = _folder(tmp_path)
    (d / "audio.csv").mkdir()
    assert "audio.csv: a folder where a data file was expected" in _run(tmp_path, capsys, d)


def test_a_symlink_loop_in_the_data_folder(tmp_path, capsys):
    d = _folder(tmp_path)
    (d / "loop.csv").symlink_to(d / "loop.csv")
    assert "loop.csv: a broken or looping symbolic link" in _run(tmp_path, capsys, d)


def test_a_headerless_folder_with_an_extra_label_column_is_answered_quickly(tmp_path, capsys):
    d = tmp_path / "f"
    d.mkdir()
    r = np.random.default_rng(0)
    (d / "text.csv").write_text("\n".join(",".join(f"{v:.3f}" for v in row) + f",{i % 2}"
                                          for i, row in enumerate(r.normal(size=(40, 5)))) + "\n")
    (d / "labels.csv").write_text("\n".join(f"{i % 2},{i % 3}" for i in range(40)) + "\n")
    assert "no column 'y'" in _run(tmp_path, capsys, d)


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_an_unreadable_file_is_named(tmp_path, capsys):
    d = _folder(tmp_path)
    (d / "audio.csv").symlink_to("/proc/self/mem")       # opens, then fails to read (EIO), even as root
    err = _run(tmp_path, capsys, d)
    assert "audio.csv: cannot read (Input/output error)" in err


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_out_where_nobody_may_write(tmp_path, capsys):
    """/proc refuses new folders even to root, so this runs where CI does (as root)."""
    code = main(["run", "--cv", "0", "--data", str(_good_npz(tmp_path / "d.npz")), *FAST, "--out", "/proc/mmgain-run/r"])
    err = capsys.readouterr().err
    assert code == 2 and "--out /proc/mmgain-run/r: cannot create the run folder" in err and "Traceback" not in err


def test_out_under_an_existing_file(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    code = main(["run", "--cv", "0", "--data", str(_good_npz(tmp_path / "d.npz")), *FAST, "--out", str(tmp_path / "file.txt" / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot create the run folder" in err and "Traceback" not in err


@pytest.mark.parametrize("device", ["tpu", "meta", "cuda:abc", "", "cpu:1", "mps"])
def test_devices_that_cannot_run(tmp_path, capsys, device):
    import torch
    if device == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    err = _run(tmp_path, capsys, _good_npz(tmp_path / "d.npz"), "--device", device)
    assert "--device" in err


def test_threads_are_set_and_recorded(tmp_path, capsys):
    import json

    import torch
    before = torch.get_num_threads()
    try:
        out = tmp_path / "r"
        assert main(["run", "--cv", "0", "--data", str(_good_npz(tmp_path / "d.npz")), *FAST, "--threads", "1",
                     "--out", str(out)]) == 0
        assert torch.get_num_threads() == 1 and json.loads((out / "run.json").read_text())["threads"] == 1
        assert main(["run", "--cv", "0", "--data", str(_good_npz(tmp_path / "e.npz")), *FAST, "--threads", "0",
                     "--out", str(tmp_path / "s")]) == 2             # refused when the options are parsed
        assert "--threads: must lie in 1..4,096, got 0" in capsys.readouterr().err
        assert not (tmp_path / "s").exists()
    finally:
        torch.set_num_threads(before)


def test_least_squares_probe_survives_a_thread_change():
    """torch 2.13's CPU build: after set_num_threads(n ≥ 2) the batched LU solve fails inside MKL
    (and loops); the probe's Cholesky solve must not."""
    import subprocess
    import sys
    code = ("import torch; torch.set_num_threads(2); from mmgain.probes.latent import _spd_solve;"
            "A = torch.randn(5, 200, 200, dtype=torch.float64); G = A @ A.transpose(1, 2) + torch.eye(200);"
            "b = torch.randn(5, 200, dtype=torch.float64); x = _spd_solve(G, b);"
            "print(float((torch.einsum('apq,aq->ap', G, x) - b).abs().max()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and float(out.stdout.strip()) < 1e-8, out.stderr
