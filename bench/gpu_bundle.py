"""Build the offline install bundle for a GPU machine with its own PyTorch and no network.

Usage (on a machine with registry access; stdlib only, like ``bench/install.py``)::

    python bench/gpu_bundle.py [--python 3.12] [--out .gpu]     # make gpu-bundle PY=3.12

and on the GPU machine, with the bundle carried beside the checkout::

    bash .gpu/install.sh                # installs into .gpu/site, builds MMCV there
    source .gpu/env.sh                  # PYTHONPATH for every later command

What goes in (all versions from ``pyproject.toml``):

- ``wheels/``: every pinned run-time dependency and its whole dependency closure, resolved by
  pip *for the target interpreter* (``--python-version``, manylinux x86_64, binary only), so
  a conflict shows here, not there; MMEngine, MMPose and MMDet without their declared
  dependencies (chumpy cannot be built); setuptools and wheel for the builds;
- ``sdist/``: MMCV 2.1.0 and xtcocotools, built on the GPU machine against *its* torch and
  numpy (the bundle never carries torch, numpy or CUDA libraries: the machine has its own);
- ``install.sh``: the steps, each one line in its log; MMCV is built with the GPU hidden
  (``CUDA_VISIBLE_DEVICES=``), CPU ops, as ``../shared/INSTALL-NOTES.md`` describes (its setup.py
  compiles CUDA ops whenever it sees a GPU); ``MMCV_WHEEL=path`` uses a wheel built before;
- ``manifest.json``: the target, every file and why it is there.

The tests build a bundle for the local interpreter and run ``install.sh`` against a folder
(``tests/test_gpu_bundle.py``).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Never carried: the GPU machine's own PyTorch stack (and what it depends on).
MACHINE_OWN = ('torch', 'torchvision', 'numpy')
#: Development tools, not needed to run a study.
DEV_ONLY = ('pytest', 'hypothesis', 'ruff')
#: Built on the target from source: against its torch (mmcv) or its numpy (xtcocotools).
SOURCE_BUILT = ('mmcv', 'xtcocotools')
#: Wheel file names of packages the bundle never installs (the machine's own stack).
_SKIP_INSTALL = re.compile(r'^(torch|torchvision|numpy|nvidia_[a-z0-9_]+|triton)-', re.I)
#: Dependencies (of dependencies) published as sdists only: pure Python, built into a
#: ``py3-none-any`` wheel here, which fits any target (hydra-core, which dvc needs, pins it).
PURE_SDISTS = ('antlr4-python3-runtime==4.9.3',)
PLATFORMS = ('manylinux2014_x86_64', 'manylinux_2_17_x86_64', 'manylinux_2_28_x86_64',
             'linux_x86_64')


def _name(req: str) -> str:
    return re.split(r'[=<>!~\[; ]', req, maxsplit=1)[0].strip().lower().replace('_', '-')


def plan(pyproject: Path = ROOT / 'pyproject.toml') -> dict[str, list[str]]:
    """Split the pinned dependencies: ``resolved`` (downloaded with their dependencies),
    ``no_deps`` (downloaded alone), ``source`` (sdists), ``build`` (setuptools, wheel) and
    ``left_out`` (the machine's own stack and the development tools)."""
    meta = tomllib.loads(pyproject.read_text())
    pins = {_name(d): d for d in meta['project']['dependencies']}
    cfg = meta['tool']['posebench']['install']
    no_deps = [n for n in cfg['no_deps'] if n not in SOURCE_BUILT]
    special = set(MACHINE_OWN) | set(DEV_ONLY) | set(SOURCE_BUILT) | set(no_deps)
    return dict(resolved=[d for n, d in pins.items() if n not in special],
                no_deps=[pins[n] for n in no_deps],
                source=[pins[n] for n in SOURCE_BUILT],
                build=[r for r in cfg['build_requirements'] if _name(r) != 'ninja'],
                left_out=[pins[n] for n in (*MACHINE_OWN, *DEV_ONLY) if n in pins])


def _pip_download(args: list[str], dest: Path, python: str) -> None:
    target = ['--python-version', python, '--implementation', 'cp', '--only-binary=:all:',
              '--find-links', str(dest)]
    for p in PLATFORMS:
        target += ['--platform', p]
    cmd = [sys.executable, '-m', 'pip', 'download', '--disable-pip-version-check', '-q',
           '-d', str(dest), *target, *args]
    print('$ ' + ' '.join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def build(out: Path, python: str, leave_out: tuple[str, ...] = ()) -> dict:
    """Download everything into ``out`` (emptied first) and write ``install.sh``,
    ``env.sh`` and ``manifest.json``; returns the manifest. ``leave_out``: distribution
    names the GPU machine already has (not carried; install.sh's check names any missing)."""
    p = plan()
    leave_out = tuple(_name(n) for n in leave_out)
    if out.exists():
        shutil.rmtree(out)
    wheels, sdist = out / 'wheels', out / 'sdist'
    wheels.mkdir(parents=True)
    sdist.mkdir()
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--disable-pip-version-check', '-q',
                    '--no-deps', '-w', str(wheels), *PURE_SDISTS], check=True)
    # one resolver call for the target: every requirement and its closure, checked together
    _pip_download(p['resolved'] + p['build'], wheels, python)
    _pip_download(['--no-deps', *p['no_deps']], wheels, python)
    # the machine's own stack was resolved against (a target's numpy), never carried; nor is
    # what the user knows the machine has (--leave-out)
    dropped = []
    for f in sorted(wheels.iterdir()):
        if _SKIP_INSTALL.match(f.name) or _name(f.name.split('-')[0]) in leave_out:
            dropped.append(f.name)
            f.unlink()
    subprocess.run([sys.executable, '-m', 'pip', 'download', '--disable-pip-version-check', '-q',
                    '--no-deps', '--no-binary=:all:', '-d', str(sdist), *p['source']],
                   check=True)
    (out / 'install.sh').write_text(INSTALL_SH)
    (out / 'install.sh').chmod(0o755)
    (out / 'env.sh').write_text(ENV_SH)
    files = sorted(f.name for f in wheels.iterdir())
    manifest = dict(python=python, platforms=list(PLATFORMS), plan=p,
                    wheels=files, sdists=sorted(f.name for f in sdist.iterdir()),
                    not_carried=dropped, left_out_by_user=list(leave_out),
                    size_mib=round(sum(f.stat().st_size for f in out.rglob('*')
                                       if f.is_file()) / 2**20, 1))
    (out / 'manifest.json').write_text(json.dumps(manifest, indent=2) + '\n')
    print(f'gpu bundle: {len(files)} wheels, {len(manifest["sdists"])} sdists, '
          f'{manifest["size_mib"]} MiB for Python {python} -> {out}', flush=True)
    return manifest


