"""Create and fill the project's virtual environment (stdlib only: it runs before anything else).

Usage: ``python3.11 bench/install.py [VENV]`` (``make setup`` calls it).

The MMPose stack cannot be installed by one resolver call (see README, "Install facts"):

0. the interpreter is checked against ``requires-python`` first (one line, before anything is
   built), and a broken venv (no working pip, another Python) is recreated;
1. build requirements + torch/torchvision/numpy, which mmcv compiles against;
2. mmcv 2.1.0 with its C++ ops, built from source **once per machine**: the wheel is kept in
   ``$POSEBENCH_WHEEL_CACHE`` (default ``~/.cache/posebench/wheels``), in a folder named after
   what it was compiled for (Python tag, torch version, CPU or CUDA ops); a cached wheel is
   verified (a complete zip whose tags fit) and rebuilt when it is not. CUDA ops are built when
   asked for (``POSEBENCH_CUDA=1`` or ``FORCE_CUDA=1`` in the environment) or when a CUDA torch
   sees a GPU and a CUDA toolkit (``nvcc``) is there; otherwise CPU ops, with the GPU hidden from
   the build (mmcv's setup.py builds CUDA ops whenever it sees one, whatever FORCE_CUDA says);
3. every other pinned dependency;
4. the mmcv wheel and mmengine/mmpose/mmdet with ``--no-deps`` (mmpose declares the unbuildable
   ``chumpy``, mmcv the GUI ``opencv-python``), then
   this project in editable mode without dependencies.

All versions come from ``pyproject.toml``; nothing is pinned here.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent

#: What the venv's Python reports about itself and its torch (one JSON line).
_PROBE = r"""
import json, sys, sysconfig
info = dict(py_tag='cp%d%d' % sys.version_info[:2],
            platform=sysconfig.get_platform().replace('-', '_').replace('.', '_'))
try:
    import torch
    info.update(torch=torch.__version__, cuda=torch.version.cuda,
                gpu=bool(torch.version.cuda) and torch.cuda.is_available())
except ImportError:
    pass
