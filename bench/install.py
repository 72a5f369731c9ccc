"""Create and fill the project's virtual environment (stdlib only: it runs before anything else).

Usage: ``python3.11 bench/install.py [VENV]`` (``make setup`` calls it).

The MMPose stack cannot be installed by one resolver call (see README, "Install facts"):

1. build requirements + torch/torchvision/numpy, which mmcv compiles against;
2. mmcv 2.1.0 with its C++ ops, built from source **once per machine**: the wheel is kept in
   ``$POSEBENCH_WHEEL_CACHE`` (default ``~/.cache/posebench/wheels``), in a folder named after the
   torch version it was compiled against, so later installs (and ``git clean``) never rebuild it;
3. every other pinned dependency;
4. the mmcv wheel and mmengine/mmpose/mmdet with ``--no-deps`` (mmpose declares the unbuildable
   ``chumpy``, mmcv the GUI ``opencv-python``), then
   this project in editable mode without dependencies.

All versions come from ``pyproject.toml``; nothing is pinned here.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[=<>!~\[ ;]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def _run(cmd: list[str], **env: str) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, **env})


def main(venv_dir: str = ".venv") -> int:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps: list[str] = meta["project"]["dependencies"]
    cfg = meta["tool"]["posebench"]["install"]
    pins = {_name(d): d for d in deps}
    unpinned = [d for d in deps if "==" not in d]
    if unpinned:
        sys.exit(f"pyproject.toml: every dependency must be pinned with '==', not {unpinned}")

    venv_path = (ROOT / venv_dir).resolve()
    py = venv_path / "bin" / "python"
    if not py.exists():
        print(f"creating {venv_path}", flush=True)
        venv.EnvBuilder(with_pip=True).create(venv_path)
    pip = [str(py), "-m", "pip", "--disable-pip-version-check"]

    # 1. what the mmcv build needs in the venv
    _run(pip + ["install", "-q"] + cfg["build_requirements"] + [pins[n] for n in cfg["first"]])

    # 2. mmcv: cached wheel, or one build from source
    torch_version = subprocess.run(
        [str(py), "-c", "import torch; print(torch.__version__)"],
        check=True, capture_output=True, text=True).stdout.strip()
    cache_root = Path(os.environ.get("POSEBENCH_WHEEL_CACHE",
                                     Path.home() / ".cache" / "posebench" / "wheels"))
    built = []
    for name in cfg["from_source"]:
        version = pins[name].split("==")[1]
        cache = cache_root / f"torch-{torch_version}"
        cache.mkdir(parents=True, exist_ok=True)
        wheels = sorted(cache.glob(f"{name}-{version}-*.whl"))
        if not wheels:
            print(f"building {pins[name]} from source against torch {torch_version} "
                  f"(once per machine, ~11 min on 2 cores); the wheel goes to {cache}", flush=True)
            _run(pip + ["wheel", "--no-deps", "--no-build-isolation", "--no-binary", name,
                        "-w", str(cache), pins[name]],
                 MMCV_WITH_OPS="1", FORCE_CUDA="0", MAX_JOBS=str(os.cpu_count() or 1))
            wheels = sorted(cache.glob(f"{name}-{version}-*.whl"))
        else:
            print(f"using cached wheel {wheels[-1]}", flush=True)
        built.append(str(wheels[-1]))

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
