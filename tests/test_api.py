"""The Python API (mmgain.analyze / mmgain.load / Study) and its parity with the CLI."""
import json

import numpy as np
import pandas as pd
import pytest

import mmgain
from mmgain.api import configure
from mmgain.catalog import EXPERIMENTS
from mmgain.cli import build_parser, main
from mmgain.errors import DataError, SpecError

FAST = dict(epochs=4, seeds=1, ratios=[1.0], cv=0, progress=False)


def _arrays(n=300, seed=0):
    r = np.random.default_rng(seed)
    y = r.integers(0, 3, n)
    return {"a": r.normal(size=(n, 5)) + y[:, None], "b": r.normal(size=(n, 4))}, y


@pytest.fixture(scope="module")
def study():
    data, y = _arrays()
    return mmgain.analyze(data, y=y, seeds=2, ratios=[0.5, 1.0], epochs=4, progress=False)


def test_analyze_returns_verdicts_as_a_dataframe(study):
    v = study.verdicts
    assert isinstance(v, pd.DataFrame) and len(v) > 0
    assert {"modality", "M", "N", "verdict", "gain", "why"} <= set(v.columns)
    a = v[(v.modality == "a") & (v.ratio == 1.0) & (v.N == "b")]
    assert a.verdict.tolist() == ["helps"]              # a carries the label; b is noise
    assert study.modalities == ["a", "b"]
    assert len(study.models) == 2 * 5 * 2 * 3          # seeds × folds × ratios × subsets
    assert {"subset", "seed", "ratio", "test_acc"} <= set(study.models.columns)


def test_save_then_load_round_trips(study, tmp_path):
    folder = study.save(tmp_path / "run")
    for name in ("results.csv", "summary.json", "run.json", "report.html", "outcomes.npz"):
        assert (folder / name).is_file(), name
    back = mmgain.load(folder)
    pd.testing.assert_frame_equal(back.verdicts, study.verdicts)
    assert back.summary == json.loads(json.dumps(study.summary, default=str).replace("NaN", "null"))
    assert back.models[["subset", "seed", "ratio"]].equals(study.models[["subset", "seed", "ratio"]])
    assert np.allclose(back.models.test_acc, study.models.test_acc)
    assert back.report() == folder / "report.html"
    with pytest.raises(Exception, match="already holds files"):
        study.save(folder)


def test_notebook_view_shows_the_answer_cards(study):
    html = study._repr_html_()
    assert html.count('class="card"') == 2 and 'data-modality="a"' in html and "helps" in html
    assert "<style>" in html and "helps" in repr(study)


def test_a_dataframe_with_a_modality_mapping_gives_the_same_answer():
    data, y = _arrays()
    frame = pd.DataFrame(np.hstack([data["a"], data["b"]]), columns=[f"c{i}" for i in range(9)])
    frame["label"] = y
    s1 = mmgain.analyze(data, y=y, **FAST)
    s2 = mmgain.analyze(frame, y="label", modalities={"a": [f"c{i}" for i in range(5)],
                                                     "b": [f"c{i}" for i in range(5, 9)]}, **FAST)
    pd.testing.assert_frame_equal(s1.models, s2.models)


def test_bad_in_memory_data_is_named():
    data, y = _arrays()
    with pytest.raises(SpecError, match="need the target"):
        mmgain.analyze(data, **FAST)
    with pytest.raises(DataError, match="modality 'b'"):
        mmgain.analyze({"a": data["a"], "b": data["b"][:, 0]}, y=y, **FAST)
    with pytest.raises(SpecError, match="modalities="):
        mmgain.analyze(pd.DataFrame(data["a"]), y=y, **FAST)
    with pytest.raises(SpecError, match="unknown option"):
        configure(EXPERIMENTS.get("run"), epoch=3)


def test_the_api_and_the_cli_build_the_same_spec():
    """Every option means the same in both: fewer epochs than the preset's probe budget probe after
    the last epoch in both (it used to be an error from Python)."""
    args = build_parser().parse_args(["run", "--data", "x.npz", "--epochs", "5", "--seeds", "2", "--ratios", "0.5",
                                      "1", "--cv", "3", "--margin", "2", "--primary", "a+b:a"])
    cli_spec = args.build(args)
    api_spec = configure(EXPERIMENTS.get("run").with_(data="x.npz"), epochs=5, seeds=2, ratios=[0.5, 1],
                         cv=3, margin=2.0, primary="a+b:a", quiet=True)
    assert cli_spec.to_dict() == api_spec.to_dict()
    assert api_spec.resolved_protocol().probe_epochs == 5
    bare = EXPERIMENTS.get("run").with_(protocol_overrides={"epochs": 5})      # the failing case
    assert bare.resolved_protocol().probe_epochs == 5


