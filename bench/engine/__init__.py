"""MMEngine extensions used by every run: hooks (logging, guard, snapshots) and the metric."""
from .hooks import (ChannelsLastHook, DivergenceError, DivergenceGuardHook, DVCLiveLoggerHook,
                    EpochSeedHook, HeatmapSnapshotHook)
from .dist import CPUDistributedDataParallel
from .metrics import KeypointRecorder
from .batched_data import BatchedTopdownDataset, BatchTopdownPreprocessor

__all__ = ['BatchedTopdownDataset', 'BatchTopdownPreprocessor', 'ChannelsLastHook',
           'CPUDistributedDataParallel', 'DivergenceError', 'DivergenceGuardHook',
           'DVCLiveLoggerHook', 'EpochSeedHook', 'HeatmapSnapshotHook', 'KeypointRecorder']
