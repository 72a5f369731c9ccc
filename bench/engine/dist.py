"""``train.launcher: pytorch`` (torchrun) and ``slurm`` (srun), on GPUs and on CPU-only machines.

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

from bench.errors import RunError


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """MMEngine's DDP wrapper, minus the device ids that CPU modules must not be given."""

    def __init__(self, module, device_ids=None, **kwargs):
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        super().__init__(module=module, device_ids=None if on_cpu else device_ids, **kwargs)


def slurm_to_torch_env(environ=None) -> dict[str, str]:
    """The torch.distributed variables of one ``srun`` task, from the SLURM environment, as
    MMEngine's ``_init_dist_slurm`` derives them: RANK = SLURM_PROCID, WORLD_SIZE =
    SLURM_NTASKS, LOCAL_RANK = SLURM_LOCALID, MASTER_ADDR = the first host of SLURM_NODELIST
    (``scontrol show hostnames``) unless MASTER_ADDR is set, MASTER_PORT from the environment
    or 29500. Raises RunError (one line) when a variable or ``scontrol`` is missing."""
    import os
    import shutil
    import subprocess

    env = dict(os.environ if environ is None else environ)
    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS') if k not in env]
    if missing:
        raise RunError(f'train.launcher: slurm, but {", ".join(missing)} is not set: start the '
                       'stage under srun (e.g. `dvc repro` inside an sbatch/salloc allocation)')
    addr = env.get('MASTER_ADDR')
    if not addr:
        nodes = env.get('SLURM_NODELIST') or env.get('SLURM_JOB_NODELIST')
        if not nodes or not shutil.which('scontrol'):
            raise RunError('train.launcher: slurm needs MASTER_ADDR or SLURM_NODELIST with '
                           '`scontrol` on PATH to find the master host')
        addr = subprocess.run(['scontrol', 'show', 'hostnames', nodes], check=True,
                              capture_output=True, text=True).stdout.split()[0]
    return dict(RANK=env['SLURM_PROCID'], WORLD_SIZE=env['SLURM_NTASKS'],
                LOCAL_RANK=env.get('SLURM_LOCALID', '0'), MASTER_ADDR=addr,
                MASTER_PORT=env.get('MASTER_PORT', '29500'))


def init_distributed(cfg, launcher: str = 'pytorch') -> int:
    """Start the process group of a ``torchrun`` (``launcher='pytorch'``) or ``srun``
    (``'slurm'``) launch before the Runner exists; returns the rank. On GPUs this is
    MMEngine's own ``init_dist`` (NCCL; for slurm its ``_init_dist_slurm``, which reads the
    SLURM variables and sets the device); without a GPU, the SLURM variables are translated
    as MMEngine does (:func:`slurm_to_torch_env`), then a gloo group and the CPU wrapper.
    Starting it early lets rank 0 alone prepare the run folder."""
    import os
    if not torch_dist.is_initialized():
        if torch.cuda.is_available():
            from mmengine.dist import init_dist
            init_dist(launcher, backend='nccl')
        else:
            if launcher == 'slurm':
                os.environ.update(slurm_to_torch_env())
            torch_dist.init_process_group(backend='gloo')
    if not torch.cuda.is_available():
        cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel',
                                     broadcast_buffers=False)
    return torch_dist.get_rank()
