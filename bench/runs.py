"""The on-disk layout of the runs: where every run of every stage lives, and the learning rate
a method trains with (``runs/tuned/<method>.json``).

Below the stages and the report (both read it; it imports only the parameters). The layout
lives here and nowhere else (:class:`RunPaths`). It is *kind
first*, ``runs/<kind>/<method>/seed<k>/``, so that each DVC stage of a method owns whole
folders (its outputs never overlap another stage's) and the report depends on the small
outputs only, never on the checkpoints:

=============================================  =========================================
``runs/train/<method>/seed<k>/``               MMEngine work dir: checkpoints, ``final.pth``,
                                               logs, ``status.json``, ``config.py``,
                                               ``fingerprint.txt`` (out of ``train@<method>``)
``runs/train/<method>/seed<k>.stale/``         a work dir moved aside (other inputs)
``runs/live/<method>/seed<k>/``                DVCLive curves (plots of ``train@<method>``)
``runs/snapshots/<method>/seed<k>/``           heatmap snapshots (out of ``train@<method>``)
``runs/eval/<method>/seed<k>/``                ``metrics.json``, ``keypoints*.npz``,
                                               ``pixel_calibration.npz``, ``timing.json``,
                                               ``train_status.json`` (out of ``evaluate@<method>``)
``runs/metrics/<method>.json``                 ``{"seed<k>": metrics}`` for every seed (the DVC
                                               metrics of ``evaluate@<method>``)
``runs/tune/<method>/lr<x>/``                  a learning-rate trial (out of ``tune@<method>``)
``runs/tuned/<method>.json``                   the learning rate the method trains with
=============================================  =========================================

A run of a swept geometry (``params.yaml`` ``sweep``: the resolution axis) lives beside the
method's own runs, its folder and metrics key prefixed with the geometry's tag:
``runs/<kind>/<method>/hm32s2-seed<k>/``, key ``hm32s2-seed<k>``. The method's stages own
every geometry of the method, so adding a geometry re-runs them and only the new runs train.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from bench.errors import RunError
from bench.params import Params, workdir

#: Per-run folders, each ``runs/<kind>/<method>/seed<k>/``.
KINDS = ('train', 'live', 'snapshots', 'eval')
#: What the train stage writes per run (the evaluate stage writes ``eval``).
TRAIN_KINDS = ('train', 'live', 'snapshots')
_SEED_DIR = re.compile(r'^(?:(hm[0-9x]+s[0-9.e+-]+)-)?seed(\d+)(\.stale)?$')


def runs_root() -> Path:
    """``<workdir>/runs``."""
    return workdir() / 'runs'


def seed_key(seed: int, geometry: Optional[str] = None) -> str:
    """``seed<k>`` (``<geometry>-seed<k>`` for a swept geometry): the name of a run's folders
    and its key in the method's metrics file."""
    return f'seed{int(seed)}' if geometry is None else f'{geometry}-seed{int(seed)}'


def method_dir(kind: str, method: str, root: Optional[Path] = None) -> Path:
    """``runs/<kind>/<method>``: the folder DVC declares as the method's output of that kind."""
    if kind not in KINDS:
        raise ValueError(f'unknown run output kind {kind!r} (one of {", ".join(KINDS)})')
    return Path(root if root is not None else runs_root()) / kind / method


def metrics_file(method: str, root: Optional[Path] = None) -> Path:
    """``runs/metrics/<method>.json``: every seed's test metrics, keyed ``seed<k>``."""
    return Path(root if root is not None else runs_root()) / 'metrics' / f'{method}.json'