#: The GPU-side steps. Every step names itself; any failure stops the script.
INSTALL_SH = r'''#!/usr/bin/env bash
# Offline install of posebench's stack next to the machine's own PyTorch (see
# bench/gpu_bundle.py). Usage: bash .gpu/install.sh [TARGET]  (default .gpu/site)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
TARGET="${1:-$HERE/site}"
PY="${PYTHON:-python3}"
mkdir -p "$TARGET" "$HERE/built"
export PYTHONPATH="$TARGET${PYTHONPATH:+:$PYTHONPATH}"
pipi() { "$PY" -m pip install --disable-pip-version-check -q --no-index --no-deps \
         --upgrade --target "$TARGET" "$@"; }

OWN='import sys, torch, numpy; print(sys.version.split()[0], torch.__version__, numpy.__version__)'
echo "[1/5] the machine's own stack (Python, torch, numpy): $("$PY" -c "$OWN")"
echo "[2/5] bundled wheels (not torch, numpy, CUDA libraries: the machine's own)"
WHEELS=()
for w in "$HERE"/wheels/*.whl; do
  case "$(basename "$w")" in
    torch-*|torchvision-*|numpy-*|nvidia_*|triton-*) ;;
    *) WHEELS+=("$w") ;;
  esac
done
pipi "${WHEELS[@]}"
# Python 3.12 has no distutils: setuptools' shim, as its .pth file would activate it
cat > "$TARGET/sitecustomize.py" <<'PYEOF'
import site, os
site.addsitedir(os.path.dirname(os.path.abspath(__file__)))
PYEOF

echo "[3/5] xtcocotools from source, against this numpy"
"$PY" -m pip wheel --disable-pip-version-check -q --no-index --no-deps --no-build-isolation \
  -w "$HERE/built" "$HERE"/sdist/xtcocotools-*.tar.gz

if [ -n "${MMCV_WHEEL:-}" ]; then
  echo "[4/5] mmcv: the wheel given, $MMCV_WHEEL"
  cp "$MMCV_WHEEL" "$HERE/built/"
else
  echo "[4/5] mmcv from source, CPU ops, the GPU hidden from its setup.py (about 1 min on 16 cores)"
  CUDA_VISIBLE_DEVICES= MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PY" -m pip wheel \
    --disable-pip-version-check -q --no-index --no-deps --no-build-isolation \
    -w "$HERE/built" "$HERE"/sdist/mmcv-*.tar.gz
fi
pipi "$HERE"/built/*.whl

echo "[5/5] check"
cd "$HERE/.."
"$PY" -c "import mmcv.ops, mmpose.models, dvc, bench; print('posebench environment ready')"
echo "next: source $HERE/env.sh"
'''

ENV_SH = r'''# source .gpu/env.sh: the bundle's packages on the path of this shell's commands
_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="$_HERE/site${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$_HERE/site/bin:$PATH"
'''


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--python', default='3.12', help='the GPU machine\'s Python (default 3.12)')
    ap.add_argument('--out', default=str(ROOT / '.gpu'), help='bundle folder (default .gpu)')
    ap.add_argument('--leave-out', default='', help='comma-separated distributions the GPU '
                    'machine already has (e.g. opencv-python-headless,scipy: the device tool '
                    'carries 64 MiB at most; the full bundle is about 150 MiB)')
    args = ap.parse_args(argv)
    build(Path(args.out), args.python, tuple(n for n in args.leave_out.split(',') if n))
    return 0


if __name__ == '__main__':
    sys.exit(main())
