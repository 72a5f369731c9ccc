"""``make setup`` / ``bench/install.py``: it honours the user's environment and hardware, and its
failures are explained (on temporary copies; nothing here builds MMCV)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pytest

from bench.params import ROOT

CPU_INFO = dict(py_tag='cp311', platform='linux_x86_64', torch='2.9.1+cu128', cuda='12.8',
                gpu=False)


@pytest.fixture(scope='module')
def install():
    spec = importlib.util.spec_from_file_location('posebench_install', ROOT / 'bench/install.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _wheel(path: Path, truncate: bool = False) -> Path:
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('mmcv/__init__.py', 'x = 1\n' * 2000)
        z.writestr('mmcv-2.1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\n')
    if truncate:
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    return path


def test_missing_interpreter_fails_fast_with_one_line(tmp_path):
    for item in ('Makefile', 'pyproject.toml'):
        shutil.copy(ROOT / item, tmp_path / item)
    (tmp_path / 'bench').mkdir()
    shutil.copy(ROOT / 'bench/install.py', tmp_path / 'bench/install.py')
    start = time.perf_counter()
    proc = subprocess.run(['make', 'setup', 'PYTHON=python3.99-not-here'], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and time.perf_counter() - start < 10
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error:')]
    assert len(errors) == 1 and 'python3.99-not-here not found' in errors[0]
    assert 'install Python 3.11' in errors[0]
    assert not (tmp_path / '.venv').exists()


def test_wrong_python_refused_before_anything_is_built(install):
    install.check_interpreter('>=3.11,<3.12', (3, 11))
    with pytest.raises(SystemExit) as exc:
        install.check_interpreter('>=3.11,<3.12', (3, 12))
    msg = str(exc.value)
    assert msg.startswith('error:') and '3.12' in msg and 'python3.11' in msg
    assert '\n' not in msg


def test_wrong_python_exits_in_seconds_as_a_process(tmp_path):
    """The whole script, run by a Python that does not fit requires-python: refused before
    the venv or the MMCV build (a copy of the project whose pyproject asks for another
    version stands in for a wrong interpreter)."""
    shutil.copytree(ROOT / 'bench', tmp_path / 'bench', ignore=shutil.ignore_patterns('*.py[co]'))
    text = (ROOT / 'pyproject.toml').read_text().replace(
        'requires-python = ">=3.11,<3.12"', 'requires-python = ">=3.99"')
    (tmp_path / 'pyproject.toml').write_text(text)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, 'bench/install.py', '.venv'], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and time.perf_counter() - start < 10
    assert proc.stderr.strip().startswith('error: posebench needs Python >=3.99')
    assert not (tmp_path / '.venv').exists()


def test_wheel_verification(install, tmp_path):
    good = _wheel(tmp_path / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl')
    assert install.wheel_ok(good, 'cp311', 'linux_x86_64')
    assert not install.wheel_ok(good, 'cp312', 'linux_x86_64')  # another Python
    assert not install.wheel_ok(good, 'cp311', 'linux_aarch64')
    (tmp_path / 'sub').mkdir()
    bad = _wheel(tmp_path / 'sub' / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl', truncate=True)
    assert not install.wheel_ok(bad, 'cp311', 'linux_x86_64')


def test_truncated_cached_wheel_is_rebuilt(install, tmp_path):
    cache = tmp_path / 'cache'
    cache.mkdir()
    _wheel(cache / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl', truncate=True)
    calls = []

    def build(folder):
        calls.append(folder)
        _wheel(folder / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl')

    wheel = install.cached_or_built('mmcv', '2.1.0', cache, CPU_INFO, build)
    assert calls == [cache] and install.wheel_ok(wheel, 'cp311', 'linux_x86_64')
    # a good cached wheel is used as it is
    assert install.cached_or_built('mmcv', '2.1.0', cache, CPU_INFO, build) == wheel
    assert len(calls) == 1


def test_legacy_cache_adopted_without_a_rebuild(install, tmp_path):
    legacy = tmp_path / 'torch-2.9.1+cu128'
    legacy.mkdir()
    _wheel(legacy / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl')
    cache = install.cache_dir(tmp_path, CPU_INFO, 'cpu')
    assert cache.name == 'cp311-torch-2.9.1+cu128-cpu'
    wheel = install.cached_or_built('mmcv', '2.1.0', cache, CPU_INFO,
                                    lambda folder: pytest.fail('rebuilt'), legacy)
    assert wheel.parent == cache


def test_cache_keyed_on_python_torch_and_ops(install, tmp_path):
    keys = {install.cache_dir(tmp_path, dict(CPU_INFO, **upd), mode).name
            for upd, mode in [({}, 'cpu'), ({}, 'cuda12.8'), ({'py_tag': 'cp312'}, 'cpu'),
                              ({'torch': '2.9.0'}, 'cpu')]}
    assert len(keys) == 4


def _no_nvcc(name):
    return None


def test_force_cuda_from_the_environment_reaches_the_build(install):
    mode, env, why = install.build_mode(CPU_INFO, {'FORCE_CUDA': '1'}, which=_no_nvcc)
    assert mode == 'cuda12.8' and env['FORCE_CUDA'] == '1' and 'FORCE_CUDA=1' in why
    assert 'CUDA_VISIBLE_DEVICES' not in env
    mode, env, _ = install.build_mode(CPU_INFO, {'POSEBENCH_CUDA': '1'}, which=_no_nvcc)
    assert mode == 'cuda12.8' and env['FORCE_CUDA'] == '1'
    # the command install.py runs gets that environment
    cmd = install.build_command(['py', '-m', 'pip'], 'mmcv==2.1.0', Path('/c'))
    assert cmd[-1] == 'mmcv==2.1.0' and '--no-binary' in cmd and '/c' in cmd


def test_cpu_build_hides_the_gpu_and_auto_detects_cuda(install):
    # CUDA torch, GPU and nvcc: CUDA ops without being asked
    gpu = dict(CPU_INFO, gpu=True)
    mode, env, _ = install.build_mode(gpu, {}, which=lambda n: '/usr/bin/nvcc')
    assert mode == 'cuda12.8' and env['FORCE_CUDA'] == '1'
    # no GPU (this machine, a login node): CPU ops, GPU hidden from mmcv's setup.py
    mode, env, why = install.build_mode(CPU_INFO, {}, which=lambda n: '/usr/bin/nvcc')
    assert mode == 'cpu' and env['FORCE_CUDA'] == '0' and env['CUDA_VISIBLE_DEVICES'] == ''
    assert 'POSEBENCH_CUDA=1' in why
    # the user's 0 wins over a GPU
    mode, _, _ = install.build_mode(gpu, {'POSEBENCH_CUDA': '0'}, which=lambda n: '/x/nvcc')
    assert mode == 'cpu'
    # CUDA asked for with a CPU torch: one line, before any build
    with pytest.raises(SystemExit, match='CPU build'):
        install.build_mode(dict(CPU_INFO, cuda=None), {'POSEBENCH_CUDA': '1'}, which=_no_nvcc)


def test_broken_venv_is_repaired(install, tmp_path):
    path = tmp_path / 'venv'
    venv.EnvBuilder(with_pip=False).create(path)  # half created: no pip
    py = path / 'bin' / 'python'
    assert subprocess.run([str(py), '-c', 'import pip'], capture_output=True).returncode != 0
    assert install.ensure_venv(path) == py
    assert subprocess.run([str(py), '-m', 'pip', '--version'], capture_output=True).returncode == 0
    # a healthy one is kept as it is
    marker = path / 'keep'
    marker.write_text('')
    install.ensure_venv(path)
    assert marker.exists()
    assert os.access(py, os.X_OK)
