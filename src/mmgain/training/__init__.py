"""Training: the protocol, the minibatch schedule and the batched trainer."""
from .batched import BatchedAdam, BatchedTrainer, DeviceData, Streams, resolve_device
from .protocol import PROTOCOLS, TrainingProtocol
from .schedule import BatchSchedule

__all__ = ["BatchedAdam", "BatchedTrainer", "DeviceData", "Streams", "resolve_device", "PROTOCOLS",
           "TrainingProtocol", "BatchSchedule"]
