"""Data preprocessors registered in ``mmpose.registry.MODELS``: the batched training path's
augmentation, crop and targets on the training device."""
from .batch_topdown import BatchTopdownPreprocessor

__all__ = ['BatchTopdownPreprocessor']
