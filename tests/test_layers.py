"""The layered layout (docs/design.md): the import contracts in pyproject.toml, no import cycle,
and an analysis that runs without torch."""
import itertools
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout and "3 kept" in done.stdout


def test_no_import_cycle():
    g = grimp.build_graph("mmgain", exclude_type_checking_imports=True)
    mods = sorted(g.modules)
    cycles = [(a, b) for a, b in itertools.permutations(mods, 2)
              if g.direct_import_exists(importer=a, imported=b) and g.find_shortest_chain(importer=b, imported=a)]
    assert not cycles


def test_a_stored_result_is_analysed_without_torch():
    code = ("import sys; import mmgain.analysis, mmgain.results, mmgain.tasks; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
