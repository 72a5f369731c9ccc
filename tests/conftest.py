"""Shared fixtures: a tiny but real study (generated data, 2-epoch trainings) in a temp folder,
and the suite's order (the longest files first)."""
from __future__ import annotations

import os

# One thread per numeric library in the suite and in every process it starts (they inherit the
# environment): `make test` runs two workers on two cores, and each worker's stage processes
# are single runs on tiny inputs. With the libraries' default (a thread per core each) the
# suite spent a quarter more CPU time (28 against 35 CPU-minutes) for no speed. Set before
# anything imports torch (``bench.params`` below registers the MMPose modules).
for _var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
    os.environ.setdefault(_var, '1')

import fcntl  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

from bench.params import ROOT, merge  # noqa: E402

TINY = {
    'data': {'workers': 1, 'stickman': {'image_size': [96, 96], 'train': 48, 'val': 8,
                                        'test': 12}},
    'model': {'backbone': {'stem_channels': 8, 'base_channels': 8},
              'deconv_channels': [8, 8]},
    'train': {'epochs': 2, 'batch_size': 16, 'warmup_iters': 2, 'milestones': [],
              'workers': 0, 'val_interval': 1, 'parallel_runs': 1},
    'active_methods': ['regression_dark', 'cls_ohem'],
    'seeds': [0],
    'eval': {'snapshot_epochs': [1], 'snapshot_images': 2},
}


def write_params(workdir: Path, **overrides) -> Path:
    doc = merge(merge(yaml.safe_load((ROOT / 'params.yaml').read_text()), TINY), overrides)
    path = workdir / 'params.yaml'
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def bench(workdir: Path, *args, check=True, timeout=600, **popen) -> subprocess.CompletedProcess:
    """Run ``python -m bench ARGS`` as a real process in ``workdir``."""
    env = {**os.environ, 'POSEBENCH_WORKDIR': str(workdir), 'PYTHONUNBUFFERED': '1'}
    proc = subprocess.run([sys.executable, '-m', 'bench', *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'bench {" ".join(args)} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return proc


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory) -> Path:
    """A work folder with tiny params and its generated dataset (made once per session)."""
    work = tmp_path_factory.mktemp('tiny_data')
    write_params(work)
    bench(work, 'data')
    return work


@pytest.fixture
def tiny_work(tiny_data, tmp_path) -> Path:
    """A fresh work folder sharing the session's generated data."""
    shutil.copytree(tiny_data / 'data', tmp_path / 'data')
    shutil.copy(tiny_data / 'params.yaml', tmp_path / 'params.yaml')
    return tmp_path


@pytest.fixture(scope='session', autouse=True)
def compiled_decoder():
    """Compile the exact decoder's numba kernels once per session into the checkout's
    ``bench/codecs/__pycache__`` (numba's cache), for the input types the stages pass: every
    stage process of the tests then loads them instead of compiling (2-5 s a process), the
    end-to-end repos too (:func:`dvc_repo` copies the cache with the code)."""
    import numpy as np

    from bench.codecs import PixelClassLabel
    from bench.codecs.pixel_class_label import recover_gaussians
    codec = PixelClassLabel((32, 32), (8, 8), 1.0)
    probs = codec.encode(np.full((1, 2, 2), 16.0))['heatmaps'][None]
    for dtype in (np.float32, np.float64):
        codec.batch_decode(probs.astype(dtype))
        recover_gaussians(probs.astype(dtype))


# ------------------------------------------------------------------- end-to-end DVC repos

def dvc_env() -> dict:
    env = {**os.environ, 'PATH': f'{Path(sys.executable).parent}:{os.environ["PATH"]}',
           'DVC_NO_ANALYTICS': '1'}
    env.pop('POSEBENCH_WORKDIR', None)
    return env


def run_dvc(repo: Path, *args: str) -> str:
    """``dvc ARGS`` in ``repo``: its output and its stages' (stdout and stderr in the order
    they were written: :func:`stage_output` cuts it per stage)."""
    proc = subprocess.run(['dvc', *args], cwd=repo, env=dvc_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900)
    assert proc.returncode == 0, f'dvc {" ".join(args)}:\n{proc.stdout[-8000:]}'
    return proc.stdout


def stale_stages(repo: Path) -> set[str]:
    """The stages ``dvc status`` lists in ``repo`` (what a ``dvc repro`` would run)."""
    return {line.rstrip(':') for line in run_dvc(repo, 'status').splitlines()
            if line and not line[0].isspace() and line.endswith(':')}


def git(repo: Path, *args: str) -> None:
    subprocess.run(['git', '-c', 'user.name=posebench', '-c', 'user.email=ci@posebench',
                    *args], cwd=repo, check=True, capture_output=True)


def dvc_repo(repo: Path, **params) -> Path:
    """A fresh git + DVC repo at ``repo`` with the project's pipeline (``dvc.yaml``,
    ``mmpose_configs/``, ``bench/``) and the tiny params with ``params`` overrides, committed.
    The code's timestamps and numba's cache of the decoder's kernels come along (``.pyc`` files
    do not): the stage processes load the compiled kernels (conftest ``compiled_decoder``)."""
    repo.mkdir(parents=True)
    for item in ('dvc.yaml', 'mmpose_configs', 'bench'):
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, repo / item, ignore=shutil.ignore_patterns('*.pyc'))
        else:
            shutil.copy(src, repo / item)
    write_params(repo, **params)
    git(repo, 'init', '-q')
    run_dvc(repo, 'init', '-q')
    shutil.copy(ROOT / '.dvcignore', repo / '.dvcignore')
    git(repo, 'add', '-A')
    git(repo, 'commit', '-qm', 'tiny study')
    return repo


