"""Resume MMEngine checkpoints under ``torch.load(weights_only=True)`` (torch >= 2.6 default).

MMEngine 0.10.7 calls ``torch.load`` without ``weights_only``; since torch 2.6 that means
``weights_only=True``, and MMEngine's own checkpoints (message hub, RNG meta) carry numpy
scalars and arrays, so ``resume=True`` stops with "Unsupported global". We never fall back to
``weights_only=False`` (arbitrary pickles): exactly the numpy types MMEngine writes are allowed.
"""
from __future__ import annotations

import numpy as np
import torch


def allow_mmengine_checkpoints() -> None:
    from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool',
                                          'uint8', 'object')]
    torch.serialization.add_safe_globals([_reconstruct, scalar, np.ndarray, np.dtype, *dtypes])
