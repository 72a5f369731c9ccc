"""The command line starts fast, and `import bench` still registers the MMPose modules.

`python -m bench --help` must not import the deep-learning stack (seconds of start-up); every
other way of importing the package (a config's `custom_imports`, a script, another package run
with `-m`) must register the project's modules in MMPose's registries, and every command
must find them registered.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from bench.params import ROOT

HEAVY = ('torch', 'mmpose', 'mmengine', 'mmdet', 'mmcv')


def _run(*args: str, cwd=ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def _imported(importtime_stderr: str) -> set[str]:
    """Top-level packages from `python -X importtime` output (one line per module)."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith('import time:') and line.count('|') == 2:
            name = line.rsplit('|', 1)[1].strip()
            names.add(name.split('.')[0])
    return names


@pytest.mark.parametrize('args', [('-m', 'bench', '--help'), ('-mbench', '--help'),
                                  ('-m', 'bench', 'train', '--help'), ('-m', 'bench')],
                         ids=['help', 'help-attached-m', 'subcommand-help', 'usage-error'])
def test_help_does_not_import_the_stack(args):
    proc = _run('-X', 'importtime', *args)
    expected_rc = 2 if args[-1] == 'bench' else 0  # no command: usage error
    assert proc.returncode == expected_rc, proc.stderr[-2000:]
    imported = _imported(proc.stderr)
    assert 'bench' in imported  # the measurement did see our package
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    if expected_rc == 0:
        assert 'usage: bench' in proc.stdout
    if 'train' in args:  # one process per method; --seed narrows it to one run
        assert '--seed SEED' in proc.stdout and 'every seed' in proc.stdout


def _registered_snippet() -> str:
    return textwrap.dedent("""
        from mmpose.registry import HOOKS, KEYPOINT_CODECS, METRICS, MODELS
        names = [('KEYPOINT_CODECS', 'PixelClassLabel'), ('MODELS', 'PixelClassHead'),
                 ('MODELS', 'PixelCrossEntropyLoss'), ('MODELS', 'PixelFocalLoss'),
                 ('HOOKS', 'DVCLiveLoggerHook'), ('HOOKS', 'DivergenceGuardHook'),
                 ('HOOKS', 'HeatmapSnapshotHook'), ('METRICS', 'KeypointRecorder')]
        missing = [f'{reg}.{name}' for reg, name in names
                   if globals()[reg].get(name) is None]
        print('missing:', missing)
    """)


def test_import_bench_registers_the_mmpose_modules():
    # a fresh interpreter: in this one, conftest imported bench long ago
    proc = _run('-c', 'import bench\n' + _registered_snippet())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'missing: []' in proc.stdout, proc.stdout


def test_another_package_run_with_dash_m_gets_bench_registered(tmp_path):
    """Only `python -m bench` defers registration: a package of the user's, run with `-m`,
    that imports bench while it is located, finds the modules registered."""
    pkg = tmp_path / 'userpkg'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('import bench  # noqa: F401\n')
    (pkg / '__main__.py').write_text(_registered_snippet())
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        p for p in (str(ROOT), os.environ.get('PYTHONPATH')) if p)}
    proc = subprocess.run([sys.executable, '-m', 'userpkg'], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'missing: []' in proc.stdout, proc.stdout


def test_check_params_finds_our_losses_registered():
    """`python -m bench` registers before any command: the shipped params name our losses
    (`PixelCrossEntropyLoss`), which the schema looks up in MMPose's MODELS."""
    proc = _run('-m', 'bench', '--params', str(ROOT / 'params.yaml'), 'check-params')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ': ok (' in proc.stdout


def test_check_params_does_not_import_the_stack():
    """The shipped params name only our own losses, which the schema knows without MMPose."""
    proc = _run('-X', 'importtime', '-m', 'bench', '--params', str(ROOT / 'params.yaml'),
                'check-params')
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = _imported(proc.stderr)
    assert 'pydantic' in imported and not imported & set(HEAVY), sorted(imported & set(HEAVY))
