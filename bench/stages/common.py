"""Checks and helpers shared by the per-run stages: a run's method and seed exist, the names
its Runner takes, the training key that decides whether a finished run is kept, atomic JSON
writes and the data's fingerprint. The runs' layout is :mod:`bench.runs`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from bench.errors import RunError
import yaml

from bench.params import ROOT, Params, workdir
from bench.runs import RunPaths, seed_key

def check_run(params: Params, method: str, seed: Optional[int] = None) -> None:
    """``method`` is defined and ``seed`` (when given) is one of ``params.seeds``."""
    # imported here: this module is the light one (paths) that perf and gpu-check import
    # before the stack, and bench.errors pulls in bench.engine
    if method not in params.methods:
        raise RunError(f'method {method!r} is not defined in params.yaml `methods` '
                       f'(defined: {", ".join(sorted(params.methods))})')
    if seed is not None and seed not in params.seeds:
        raise RunError(f'seed {seed} is not in params.yaml `seeds` {list(params.seeds)}')


def runner_names(cfg, run: RunPaths, stage: str) -> None:
    """Give the Runner built from ``cfg`` names of its own. MMEngine keeps its logger, message
    hub and visualizer in process-wide registries keyed by name; with one Runner per seed in
    one process, MMPose's fixed ``visualizer.name`` would hand the second Runner the first
    one's visualizer (and its log folder), and two Runners started within one second would
    share a logger. Call it after the training key and the saved config are made: the names
    decide nothing about the result."""
    name = f'{stage}_{run.method}_{seed_key(run.seed, run.geometry)}'
    cfg.experiment_name = name
    if isinstance(cfg.get('visualizer'), dict):
        cfg.visualizer['name'] = name


def fingerprint(obj) -> str:
    """A stable hash of a JSON-able object (the resolved run config)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def write_json(path: Path, obj) -> None:
    """Write atomically: a killed stage never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + '.tmp')
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + '\n')
    tmp.replace(path)


def data_fingerprint() -> Optional[str]:
    """sha256 of ``<workdir>/data/manifest.json`` (the dataset's source, parameters and the
    sha256 of every annotation file), None when there is none: recorded by every training, so
    that scoring a run on other data is refused (``bench.stages.evaluate.check_same_data``)."""
    manifest = workdir() / 'data' / 'manifest.json'
    return hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None


#: Libraries whose version can change the numbers of a training.
_LIBRARIES = ('torch', 'numpy', 'numba', 'mmengine', 'mmcv', 'mmpose')


def training_key(cfg: dict, work_root: Optional[Path] = None,
                 code_root: Path = ROOT) -> str:
    """sha256 of everything that decides a training's result: the resolved config (with the
    checkout's location replaced, so that a moved checkout keeps its key), the files of the
    train stage's ``deps`` in ``code_root/dvc.yaml`` (``data/...`` under ``work_root``: the
    manifest, with the sha256 of the annotation files; the code under ``code_root``; not
    ``runs/tuned/<method>.json``, whose learning rate is in the config), and the versions of
    the numeric libraries. A checkpoint is resumed from only under the same key:
    when DVC re-runs the stage because the data or the code changed, the run starts over
    instead of keeping a model of the old inputs."""
    from importlib.metadata import version
    work_root = (work_root or workdir()).resolve()
    text = json.dumps(cfg, sort_keys=True, default=str).replace(str(work_root), '<workdir>')
    h = hashlib.sha256(text.encode())
    deps = yaml.safe_load((code_root / 'dvc.yaml').read_text())['stages']['train']['deps']
    for dep in deps:
        if dep.startswith('runs/'):  # the tuned learning rate: in the resolved config already
            continue
        base = work_root if dep.startswith('data/') else code_root
        path = base / dep
        if path.is_dir():
            files = sorted(f for f in path.rglob('*')
                           if f.is_file() and '__pycache__' not in f.parts)
        else:
            files = [path] if path.is_file() else []  # hashed as absent
        h.update(f'\0{dep}:{len(files)}'.encode())
        for f in files:
            h.update(f'\0{f.relative_to(base)}\0'.encode())
            h.update(f.read_bytes())
    for lib in _LIBRARIES:
        h.update(f'\0{lib}=={version(lib)}'.encode())
    return h.hexdigest()