print(json.dumps(info))
"""


def _name(req: str) -> str:
    return re.split(r"[=<>!~\[ ;]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def _run(cmd: list[str], **env: str) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, **env})


# ------------------------------------------------------------------------------ interpreter

def _version_ok(version: tuple[int, int], spec: str) -> bool:
    """``version`` (major, minor) against a ``requires-python`` made of ``>=``/``<``/``==``
    clauses on major.minor (what pyproject.toml uses)."""
    for clause in (c.strip() for c in spec.split(",") if c.strip()):
        m = re.fullmatch(r"(>=|<=|<|>|==)\s*(\d+)\.(\d+)(?:\.\*)?", clause)
        if not m:
            continue  # a clause we do not parse: pip will judge it
        op, bound = m.group(1), (int(m.group(2)), int(m.group(3)))
        ok = {">=": version >= bound, "<=": version <= bound, "<": version < bound,
              ">": version > bound, "==": version == bound}[op]
        if not ok:
            return False
    return True


def check_interpreter(spec: str, version: tuple[int, int] | None = None) -> None:
    """Exit with one line naming what to install when this Python does not fit ``spec``."""
    version = version or tuple(sys.version_info[:2])
    if not _version_ok(version, spec):
        sys.exit(f"error: posebench needs Python {spec} (pyproject.toml), this is "
                 f"{version[0]}.{version[1]} ({sys.executable}); install Python 3.11 "
                 "(e.g. `apt-get install python3.11` or `pyenv install 3.11`) and run "
                 "`make setup PYTHON=python3.11`")


# ------------------------------------------------------------------------------------ venv

def _venv_healthy(py: Path) -> bool:
    """The venv's Python runs, is this interpreter's version, and has pip."""
    if not py.exists():
        return False
    want = "%d.%d" % sys.version_info[:2]
    version = "import sys, pip; print('%d.%d' % sys.version_info[:2])"
    probe = subprocess.run([str(py), "-c", version],
                           capture_output=True, text=True)
    return probe.returncode == 0 and probe.stdout.strip() == want


def ensure_venv(venv_path: Path) -> Path:
    """The venv's Python; a missing venv is created, a broken one (half created, no pip,
    another Python) is recreated from scratch."""
    py = venv_path / "bin" / "python"
    if _venv_healthy(py):
        return py
    if venv_path.exists():
        print(f"repairing {venv_path}: it has no working pip or another Python; recreating it",
              flush=True)
        shutil.rmtree(venv_path)
    else:
        print(f"creating {venv_path}", flush=True)
    venv.EnvBuilder(with_pip=True).create(venv_path)
    return py


# ------------------------------------------------------------------------------ mmcv build

def probe(py: Path) -> dict:
    """Python tag, platform tag, torch version, torch's CUDA version and whether it sees a GPU,
    as the venv's Python reports them."""
    out = subprocess.run([str(py), "-c", _PROBE], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_mode(info: dict, environ: dict | None = None,
               which: Callable[[str], str | None] = shutil.which) -> tuple[str, dict, str]:
    """(mode, build environment, why) of the mmcv build: mode ``'cpu'`` or ``'cuda<ver>'``.

    The user's choice wins: ``POSEBENCH_CUDA`` (1/0), else ``FORCE_CUDA`` from the environment.
    Otherwise CUDA ops exactly when torch is a CUDA build that sees a GPU and ``nvcc`` (or
    ``$CUDA_HOME/bin/nvcc``) exists. A CPU build hides the GPU from mmcv's setup.py, which
    would otherwise build CUDA ops whenever it sees one."""
    env = os.environ if environ is None else environ
    cuda = info.get("cuda")
    nvcc = which("nvcc") or (Path(env["CUDA_HOME"], "bin", "nvcc").is_file()
                             if env.get("CUDA_HOME") else None)
    if env.get("POSEBENCH_CUDA") in ("0", "1"):
        want, why = env["POSEBENCH_CUDA"] == "1", f"POSEBENCH_CUDA={env['POSEBENCH_CUDA']}"
    elif env.get("FORCE_CUDA") in ("0", "1"):
        want, why = env["FORCE_CUDA"] == "1", f"FORCE_CUDA={env['FORCE_CUDA']} in the environment"
    else:
        want = bool(cuda and info.get("gpu") and nvcc)
        why = ("CUDA torch, a visible GPU and nvcc" if want else
               "no GPU visible to a CUDA torch with nvcc (set POSEBENCH_CUDA=1 to build CUDA "
               "ops anyway, e.g. on a login node)")
    common = dict(MMCV_WITH_OPS="1", MAX_JOBS=str(os.cpu_count() or 1))
    if want:
        if not cuda:
            sys.exit(f"error: CUDA ops asked for ({why}) but torch {info.get('torch')} is a CPU "
                     "build: install the CUDA build of the same torch version first (README, GPU)")
        return f"cuda{cuda}", dict(common, FORCE_CUDA="1"), why
    return "cpu", dict(common, FORCE_CUDA="0", CUDA_VISIBLE_DEVICES=""), why


def cache_dir(cache_root: Path, info: dict, mode: str) -> Path:
    """The wheel cache folder of one build configuration: Python tag, torch version, ops."""
    return Path(cache_root) / f"{info['py_tag']}-torch-{info['torch']}-{mode}"


def wheel_ok(path: Path, py_tag: str, platform: str) -> bool:
    """A cached wheel is usable: its file name carries this Python's and platform's tags, and
    it is a complete zip (every member's CRC checks) with its ``.dist-info/WHEEL``."""
    parts = path.name[:-len(".whl")].split("-") if path.name.endswith(".whl") else []
    if len(parts) < 5 or parts[-3] != py_tag or parts[-1] != platform:
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return z.testzip() is None and any(n.endswith(".dist-info/WHEEL")
                                               for n in z.namelist())
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def cached_or_built(name: str, version: str, cache: Path, info: dict,
                    build: Callable[[Path], None], legacy: Path | None = None) -> Path:
    """The wheel of ``name==version`` in ``cache``: a verified cached one, else a verified one
    from ``legacy`` (the cache layout before it was keyed on the Python tag and ops: one
    folder per torch version, CPU builds) copied over, else built by ``build(cache)``.
    Damaged or foreign wheels in ``cache`` are deleted first."""
    cache.mkdir(parents=True, exist_ok=True)
    if legacy is not None and not any(cache.glob(f"{name}-{version}-*.whl")):
        for wheel in sorted(legacy.glob(f"{name}-{version}-*.whl")):
            if wheel_ok(wheel, info["py_tag"], info["platform"]):
                print(f"adopting cached wheel {wheel} into {cache}", flush=True)
                shutil.copy2(wheel, cache / wheel.name)
                break
    for wheel in sorted(cache.glob(f"{name}-{version}-*.whl")):
        if wheel_ok(wheel, info["py_tag"], info["platform"]):
            print(f"using cached wheel {wheel}", flush=True)
            return wheel
        print(f"cached wheel {wheel} is damaged or not for {info['py_tag']}/{info['platform']}: "
              "deleting it and building again", flush=True)
        wheel.unlink()
    build(cache)
    good = [w for w in sorted(cache.glob(f"{name}-{version}-*.whl"))
            if wheel_ok(w, info["py_tag"], info["platform"])]
    if not good:
        sys.exit(f"error: building {name} {version} left no usable wheel in {cache}")
    return good[-1]


def build_command(pip: list[str], requirement: str, cache: Path) -> list[str]:
    """pip's command that builds ``requirement`` from source into ``cache``."""
    name = _name(requirement)
    return pip + ["wheel", "--no-deps", "--no-build-isolation", "--no-binary", name,
                  "-w", str(cache), requirement]


# -------------------------------------------------------------------------------------- main

def main(venv_dir: str = ".venv") -> int:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    check_interpreter(meta["project"].get("requires-python", ""))
    deps: list[str] = meta["project"]["dependencies"]
    cfg = meta["tool"]["posebench"]["install"]
    pins = {_name(d): d for d in deps}
    unpinned = [d for d in deps if "==" not in d]
    if unpinned:
        sys.exit(f"pyproject.toml: every dependency must be pinned with '==', not {unpinned}")

    py = ensure_venv((ROOT / venv_dir).resolve())
    pip = [str(py), "-m", "pip", "--disable-pip-version-check"]

    # 1. what the mmcv build needs in the venv
    _run(pip + ["install", "-q"] + cfg["build_requirements"] + [pins[n] for n in cfg["first"]])

    # 2. mmcv: a verified cached wheel, or one build from source
    info = probe(py)
    mode, build_env, why = build_mode(info)
    cache_root = Path(os.environ.get("POSEBENCH_WHEEL_CACHE",
                                     Path.home() / ".cache" / "posebench" / "wheels"))
    built = []
    for name in cfg["from_source"]:
        version = pins[name].split("==")[1]
        cache = cache_dir(cache_root, info, mode)

        def build(folder: Path, name=name) -> None:
            minutes = "20-40 min (about 60 CUDA files)" if mode != "cpu" else "~11 min on 2 cores"
            print(f"building {pins[name]} from source against torch {info['torch']} with "
                  f"{mode.upper()} ops ({why}; {minutes}, once per machine); the wheel goes "
                  f"to {folder}", flush=True)
            _run(build_command(pip, pins[name], folder), **build_env)

        legacy = cache_root / f"torch-{info['torch']}" if mode == "cpu" else None
        built.append(str(cached_or_built(name, version, cache, info, build, legacy)))

    # 3. everything else (torch & co. named again so the resolver keeps them)
    special = set(cfg["first"]) | set(cfg["no_deps"])
    _run(pip + ["install", "-q"] + [d for n, d in pins.items() if n not in special]
         + [pins[n] for n in cfg["first"]])

    # 4. packages whose declared dependencies must not be installed (last, so that pip's
    #    resolver never sees their unbuildable `chumpy` / GUI `opencv-python` requirements
    #    and never reports them as conflicts)
    rest = [n for n in cfg["no_deps"] if n not in cfg["from_source"]]
    _run(pip + ["install", "-q", "--no-deps"] + built + [pins[n] for n in rest])
    _run(pip + ["install", "-q", "--no-deps", "--no-build-isolation", "-e", str(ROOT)])
    _run([str(py), "-c", "import mmcv.ops, mmpose.models, bench; print('environment ready')"])
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
