"""Augmentation streams that depend on (seed, epoch, rank, worker) when data loads in workers.

MMEngine's default ``worker_init_fn`` seeds each worker with ``seed + worker_id + rank``: the
same in every epoch, so with ``train.workers > 0`` every epoch would replay the first epoch's
augmentations. Instead, :class:`bench.engine.hooks.EpochSeedHook` gives the train loader a
``torch.Generator`` seeded from (seed, epoch, rank) before each epoch; PyTorch draws each
epoch's base seed from it and seeds worker ``i`` with base + i; :func:`epoch_worker_init`
passes that seed on to the numpy and ``random`` RNGs that MMPose's transforms draw from.
Workers are re-created each epoch (``persistent_workers=False``), so a resumed run draws exactly
what an uninterrupted one does.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from mmengine.registry import FUNCTIONS

#: The name a dataloader config uses: ``worker_init_fn=dict(type=WORKER_INIT)``.
WORKER_INIT = 'posebench_epoch_worker_init'


@FUNCTIONS.register_module(name=WORKER_INIT)
def epoch_worker_init(worker_id: int) -> None:
    """Seed numpy and ``random`` in a dataloader worker from its torch seed (the epoch's base
    seed + ``worker_id``)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def epoch_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """The train loader's generator for one epoch (its workers' base seed comes from it)."""
    state = int(np.random.SeedSequence([seed, epoch, rank, 1]).generate_state(1)[0])
    return torch.Generator().manual_seed(state)
