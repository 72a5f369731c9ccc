"""Profiles: studies that live side by side with the default one.

A profile is a folder ``profiles/<name>/`` holding

- ``params.yaml``: an override of the top-level ``params.yaml`` that lists only what differs
  (``extends: ../../params.yaml``; mappings merge key by key, lists and values are replaced,
  :func:`bench.params.resolve_raw`). It must set ``profile: <name>`` and ``active_methods``;
- ``dvc.yaml``: the top-level pipeline, *generated* from ``dvc.yaml`` by :func:`pipeline`
  (``python -m bench pipeline <name>``), never edited by hand; a test keeps every committed one
  equal to what the generator writes today;
- after ``dvc repro profiles/<name>/dvc.yaml`` (``make profile P=<name>``): its own ``data/``,
  ``runs/`` (git-ignored) and ``reports/``, ``dvc.lock`` (committed).

The stages run with the profile folder as working directory (DVC's default ``wdir``), which is
the project's work dir (:func:`bench.params.workdir`): every relative path of the study
(``data/``, ``runs/``, ``reports/``) lands inside the profile, so the default study's files are
never touched and the tracked ``params.yaml`` is never overwritten.

What the generator changes in each stage of the top-level pipeline:

- code deps (``bench/...``, ``mmpose_configs``: paths that exist at the checkout's root
  outside ``data/``, ``runs/`` and ``reports/``) are made relative to the profile folder;
- ``params`` track two files: the sections of the top-level ``params.yaml`` the stage reads
  (whole sections: a method defined only in the override has no key in the top-level file),
  and the profile's own ``params.yaml`` whole (it is small, and any of its keys may override
  any section).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from bench.params import ROOT, ParamsError, read_mapping, load_params

#: Where profiles live, below the checkout's root.
PROFILES_DIR = 'profiles'
#: The folders of a study's own files: a dep there is the profile's, not the checkout's.
_WORK_DIRS = ('data', 'runs', 'reports')
_NAME = re.compile(r'^[A-Za-z0-9_-]+$')
_HEADER = ('# GENERATED from the top-level dvc.yaml by `python -m bench pipeline {name}`: do not '
           'edit.\n# The {name} profile: params.yaml here overrides ../../params.yaml; data/, '
           'runs/ and\n# reports/ of this profile live in this folder (bench/profiles.py).\n')


def profile_dir(name: str, root: Path = ROOT) -> Path:
    """``profiles/<name>``: the profile's folder (its work dir)."""
    if not _NAME.match(name or ''):
        raise ParamsError(f'profile name {name!r}: letters, digits, - and _ only')
    return Path(root) / PROFILES_DIR / name


def profile_names(root: Path = ROOT) -> list[str]:
    """Every profile that has a ``params.yaml``, sorted."""
    return sorted(p.parent.name for p in (Path(root) / PROFILES_DIR).glob('*/params.yaml'))


def check_profile(name: str, root: Path = ROOT) -> None:
    """The profile's params resolve and validate, say which profile they are, and set the
    ``active_methods`` DVC's matrix reads from that file; else :class:`ParamsError`."""
    path = profile_dir(name, root) / 'params.yaml'
    if not path.is_file():
        have = ', '.join(profile_names(root)) or 'none'
        raise ParamsError(f'no profile {name!r}: {path} does not exist (profiles: {have})')
    params = load_params(path)
    if params.profile != name:
        raise ParamsError(f'{path}: profile = {params.profile!r}: must be {name!r}, the '
                          f'folder\'s name (it names the study in its report)')
    if 'active_methods' not in read_mapping(path):
        raise ParamsError(f'{path}: must set active_methods itself (the stages of '
                          f'dvc.yaml are made per method from this file)')


def _relocate(dep: str, up: str, root: Path) -> str:
    head = dep.split('/', 1)[0]
    if head in _WORK_DIRS or '${' in dep or not (root / dep).exists():
        return dep
    return f'{up}/{dep}'


def _params(entries: list, up: str) -> list:
    top = []
    for entry in entries:
        if not isinstance(entry, str):
            raise ParamsError(f'dvc.yaml: a params entry {entry!r} of another file: the '
                              f'profile generator only knows keys of params.yaml')
        section = entry.split('.', 1)[0]
        if section not in top:
            top.append(section)
    return [{f'{up}/params.yaml': top}, {'params.yaml': None}]


def pipeline(name: str, root: Path = ROOT) -> str:
    """The text of ``profiles/<name>/dvc.yaml``, made from ``<root>/dvc.yaml``."""
    check_profile(name, root)
    folder = profile_dir(name, root)
    up = Path(os.path.relpath(root, folder)).as_posix()
    spec = yaml.safe_load((Path(root) / 'dvc.yaml').read_text())
    stages = {}
    for stage_name, stage in spec['stages'].items():
        stage = dict(stage)
        if 'wdir' in stage:
            raise ParamsError(f'dvc.yaml: stage {stage_name} sets wdir: profiles run every '
                              f'stage in their own folder')
        stage['deps'] = [_relocate(d, up, Path(root)) for d in stage.get('deps', [])]
        if stage.get('params'):
            stage['params'] = _params(stage['params'], up)
        stages[stage_name] = stage
    body = yaml.safe_dump({'stages': stages}, sort_keys=False, default_flow_style=False,
                          width=100)
    return _HEADER.format(name=name) + body


def write_pipeline(name: str, root: Path = ROOT) -> Path:
    """Write ``profiles/<name>/dvc.yaml``; returns its path."""
    path = profile_dir(name, root) / 'dvc.yaml'
    text = pipeline(name, root)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path
