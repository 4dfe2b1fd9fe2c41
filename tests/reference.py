"""The per-model yardstick for the batched trainer: the package's naive loop
(:mod:`mmgain.training.naive`), also what ``mmgain bench`` times."""
from mmgain.training.naive import train_naive as train_reference

__all__ = ["train_reference"]