@dataclass(frozen=True)
class RunPaths:
    """The folders of run (``method``, ``seed``) under ``root`` (default ``<workdir>/runs``);
    see the module docstring."""
    method: str
    seed: int
    root: Path = field(default_factory=runs_root)
    geometry: Optional[str] = None  # a `sweep` tag; None: the profile's own geometry

    def __post_init__(self):
        object.__setattr__(self, 'root', Path(self.root))
        object.__setattr__(self, 'seed', int(self.seed))

    @property
    def name(self) -> str:
        """``<method>/seed<k>``: how messages name the run."""
        return f'{self.method}/{self.key}'

    @property
    def key(self) -> str:
        return seed_key(self.seed, self.geometry)

    def kind(self, kind: str) -> Path:
        return method_dir(kind, self.method, self.root) / self.key

    @property
    def train(self) -> Path:
        return self.kind('train')

    @property
    def stale(self) -> Path:
        """Where a work dir written from other inputs is moved aside."""
        return self.train.with_name(self.key + '.stale')

    @property
    def live(self) -> Path:
        return self.kind('live')

    @property
    def snapshots(self) -> Path:
        return self.kind('snapshots')

    @property
    def eval(self) -> Path:
        return self.kind('eval')

    @property
    def metrics(self) -> Path:
        """The method's metrics file (shared by its seeds)."""
        return metrics_file(self.method, self.root)


def find_runs(kind: str, root: Optional[Path] = None) -> list[RunPaths]:
    """Every run that has a ``runs/<kind>/<method>/[<geometry>-]seed<k>/`` folder, sorted."""
    base = Path(root if root is not None else runs_root())
    found = []
    for folder in sorted((base / kind).glob('*/*seed*')):
        m = _SEED_DIR.match(folder.name)
        if folder.is_dir() and m and not m.group(3):
            found.append(RunPaths(folder.parent.name, int(m.group(2)), base, m.group(1)))
    return sorted(found, key=lambda r: (r.method, r.geometry or '', r.seed))


def prune_seeds(method: str, seeds: Iterable[int], kinds: Iterable[str] = KINDS,
                root: Optional[Path] = None,
                geometries: Iterable[Optional[str]] = (None,)) -> list[Path]:
    """Remove the run folders (``[<geometry>-]seed<k>``, ``.stale`` too) of ``method`` whose
    seed is not in ``seeds`` or whose geometry is not in ``geometries``, for each of ``kinds``:
    runs dropped from ``params.yaml`` must not stay in the method's outputs (nor reach the
    report). Returns what was removed."""
    keep = {int(s) for s in seeds}
    keep_geometries = set(geometries)
    removed = []
    for kind in kinds:
        folder = method_dir(kind, method, root)
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            m = _SEED_DIR.match(entry.name)
            dropped = m and (int(m.group(2)) not in keep or m.group(1) not in keep_geometries)
            if dropped:  # every rank of a multi-process launch may do this at once: no error
                if entry.is_dir():  # if gone
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def tuned_file(method: str, root: Optional[Path] = None) -> Path:
    """``runs/tuned/<method>.json``: the learning rate ``method`` trains with."""
    return Path(root if root is not None else runs_root()) / 'tuned' / f'{method}.json'


def trials_file(method: str, root: Optional[Path] = None) -> Path:
    """``runs/tune/<method>/trials.json``: every trial of today's grid (``[]`` when off)."""
    return Path(root if root is not None else runs_root()) / 'tune' / method / 'trials.json'


def trial_dir(method: str, lr: float, root: Optional[Path] = None) -> Path:
    """``runs/tune/<method>/lr<x>``: one trial's work dir."""
    return Path(root if root is not None else runs_root()) / 'tune' / method / f'lr{lr:g}'


def method_lr(params: Params, method: str) -> float:
    """The learning rate of ``method``'s runs: the tuned one when ``tune.enabled`` (read from
    ``runs/tuned/<method>.json``, which must come from the same grid), else ``train.lr``."""
    if not params.tune.enabled:
        return params.train.lr
    path = tuned_file(method)
    try:
        choice = json.loads(path.read_text())
    except (OSError, ValueError):
        raise RunError(f'tune.enabled but {path} is missing or unreadable: run '
                       f'`dvc repro tune@{method}` first') from None
    lr = choice.get('lr')
    if not choice.get('enabled') or lr not in params.tune.lrs:
        raise RunError(f'{path}: not a choice from today\'s tune.lrs {list(params.tune.lrs)} '
                       f'(lr {lr}); run `dvc repro tune@{method}`')
    return float(lr)
