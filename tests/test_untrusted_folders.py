"""Run folders from elsewhere are untrusted input: symlinks, FIFOs, chunks of other runs,
hand-edited summaries and folders that are not mmgain runs end in a clear error naming the
file (exit 2), and nothing outside the folder is written."""
import hashlib
import io
import json
import os
import shutil
import signal
import zipfile

import numpy as np
import pytest

from mmgain.cli import main
from toy_data import label_noise_npz

TINY = ["--cv", "0", "--ratios", "1", "--seeds", "2", "--epochs", "3", "--quiet", "--memory-gb", "0.000001"]


def _run(data, out, *extra):
    return main(["run", "--data", str(data), "--out", str(out), *TINY, *extra])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    d = tmp_path_factory.mktemp("src")
    data = label_noise_npz(d / "a.npz")
    assert _run(data, d / "run") == 0
    assert len(list((d / "run" / "store").glob("chunk-*.npz"))) == 2
    return d / "run"


@pytest.fixture
def folder(finished, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(finished, out, symlinks=True)
    return out


def _exits_2_naming(argv, capsys, *names):
    def blocked(signum, frame):
        raise AssertionError(f"{argv} blocked")
    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(120)
    try:
        rc = main(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and all(n in err for n in names), err
    return err


@pytest.mark.parametrize("command", ["collect", "resume", "overwrite"])
def test_a_lock_that_is_a_symlink_is_refused_and_its_target_untouched(folder, tmp_path, capsys, command):
    victim = tmp_path / "bashrc"
    victim.write_text("export PATH=/usr/bin\n")
    (folder / ".lock").unlink(missing_ok=True)
    os.symlink(victim, folder / ".lock")
    data = label_noise_npz(tmp_path / "a.npz")
    argv = {"collect": ["collect", str(folder)], "resume": ["resume", str(folder), "--quiet"],
            "overwrite": ["run", "--data", str(data), "--out", str(folder), "--overwrite", *TINY]}[command]
    _exits_2_naming(argv, capsys, ".lock")
    assert victim.read_text() == "export PATH=/usr/bin\n"


def test_a_chunk_that_is_a_fifo_or_a_symlink_to_one_is_refused(folder, tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    chunk = folder / "store" / "chunk-0001.npz"
    chunk.unlink()
    os.symlink(fifo, chunk)
    _exits_2_naming(["collect", str(folder)], capsys, "chunk-0001.npz", "symbolic link")
    chunk.unlink()
    os.mkfifo(chunk)
    _exits_2_naming(["collect", str(folder)], capsys, "chunk-0001.npz", "not a regular file")


def test_a_manifest_that_is_a_symlink_is_refused(folder, tmp_path, capsys):
    m = folder / "store" / "manifest.json"
    outside = tmp_path / "m.json"
    shutil.copy(m, outside)
    m.unlink()
    os.symlink(outside, m)
    _exits_2_naming(["collect", str(folder)], capsys, "manifest.json", "symbolic link")


def test_a_store_folder_that_is_a_symlink_is_not_written_through(folder, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    shutil.move(folder / "store", elsewhere)
    os.symlink(elsewhere, folder / "store")
    before = sorted(p.name for p in elsewhere.iterdir())
    _exits_2_naming(["resume", str(folder), "--quiet"], capsys, "store", "symbolic link")
    assert sorted(p.name for p in elsewhere.iterdir()) == before


def test_a_chunk_of_another_run_on_other_data_is_refused_by_name(folder, tmp_path, capsys):
    data = label_noise_npz(tmp_path / "b.npz", seed=1)      # same spec, other data
    assert _run(data, tmp_path / "other") == 0
    shutil.copy(tmp_path / "other" / "store" / "chunk-0001.npz", folder / "store" / "chunk-0001.npz")
    _exits_2_naming(["collect", str(folder)], capsys, "chunk-0001.npz", "differ from what this run wrote")
    m = json.loads((folder / "store" / "manifest.json").read_text())       # a hash edited to match
    m["hashes"]["1"] = hashlib.sha256((folder / "store" / "chunk-0001.npz").read_bytes()).hexdigest()
    (folder / "store" / "manifest.json").write_text(json.dumps(m))
    _exits_2_naming(["collect", str(folder)], capsys, "chunk-0001.npz", "another run")


def test_a_chunk_declaring_a_huge_array_is_refused_before_allocation(folder, capsys):
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "<f8", "fortran_order": False, "shape": (10 ** 10,)})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("test/x.npy", hdr.getvalue() + b"\0" * 16)
    chunk = folder / "store" / "chunk-0001.npz"
    chunk.write_bytes(out.getvalue())
    m = json.loads((folder / "store" / "manifest.json").read_text())
    m["hashes"]["1"] = hashlib.sha256(out.getvalue()).hexdigest()
    (folder / "store" / "manifest.json").write_text(json.dumps(m))
    _exits_2_naming(["collect", str(folder)], capsys, "chunk-0001.npz", "declares")


def test_a_manifest_without_chunks_is_a_clear_error(folder, capsys):
    m = json.loads((folder / "store" / "manifest.json").read_text())
    del m["chunks"]
    (folder / "store" / "manifest.json").write_text(json.dumps(m))
    _exits_2_naming(["collect", str(folder)], capsys, "manifest.json", "not a valid mmgain store manifest")


def test_overwrite_refuses_a_folder_that_is_not_an_mmgain_run(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "store").mkdir(parents=True)
    (mine / "store" / "my_notes.txt").write_text("notes")
    (mine / "fig_paper.png").write_bytes(b"png")
    data = label_noise_npz(tmp_path / "a.npz")
    _exits_2_naming(["run", "--data", str(data), "--out", str(mine), "--overwrite", *TINY], capsys,
                    "no mmgain run wrote")
    assert (mine / "store" / "my_notes.txt").read_text() == "notes" and (mine / "fig_paper.png").exists()
    assert sorted(p.name for p in mine.iterdir()) == ["fig_paper.png", "store"]


def test_overwrite_of_a_run_removes_its_files_and_keeps_the_users(folder, tmp_path, capsys):
    (folder / "fig_paper.png").write_bytes(b"mine")
    (folder / "store" / "my_notes.txt").write_text("notes")
    (folder / "theory.csv").write_text("stale")            # an mmgain output name: replaced, never kept stale
    data = label_noise_npz(tmp_path / "a.npz")
    assert _run(data, folder, "--overwrite") == 0
    assert (folder / "fig_paper.png").read_bytes() == b"mine"
    assert (folder / "store" / "my_notes.txt").read_text() == "notes"
    assert not (folder / "theory.csv").exists()
    assert "kept 1 file(s)" in capsys.readouterr().err


def test_the_report_links_only_plain_files_of_the_folder(folder, capsys):
    run = json.loads((folder / "run.json").read_text())
    run["files"] += ["javascript:alert(1)", "../../etc/passwd", "/etc/passwd"]
    (folder / "run.json").write_text(json.dumps(run))
    assert main(["report", str(folder)]) == 0
    page = (folder / "report.html").read_text()
    assert "javascript:" not in page and "etc/passwd" not in page and 'href="results.csv"' in page


@pytest.mark.parametrize("edit, field", [
    (lambda s: s.update(cells=[]), "summary.cells: is empty"),
    (lambda s: s.update(cells={}), "summary.cells: must be a list"),
    (lambda s: s["cells"][0].update(ratio="x"), "summary.cells[0].ratio"),
    (lambda s: s["pairs"][0].update(gain_ci="wide"), "summary.pairs[0].gain_ci"),
    (lambda s: s.clear(), "summary.task: is missing"),
])
def test_a_hand_edited_summary_names_the_field(folder, capsys, edit, field):
    s = json.loads((folder / "summary.json").read_text())
    edit(s)
    (folder / "summary.json").write_text(json.dumps(s))
    _exits_2_naming(["report", str(folder)], capsys, "summary.json", field)


def test_absurd_json_is_refused_by_name(folder, capsys):
    (folder / "summary.json").write_text("[" * 100_000 + "]" * 100_000)
    _exits_2_naming(["report", str(folder)], capsys, "summary.json", "not a readable")
    (folder / "summary.json").write_text('"just a string"')
    _exits_2_naming(["report", str(folder)], capsys, "summary.json", "must be an object")
