"""The docs site builds offline and strictly (a dangling link or anchor fails), with the API page
generated from the docstrings."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).with_name("mkdocs")


@pytest.mark.skipif(not MKDOCS.exists() and shutil.which("mkdocs") is None,
                    reason="mkdocs is not installed (pip install -e '.[test]' installs it)")
def test_docs_build_strictly_with_the_generated_api_page(tmp_path):
    exe = str(MKDOCS) if MKDOCS.exists() else shutil.which("mkdocs")
    done = subprocess.run([exe, "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "mmgain.api.analyze" in api and "Does adding each modality help" in api     # from the docstring
    for page in ("design", "extending", "decisions", "untrusted-input", "benchmarks", "limitations", "api",
                 "guide/quickstart", "guide/python", "guide/your-data", "guide/run-folder", "guide/report",
                 "guide/resume-and-ray", "guide/reproducing", "methods/latent-quality", "methods/inference",
                 "methods/curves", "methods/theory", "methods/attribution"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page
    html = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "site").rglob("*.html"))
    assert "fonts.googleapis" not in html                          # nothing fetched from elsewhere


def test_no_code_comment_points_to_the_readme():
    """Code points to doc pages (which exist); the README is a short front page."""
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "src" / "mmgain").rglob("*.py")
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if "README" in line]
    assert hits == []
    import re
    for p in (ROOT / "src" / "mmgain").rglob("*.py"):
        for page in re.findall(r"docs/[\w/-]+\.md", p.read_text(encoding="utf-8")):
            assert (ROOT / page).is_file(), f"{p.name} points to {page}, which does not exist"


def test_the_readme_is_a_short_front_page_whose_commands_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    blocks = [b.split("\n", 1)[1].strip() for b in readme.split("```")[1::2] if b.startswith("bash")]
    main_cmd = next(b for b in blocks if "mmgain run --quick" in b and "pip install torch==2.13.0 -e ." in b)
    assert main_cmd.startswith("python3 -m venv .venv")
    test_cmd = next(b for b in blocks if "pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_cmd in ci                                           # CI runs the README's test command, verbatim
    assert "apt-get update" in test_cmd                             # robust to missing or stale package lists
    import re
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link


def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = next(b.split("\n", 1)[1] for b in readme.split("```")[1::2] if b.startswith("python"))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code.replace("study.verdicts ", "verdicts = study.verdicts "), "README.md", "exec"), scope)
    import mmgain
    assert set(scope["verdicts"]["modality"]) == {"image", "text"}
    back = mmgain.load(tmp_path / "runs" / "mine")
    assert (tmp_path / "runs" / "mine" / "report.html").is_file() and len(back.verdicts) == len(scope["verdicts"])
