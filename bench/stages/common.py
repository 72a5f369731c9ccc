"""Paths and checks shared by the per-run stages."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bench.errors import RunError
from bench.params import Params, workdir


def run_dir(method: str, seed: int) -> Path:
    """``runs/<method>/seed<k>``: ``train/`` (MMEngine work dir), ``live/`` (DVCLive curves),
    ``snapshots/`` (heatmaps), ``eval/`` and ``metrics.json`` (the evaluate stage)."""
    return workdir() / 'runs' / method / f'seed{seed}'


def check_run(params: Params, method: str, seed: int) -> None:
    if method not in params.methods:
        raise RunError(f'method {method!r} is not defined in params.yaml `methods` '
                       f'(defined: {", ".join(sorted(params.methods))})')
    if seed not in params.seeds:
        raise RunError(f'seed {seed} is not in params.yaml `seeds` {list(params.seeds)}')


def fingerprint(obj) -> str:
    """A stable hash of a JSON-able object (the resolved run config)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def write_json(path: Path, obj) -> None:
    """Write atomically: a killed stage never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + '.tmp')
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + '\n')
    tmp.replace(path)