# ------------------------------------------------------------------------------------ ordering

#: Test files by their share of the suite (measured with ``--durations=0``: seconds of one
#: worker), longest first. ``make test`` hands whole files to its workers in collection order
#: (``--dist loadfile --no-loadscope-reorder``): the long ones start at once and the many short
#: ones fill the gaps, instead of a 7-minute file starting last. Files not listed follow in
#: their usual order.
LONGEST_FIRST = ('test_dvc_pipeline.py', 'test_zoo.py', 'test_sweep_tune.py', 'test_pipeline.py',
                 'test_gpu_bundle.py', 'test_launch.py', 'test_report.py', 'test_evaluate.py',
                 'test_batched_data.py', 'test_floor.py', 'test_perf.py', 'test_configs.py')


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: same order within


# ------------------------------------------------------------------------- the shared tiny study

@contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` (created), held by one pytest worker at a time."""
    with open(path, 'w') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope='session')
def tiny_study(tmp_path_factory, worker_id) -> Path:
    """The tiny study (both headline formulations, seed 0, 2 epochs) run once by ``dvc repro``
    in a fresh git + DVC repo, shared by every worker of the session (the first to ask builds
    it; a file lock makes the others wait). Read it, never change it: a test that edits
    params or re-runs stages works on :func:`copy_repo` of it. Its first ``dvc repro``'s
    output is ``repro.log`` beside the repo."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if worker_id != 'master' else base) / 'tiny_study'
    shared.mkdir(exist_ok=True)
    repo, log = shared / 'repo', shared / 'repro.log'
    with _locked(shared / '.lock'):
        if not log.is_file():
            shutil.rmtree(repo, ignore_errors=True)  # a build that failed in another worker
            out = run_dvc(dvc_repo(repo, train={'epochs': 2}), 'repro')
            log.write_text(out)
    return repo


def copy_repo(repo: Path, dest: Path) -> Path:
    """A copy of a built study repo (git, DVC cache, data, runs) at ``dest``, to change."""
    shutil.copytree(repo, dest, symlinks=True)
    return dest


def stage_output(log: str, stage: str) -> str:
    """What ``dvc repro`` printed while it ran ``stage`` (its command's output)."""
    start = log.index(f"Running stage '{stage}'")
    end = log.find("Running stage '", start + 1)
    return log[start:] if end < 0 else log[start:end]