def test_analyze_with_out_writes_a_resumable_run_folder(tmp_path, capsys):
    data, y = _arrays(200)
    s = mmgain.analyze(data, y=y, out=tmp_path / "r", **FAST)
    assert s.folder == tmp_path / "r" and (tmp_path / "r" / "store" / "manifest.json").is_file()
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "complete"
    run_json = (tmp_path / "r" / "run.json").read_bytes()
    assert main(["resume", str(tmp_path / "r"), "--quiet"]) == 0      # complete: says so, changes nothing
    assert (tmp_path / "r" / "run.json").read_bytes() == run_json
    assert "holds a complete run" in capsys.readouterr().err
    assert mmgain.resume(tmp_path / "r", progress=False).verdicts.equals(s.verdicts)


def _write_folder(path, arrays, y, order):
    path.mkdir()
    for k, v in arrays.items():
        np.savetxt(path / f"{k}.csv", v, delimiter=",", fmt="%.17g", header=",".join(f"{k}{i}" for i in range(v.shape[1])),
                   comments="")
    pd.DataFrame({"y": y}).to_csv(path / "labels.csv", index=False)
    if order:
        (path / "modalities.txt").write_text("\n".join(order) + "\n")


def test_the_same_data_as_npz_and_as_a_folder_give_identical_results(tmp_path):
    r = np.random.default_rng(3)
    y = r.integers(0, 2, 160)
    arrays = {"text": r.normal(size=(160, 3)) + y[:, None], "sensor": r.normal(size=(160, 2))}   # not alphabetical
    np.savez(tmp_path / "d.npz", **arrays, y=y)
    _write_folder(tmp_path / "folder", arrays, y, ["text", "sensor"])
    flags = ["--cv", "0", "--seeds", "2", "--ratios", "0.5", "1", "--epochs", "3", "--quiet"]
    assert main(["run", "--data", str(tmp_path / "d.npz"), *flags, "--out", str(tmp_path / "o1")]) == 0
    assert main(["run", "--data", str(tmp_path / "folder"), *flags, "--out", str(tmp_path / "o2")]) == 0
    one, two = ((tmp_path / o / "results.csv").read_text() for o in ("o1", "o2"))
    assert one == two and "text+sensor" in one


def test_a_modality_listing_must_name_every_file_once(tmp_path):
    arrays, y = _arrays(40)
    _write_folder(tmp_path / "f", arrays, y, ["a", "a"])
    from mmgain.data.loaders import load_folder
    with pytest.raises(DataError, match="listed twice: a; not listed: b"):
        load_folder(tmp_path / "f")
    (tmp_path / "f" / "modalities.txt").write_text("b\na\n")
    assert load_folder(tmp_path / "f").names == ["b", "a"]


def test_collect_and_report_need_no_data_file(tmp_path):
    """The store records the run's layout: a run folder is re-analysed after its data file is gone,
    to the same bytes."""
    arrays, y = _arrays(200)
    np.savez(tmp_path / "d.npz", **arrays, y=y)
    out = tmp_path / "run"
    assert main(["run", "--data", str(tmp_path / "d.npz"), "--seeds", "1", "--ratios", "0.5", "1", "--epochs", "3",
                 "--quiet", "--out", str(out)]) == 0
    before = {f: (out / f).read_bytes() for f in ("results.csv", "summary.json", "folds.csv")}
    (tmp_path / "d.npz").unlink()
    for f in ("results.csv", "summary.json", "report.html"):
        (out / f).unlink()
    assert main(["collect", str(out)]) == 0
    assert {f: (out / f).read_bytes() for f in before} == before
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()


def test_a_damaged_stored_layout_is_named(tmp_path, capsys):
    arrays, y = _arrays(120)
    np.savez(tmp_path / "d.npz", **arrays, y=y)
    out = tmp_path / "run"
    assert main(["run", "--data", str(tmp_path / "d.npz"), "--cv", "0", "--seeds", "1", "--ratios", "1", "--epochs",
                 "2", "--quiet", "--out", str(out)]) == 0
    manifest = out / "store" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["layout"]["pairs"] = [[0, 99]]
    manifest.write_text(json.dumps(m))
    assert main(["collect", str(out)]) == 2
    assert "manifest.json: the run's stored layout is not readable" in capsys.readouterr().err


def test_every_run_flag_has_its_api_keyword():
    """The CLI's `mmgain run` flags and mmgain.analyze's keywords are the same options."""
    import inspect
    run = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]
    flags = {a.dest for a in run._actions if a.dest != "help"}
    keywords = set(inspect.signature(mmgain.analyze).parameters)
    renamed = {"quiet": "progress", "yes": "allow_large", "resume": None}    # mmgain.resume(folder) for --resume
    missing = {f for f in flags if renamed.get(f, f) is not None and renamed.get(f, f) not in keywords}
    assert not missing
    assert callable(mmgain.resume)


def test_a_refused_input_prints_no_run_folder(tmp_path, capsys):
    arrays, y = _arrays(80)
    np.savez(tmp_path / "d.npz", **arrays, y=y)
    assert main(["run", "--data", str(tmp_path / "d.npz"), "--primary", "a:b", "--quiet",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--primary a:b: not a pair" in err and "run folder" not in err and not (tmp_path / "o").exists()
