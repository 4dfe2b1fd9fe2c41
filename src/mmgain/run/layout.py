"""A run's layout: everything about a run except its data and its trained models — the streams,
subsets, pairs, chunks, groups and the facts about the data that the analysis reads.

:func:`~.runner.assemble` builds a result from a layout and the chunks' parts alone.  The layout is
stored in the store's manifest when a run starts, so ``mmgain collect`` re-analyses a run folder
without loading the data (a data file that moved or was deleted, a machine without a device).
The manifest comes from a run folder, which is untrusted input: :meth:`RunLayout.from_json`
checks every field and names the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..results import DataFacts, Group, StreamTable
from ..tasks import TASKS, Task


@dataclass
class RunLayout:
    spec: Any                                 # the run's ExperimentSpec
    task: Task
    subsets: list[tuple[str, ...]]
    controls: list[bool]
    pairs: list[tuple[int, int]]
    chunks: list[list[int]]
    table: StreamTable
    groups: list[Group]
    facts: DataFacts
    design: dict[str, Any]
    seeds: list[int]
    data_meta: dict[str, Any]                 # run.json's "data": modalities, task, sizes, source, notes
    device_name: str
    selection: list[dict] | None = None

    def to_json(self) -> dict[str, Any]:
        """The manifest's ``layout`` (the spec, subsets, chunks and selection are stored beside it)."""
        f = self.facts
        return {"task": self.task.name, "controls": [bool(c) for c in self.controls],
                "pairs": [[int(a), int(b)] for a, b in self.pairs],
                "n_train": [int(n) for n in self.table.n_train],
                "groups": [{"variant": g.variant, "seed": g.seed, "fold": g.fold} for g in self.groups],
                "facts": {"names": list(f.names), "dims": {k: int(v) for k, v in f.dims.items()},
                          "n_classes": int(f.n_classes), "n_outputs": int(f.n_outputs),
                          "default_margin": float(f.default_margin), "classes": f.classes,
                          "row_file": None if f.row_file is None else
                          [f.row_file[0], [{k: _plain(v) for k, v in r.items()} for r in f.row_file[1]]]},
                "design": self.design, "seeds": [int(s) for s in self.seeds], "data": self.data_meta,
                "device": self.device_name}

    @classmethod
    def from_json(cls, d: Any, manifest: dict, spec, where: Path) -> "RunLayout":
        """The layout a manifest recorded (``where`` names the file in errors)."""
        try:
            return cls._from_json(d, manifest, spec)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise OutputError(f"{where}: the run's stored layout is not readable ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); collect it where its data are (the layout is then rebuilt)") \
                from None

    @classmethod
    def _from_json(cls, d: dict, m: dict, spec) -> "RunLayout":
        _need(isinstance(d, dict), "layout is not an object")
        subsets = [tuple(s.split("+")) for s in m["subsets"]]
        _need(all(isinstance(s, str) for s in m["subsets"]), "subsets must be names")
        streams = np.asarray(m["streams"], dtype=np.float64)
        S, A = len(streams), len(subsets)
        _need(streams.shape == (S, 3) and S > 0, "streams must be (group, seed, ratio) rows")
        n_train = np.asarray(d["n_train"], dtype=np.int64)
        _need(n_train.shape == (S,), "n_train must give one size per stream")
        controls = [bool(c) for c in d["controls"]]
        _need(len(controls) == A and all(isinstance(c, bool) for c in d["controls"]), "controls must be A booleans")
        pairs = [(int(a), int(b)) for a, b in d["pairs"]]
        _need(all(0 <= a < A and 0 <= b < A for a, b in pairs), "pairs must index the subsets")
        groups = [Group(dict(g["variant"]), _opt_int(g["seed"]), _opt_int(g["fold"])) for g in d["groups"]]
        _need(len(groups) > 0 and all(0 <= int(gi) < len(groups) for gi in streams[:, 0]), "stream groups out of range")
        f = d["facts"]
        names = [str(k) for k in f["names"]]
        dims = {str(k): int(v) for k, v in f["dims"].items()}
        _need(sorted(names) == sorted(dims) and all(k in names for s in subsets for k in s),
              "facts name other modalities than the subsets")
        row_file = f["row_file"]
        if row_file is not None:
            _need(row_file[0] in ("folds.csv", "split.csv") and isinstance(row_file[1], list)
                  and all(isinstance(r, dict) for r in row_file[1]), "row_file must be a file name and rows")
            row_file = (row_file[0], row_file[1])
        classes = f["classes"]
        _need(classes is None or (isinstance(classes, list) and all(isinstance(c, str) for c in classes)),
              "classes must be names")
        facts = DataFacts(names, dims, int(f["n_classes"]), int(f["n_outputs"]), float(f["default_margin"]),
                          classes, row_file)
        chunks = [[int(i) for i in c] for c in m["chunks"]]
        _need(sorted(i for c in chunks for i in c) == list(range(S)), "chunks must cover the streams once")
        _need(isinstance(d["design"], dict) and isinstance(d["data"], dict), "design and data must be objects")
        table = StreamTable(streams[:, 0].astype(np.int64), streams[:, 1].astype(np.int64), streams[:, 2], n_train)
        return cls(spec, TASKS.get(str(d["task"])), subsets, controls, pairs, chunks, table, groups, facts,
                   d["design"], [int(s) for s in d["seeds"]], d["data"], str(d["device"]), m.get("selection"))


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _opt_int(v) -> int | None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
        raise ValueError(f"expected a whole number or null, got {v!r}")
    return v


def _plain(v):
    """A row-file value as JSON keeps it (numpy scalars to Python)."""
    return v.item() if isinstance(v, np.generic) else v
