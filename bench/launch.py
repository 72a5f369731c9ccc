"""How a stage process starts its training: the multi-process launchers and the settings that
must be in place before the first CUDA call.

``dvc repro`` runs one process per stage. With ``train.launcher: pytorch`` that process becomes
``torchrun`` with ``train.gpus`` workers; with ``slurm`` it becomes ``srun`` with ``train.gpus``
tasks (inside the user's allocation), each task marked by ``POSEBENCH_SLURM_STEP=1`` so that it
trains instead of launching again. Rank, world size and master address then come from the
launcher's environment (:mod:`bench.engine.dist`).
"""
from __future__ import annotations

import os
import shutil
import sys

from bench.errors import RunError

#: Set in the tasks that ``srun`` starts: they train, they do not launch again.
SLURM_STEP = 'POSEBENCH_SLURM_STEP'
#: cuBLAS's deterministic workspace (PyTorch's "Reproducibility" notes; CUDA >= 10.2).
CUBLAS_WORKSPACE = ':4096:8'


def configure_determinism(deterministic: bool) -> None:
    """With ``train.deterministic``, what PyTorch needs for deterministic CUDA kernels and that
    only works when set before CUDA starts: ``CUBLAS_WORKSPACE_CONFIG`` (inherited by torchrun /
    srun workers) and cuDNN without benchmarking. MMEngine's ``randomness.deterministic`` does
    the rest (``torch.use_deterministic_algorithms``). A value the user set is kept."""
    if not deterministic:
        return
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', CUBLAS_WORKSPACE)
    if 'torch' in sys.modules:
        import torch
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def relaunch_command(launcher: str, gpus: int, bench_args: list[str],
                     environ=None) -> list[str] | None:
    """The command that replaces this process for a multi-process training, or None when this
    process trains itself (no launcher, or already a torchrun worker / srun task).

    Raises:
        RunError: ``slurm`` without ``srun`` on PATH.
    """
    env = os.environ if environ is None else environ
    here = [sys.executable, '-m', 'bench', *bench_args]
    if launcher == 'pytorch' and 'LOCAL_RANK' not in env:
        return [sys.executable, '-m', 'torch.distributed.run', '--standalone',
                f'--nproc_per_node={gpus}', *here[1:]]
    if launcher == 'slurm' and env.get(SLURM_STEP) != '1':
        srun = shutil.which('srun', path=env.get('PATH'))
        if srun is None:
            raise RunError('train.launcher: slurm needs `srun` on PATH: run `dvc repro` inside '
                           'an sbatch/salloc allocation (or use launcher: pytorch)')
        return [srun, f'--ntasks={gpus}', f'--export=ALL,{SLURM_STEP}=1', *here]
    return None
