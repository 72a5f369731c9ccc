"""The GPU machine's offline install (issue 29, item 1), tested on the CPU as far as it goes:
the split of the pins, the bundle resolved for a target Python with no conflict, and its
install script run against a local folder next to this venv's torch and numpy."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu_bundle import plan
from bench.params import ROOT


def test_the_plan_carries_no_machine_stack_and_builds_what_must_be_built():
    p = plan()
    names = {k: {r.split('==')[0] for r in v} for k, v in p.items()}
    assert {'torch', 'torchvision', 'numpy'} <= names['left_out']
    assert names['source'] == {'mmcv', 'xtcocotools'}
    assert names['no_deps'] == {'mmengine', 'mmpose', 'mmdet'}
    assert 'dvc' in names['resolved'] and 'pydantic' in names['resolved']
    assert not names['resolved'] & (names['left_out'] | names['source'] | names['no_deps'])
    assert all('==' in r for v in p.values() for r in v)  # every version pinned


@pytest.mark.slow
def test_bundle_resolves_and_installs_into_a_folder(tmp_path):
    """Built for this interpreter (the device machine's is 3.12; the resolution is the same
    code path with another --python-version), then ``install.sh`` against a folder with this
    venv's torch and numpy as "the machine's own" and the cached MMCV wheel (the GPU machine
    builds it: the step is the same pip call on an sdist). The big wheels that a machine may
    have already are left out, as the README's recipe for a size-limited carry does (they come
    from this venv here). Every bundled package imports from the folder."""
    wheel = sorted(glob.glob(str(Path.home() / '.cache' / 'posebench' / 'wheels' / '*' /
                                 'mmcv-2.1.0-cp311-*.whl')))
    assert wheel, 'no cached MMCV wheel: `make setup` builds one'
    out, target = tmp_path / 'gpu', tmp_path / 'site'
    py = f'{sys.version_info.major}.{sys.version_info.minor}'
    leave_out = 'llvmlite,numba,opencv-python-headless,scipy,matplotlib,pandas'
    proc = subprocess.run([sys.executable, str(ROOT / 'bench' / 'gpu_bundle.py'), '--python', py,
                           '--out', str(out), '--leave-out', leave_out],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / 'manifest.json').read_text())
    assert not any(w.startswith(('torch-', 'numpy-', 'llvmlite-', 'scipy-'))
                   for w in manifest['wheels'])
    assert any(w.startswith('dvc-3.67.1') for w in manifest['wheels'])
    assert sorted(s.split('-')[0] for s in manifest['sdists']) == ['mmcv', 'xtcocotools']

    env = {**os.environ, 'PYTHON': sys.executable, 'MMCV_WHEEL': wheel[-1]}
    proc = subprocess.run(['bash', str(out / 'install.sh'), str(target)], capture_output=True,
                          text=True, timeout=900, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'posebench environment ready' in proc.stdout
    check = ('import mmcv, mmengine, mmpose, dvc, xtcocotools, pydantic; '
             'print("\\n".join(m.__file__ for m in (mmcv, mmengine, mmpose, dvc, xtcocotools, '
             'pydantic)))')
    proc = subprocess.run([sys.executable, '-c', check], capture_output=True, text=True,
                          env={**os.environ, 'PYTHONPATH': str(target)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(line.startswith(str(target)) for line in proc.stdout.split()), proc.stdout
