"""MMEngine extensions used by every run: hooks (logging, guard, snapshots, channels-last,
per-epoch seeding) and distributed training on the CPU."""
from .hooks import (ChannelsLastHook, DivergenceError, DivergenceGuardHook, DVCLiveLoggerHook,
                    EpochSeedHook, HeatmapSnapshotHook)
from .dist import CPUDistributedDataParallel

__all__ = ['ChannelsLastHook', 'CPUDistributedDataParallel', 'DivergenceError',
           'DivergenceGuardHook', 'DVCLiveLoggerHook', 'EpochSeedHook', 'HeatmapSnapshotHook']
