"""``train.launcher: pytorch`` on machines without a GPU (torchrun + gloo).

MMEngine's stock path assumes CUDA twice: ``init_dist`` calls ``torch.cuda.set_device`` and
``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU module.
On a CPU-only machine we therefore start the gloo process group ourselves (the Runner skips
``init_dist`` when a group exists) and wrap with :class:`CPUDistributedDataParallel`. On GPU
machines nothing here runs and MMEngine's stock path is used unchanged.
"""
from __future__ import annotations

import torch
import torch.distributed as torch_dist
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """MMEngine's DDP wrapper, minus the device ids that CPU modules must not be given."""

    def __init__(self, module, device_ids=None, **kwargs):
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        super().__init__(module=module, device_ids=None if on_cpu else device_ids, **kwargs)


def init_distributed(cfg) -> int:
    """Start the process group of a ``torchrun`` launch before the Runner exists; returns the
    rank. On GPUs this is MMEngine's own ``init_dist`` (NCCL); without a GPU, a gloo group and
    the CPU wrapper. Starting it early lets rank 0 alone prepare the run folder."""
    if not torch_dist.is_initialized():
        if torch.cuda.is_available():
            from mmengine.dist import init_dist
            init_dist('pytorch', backend='nccl')
        else:
            torch_dist.init_process_group(backend='gloo')
    if not torch.cuda.is_available():
        cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel',
                                     broadcast_buffers=False)
    return torch_dist.get_rank()
