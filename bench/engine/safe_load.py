"""Resume MMEngine checkpoints under ``torch.load(weights_only=True)`` (torch >= 2.6 default).

MMEngine 0.10.7 calls ``torch.load`` without ``weights_only``; since torch 2.6 that means
``weights_only=True``, and MMEngine's own checkpoints (message hub, RNG meta) carry numpy
arrays, ``collections.Counter`` and ``HistoryBuffer`` objects, so ``resume=True`` stops with
"Unsupported global". We never fall back to ``weights_only=False`` (arbitrary pickles):

- exactly the classes MMEngine writes are allow-listed;
- ``HistoryBuffer`` pickles its class-level table of statistics *functions* through
  ``builtins.getattr``, which must never be allow-listed (it reaches any attribute). Those
  functions are the class's own defaults, re-registered by ``__setstate__``, so checkpoints
  written by our runs leave them out.
"""
from __future__ import annotations

import collections

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer


def _history_buffer_state(self: HistoryBuffer) -> dict:
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    return state


def allow_mmengine_checkpoints() -> None:
    """Make MMEngine checkpoints loadable with ``weights_only=True``; idempotent."""
    from numpy.core.multiarray import _reconstruct, scalar
    HistoryBuffer.__getstate__ = _history_buffer_state
    dtypes = [type(np.dtype(t)) for t in ('float64', 'float32', 'float16', 'int64', 'int32',
                                          'int16', 'int8', 'uint8', 'bool')]
    torch.serialization.add_safe_globals([_reconstruct, scalar, np.ndarray, np.dtype, *dtypes,
                                          HistoryBuffer, collections.Counter])
