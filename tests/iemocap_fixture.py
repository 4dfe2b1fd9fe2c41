"""A small file in exactly the layout of IEMOCAP_features_raw.pkl (bc-LSTM features)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_iemocap_fixture(path: Path, n_train: int = 6, n_test: int = 3, seed: int = 0) -> dict:
    r = np.random.default_rng(seed)
    ids, speakers, labels, text, audio, visual, sentences = {}, {}, {}, {}, {}, {}, {}
    vids = [f"Ses0{1 + i // 4}_dlg{i:02d}" for i in range(n_train + n_test)]
    n_utt = 0
    for i, vid in enumerate(vids):
        n = int(r.integers(4, 9))
        lab = r.integers(0, 6, n)
        lab[: min(n, 6)] = np.arange(min(n, 6))          # every class in every dialogue (n ≥ 6 here or fewer)
        signal = np.eye(6)[lab]
        ids[vid] = [f"{vid}_{j}" for j in range(n)]
        speakers[vid] = ["M" if j % 2 else "F" for j in range(n)]
        labels[vid] = lab.tolist()
        text[vid] = [np.r_[3 * signal[j], r.standard_normal(94)].astype(np.float32) for j in range(n)]
        audio[vid] = [np.r_[signal[j], r.standard_normal(94)].astype(np.float32) for j in range(n)]
        visual[vid] = [r.standard_normal(512).astype(np.float32) for _ in range(n)]
        sentences[vid] = [f"utterance {j}" for j in range(n)]
        n_utt += n
    train, test = set(vids[:n_train]), set(vids[n_train:])
    with open(path, "wb") as f:
        pickle.dump((ids, speakers, labels, text, audio, visual, sentences, train, test), f, protocol=2)
    return {"n_utterances": n_utt, "train": train, "test": test, "labels": labels}


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def write_unsafe_pickle(path: Path, marker: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(({}, {}, {}, _Evil(marker), {}, {}, {}, set(), set()), f, protocol=2)
