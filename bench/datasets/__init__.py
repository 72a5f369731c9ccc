"""Datasets registered in ``mmpose.registry.DATASETS``: the batched training path's dataset."""
from .batched_topdown import BatchedTopdownDataset, RawTopdownSample

__all__ = ['BatchedTopdownDataset', 'RawTopdownSample']
