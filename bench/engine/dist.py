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


def prepare_cpu_distributed(cfg) -> None:
    """Start the gloo process group and pick the CPU wrapper when no GPU is visible."""
    if torch.cuda.is_available():
        return
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel', broadcast_buffers=False)
