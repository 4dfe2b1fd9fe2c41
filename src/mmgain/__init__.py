"""mmgain: does adding a modality help, from how much data on, and why?

The framework of Huang et al., "What Makes Multimodal Learning Better than
Single (Provably)", NeurIPS 2021, as software: late-fusion models over every
modality subset, trained as one batched program, and the latent-quality probe
η̂ that explains when more modalities win.

    import mmgain
    study = mmgain.analyze({"image": X_img, "text": X_txt}, y=labels)
    study.verdicts            # a DataFrame: does each modality help, at which n, and why
    study.save("runs/mine")   # the run folder and report.html; mmgain.load() reads it back
"""
import os as _os

# MKL's default kernels may round differently by where an array sits in memory (measured on a
# Zen 4 EPYC): a model's probe would then depend on which models share its batch, and so on
# --memory-gb.  Strict conditional numerical reproducibility makes results depend on the values
# alone, at no measured cost (docs/guide/run-folder.md, "Determinism").  MKL reads it at its first call;
# a value the user set wins.
_os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from ._version import __version__  # noqa: E402
__all__ = ["Study", "analyze", "load", "resume", "__version__"]


def __getattr__(name: str):
    # The API pulls in torch; `import mmgain` (and `mmgain --version`) stays light until it is used.
    if name in ("Study", "analyze", "load", "resume"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'mmgain' has no attribute {name!r}")
