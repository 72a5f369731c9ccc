"""MMEngine extensions used by every run: hooks (logging, guard, snapshots) and the metric."""
from .hooks import (DivergenceError, DivergenceGuardHook, DVCLiveLoggerHook, EpochSeedHook,
                    HeatmapSnapshotHook)
from .dist import CPUDistributedDataParallel
from .metrics import KeypointRecorder

__all__ = ['CPUDistributedDataParallel', 'DivergenceError', 'DivergenceGuardHook', 'DVCLiveLoggerHook', 'EpochSeedHook',
           'HeatmapSnapshotHook', 'KeypointRecorder']
