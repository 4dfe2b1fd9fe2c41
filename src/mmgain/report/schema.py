"""The shape of ``summary.json`` and ``run.json``, checked before the report reads them.

A run folder may come from elsewhere or be edited by hand; the report should then say
which field is wrong, not raise from deep inside a template.  The schema is written
as plain Python values: a type (or tuple of types), a list ``[item]`` (every item), a
dict of keys (``"?key"``: optional), or a callable rule.  Numeric fields of the result
records are recognised by name (``*_mean``, ``*_ci``, …), so new statistics are checked
without touching this file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import OutputError

NUM = (int, float)
OPT_NUM = (int, float, type(None))
OPT_STR = (str, type(None))
_NUMERIC_SUFFIXES = ("_mean", "_std", "_se", "_p", "_s")
_NUMERIC_NAMES = {"ratio", "gain", "gamma", "p_value", "p_family", "q_by", "bound", "ci_level", "n_train", "n_seeds",
                  "n_folds", "n_rows", "n_modalities", "rows_needed", "eta", "v_full", "v_empty",
                  "gain_now", "n_now", "n_star", "target_n", "fit_from", "m_star", "lead", "budget"}


_PER_MODALITY = {"phi_se"}      # a number per modality (the sampled Shapley values' standard errors)


class SchemaError(ValueError):
    def __init__(self, where: str, what: str):
        super().__init__(f"{where}: {what}")


def _type_name(t) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", type(None): "null",
             list: "a list", dict: "an object"}
    ts = t if isinstance(t, tuple) else (t,)
    if set(ts) >= {int, float}:
        ts = tuple(x for x in ts if x is not int)
    return " or ".join(names.get(x, x.__name__) for x in ts)


def _record(where: str, rec: Any) -> None:
    """A result record (a cell, pair, verdict, …): numeric fields must be numbers (or null),
    ``*_ci`` fields pairs of them."""
    if not isinstance(rec, dict):
        raise SchemaError(where, f"must be an object, got {type(rec).__name__}")
    for k, v in rec.items():
        if not isinstance(k, str):
            continue
        if k.endswith("_ci"):
            ok = isinstance(v, list) and len(v) == 2 and all(
                isinstance(x, OPT_NUM) and not isinstance(x, bool) or
                (isinstance(x, list) and all(isinstance(y, OPT_NUM) and not isinstance(y, bool) for y in x))
                for x in v)
            if not ok and v is not None:
                raise SchemaError(f"{where}.{k}", "must be a pair [lower, upper] of numbers or nulls")
        elif k in _PER_MODALITY:
            if not (isinstance(v, list) and all(isinstance(x, OPT_NUM) and not isinstance(x, bool) for x in v)):
                raise SchemaError(f"{where}.{k}", f"must be a list of numbers or nulls, got {str(v)[:40]!r}")
        elif k in _NUMERIC_NAMES or k.endswith(_NUMERIC_SUFFIXES):
            if isinstance(v, bool) or not isinstance(v, OPT_NUM):
                raise SchemaError(f"{where}.{k}", f"must be a number or null, got {type(v).__name__} {str(v)[:40]!r}")


def check(value: Any, schema: Any, where: str) -> None:
    if callable(schema) and not isinstance(schema, type):
        return schema(where, value)
    if isinstance(schema, (type, tuple)):
        types = schema if isinstance(schema, tuple) else (schema,)
        if isinstance(value, bool) and bool not in types:
            raise SchemaError(where, f"must be {_type_name(schema)}, got true/false")
        if not isinstance(value, types):
            raise SchemaError(where, f"must be {_type_name(schema)}, got {type(value).__name__} {str(value)[:40]!r}")
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise SchemaError(where, f"must be a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            check(item, schema[0], f"{where}[{i}]")
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise SchemaError(where, f"must be an object, got {type(value).__name__}")
        for key, sub in schema.items():
            name = key.lstrip("?")
            if name not in value:
                if not key.startswith("?"):
                    raise SchemaError(f"{where}.{name}", "is missing")
                continue
            check(value[name], sub, f"{where}.{name}")
        return
    raise TypeError(f"bad schema at {where}")  # pragma: no cover - a bug in this file


def _nonempty(schema):
    def rule(where, value):
        check(value, schema, where)
        if not value:
            raise SchemaError(where, "is empty: the run has no results to report")
    return rule


CELL = {"subset": str, "ratio": NUM, "n_train": int, "n_modalities": int, "?n_seeds": int}
PAIR = {"M": str, "N": str, "ratio": NUM, "?verdict": str, "?why": OPT_STR, "?family": str, "?latent": OPT_STR}

OPT_BOOL = (bool, type(None))
FORECAST = {"modality": str, "?M": OPT_STR, "?N": OPT_STR, "?why": OPT_STR, "?verdict": OPT_STR,
            "?n_star_status": OPT_STR, "?n_star_source": OPT_STR, "?extrapolated": OPT_BOOL}
CHOICE = {"?value": OPT_NUM, "?cost": OPT_NUM, "?best": OPT_STR, "?runner_up": OPT_STR, "?text": OPT_STR, "?why": OPT_STR, "?distinguishable": OPT_BOOL,
          "?extrapolated": OPT_BOOL}
SELECTION = {**CHOICE, "?costs": lambda w, v: v is None or [check(x, NUM, f"{w}.{k}") for k, x in v.items()]
             if isinstance(v, dict) else check(v, dict, w),
             "?target": lambda w, v: v is None or (check(v, CHOICE, w), _record(w, v))}

PAIR_RANGES = {f"{k}_range": [NUM] for k in ("R", "U_i", "U_j", "S")}
INFORMATION = {"H_Y": NUM, "ratio": NUM, "values": [lambda w, v: (check(v, {"subset": str, "v": NUM}, w), _record(w, v))],
               "pairs": [lambda w, v: (check(v, {"i": str, "j": str, "text": str, "synergy_minus_redundancy": NUM,
                                                 "unique_difference": NUM, "I_i": NUM, "I_j": NUM, "I_ij": NUM,
                                                 **PAIR_RANGES}, w), _record(w, v))],
               "dividends": [lambda w, v: (check(v, {"subset": str, "dividend": NUM}, w), _record(w, v))],
               "?given": [lambda w, v: (check(v, {"modality": str, "N": str, "value": NUM}, w), _record(w, v))]}

SUMMARY = {
    "task": str, "metric": str, "?experiment": OPT_STR,
    "cells": _nonempty([lambda w, v: (check(v, CELL, w), _record(w, v))]),
    "?pairs": [lambda w, v: (check(v, PAIR, w), _record(w, v))],
    "?verdicts": [lambda w, v: (check(v, {**PAIR, "verdict": str, "?modality": OPT_STR}, w), _record(w, v))],
    "?curves": [_record], "?crossovers": [_record], "?ensemble_gap": [_record], "?deficit": [_record],
    "?missing_modality": [_record], "?interactions": [{"ratio": NUM, "pairs": [_record]}],
    "?shapley": [lambda w, v: (check(v, {"ratio": NUM, "modalities": [str], "phi": [OPT_NUM],
                                         "phi_ci": [[OPT_NUM]]}, w), _record(w, v))],
    "?theory": (list, type(None)), "?design": (dict, type(None)), "?tests": (dict, type(None)),
    "?partial": (dict, type(None)), "?note": OPT_STR, "?modalities": [str],
    "?forecast": [lambda w, v: (check(v, FORECAST, w), _record(w, v))],
    "?selection": [lambda w, v: (check(v, SELECTION, w), _record(w, v))],
    "?model_class": (lambda w, v: v is None or check(v, {"text": str}, w)),
    "?information": [lambda w, v: (check(v, INFORMATION, w), _record(w, v))],
}

RUN = {"spec": dict, "?status": str, "?files": [str], "?warnings": [str], "?wall_time_s": OPT_NUM,
       "?data": (dict, type(None)), "?n_models": OPT_NUM, "?device": OPT_STR}


def validate_folder_files(folder: Path, summary: Any, run: Any) -> None:
    """Raise an OutputError naming the file and field when either file is not what mmgain writes."""
    for name, value, schema in (("summary.json", summary, SUMMARY), ("run.json", run, RUN)):
        try:
            check(value, schema, name.split(".")[0])
        except SchemaError as exc:
            raise OutputError(f"{Path(folder) / name}: {exc} (hand-edited, or not written by this mmgain?)") from None
    data = run.get("data")
    if data is not None:
        try:
            check(data, {"?modalities": (dict, list), "?source": OPT_STR}, "run.data")
        except SchemaError as exc:
            raise OutputError(f"{Path(folder) / 'run.json'}: {exc}") from None
