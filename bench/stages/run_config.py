"""The resolved config saved with a trained run, so that ``evaluate`` scores the model under
the config it was trained with, not under whatever ``params.yaml`` says today.

A params edit that DVC does not propagate to a run (a key the train stage does not declare,
``dvc commit`` after an edit, a manual ``evaluate``) must never change how an old model is
scored: the train stage writes ``config.py`` in the run's work dir
(``runs/train/<method>/seed<k>/``, :func:`save_run_config`) and evaluate reads it back
(:func:`load_run_config`). The checkout's location is stored as a token, so a moved checkout
(which keeps its runs, see ``training_key``) still finds its data.
"""
from __future__ import annotations

import os
from pathlib import Path

from bench.errors import RunError
from bench.params import workdir

#: File name of the saved config in the run's work dir.
RUN_CONFIG = 'config.py'
#: Stands for the work folder (``workdir()``, with a trailing separator) in the saved text.
WORKDIR_TOKEN = '<workdir>/'


def save_run_config(cfg, train_dir: str | Path) -> Path:
    """Write ``cfg`` (an MMEngine ``Config``) as ``<train_dir>/config.py``, atomically."""
    text = cfg.pretty_text.replace(str(workdir()) + os.sep, WORKDIR_TOKEN)
    path = Path(train_dir) / RUN_CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix('.py.tmp')
    tmp.write_text(text)
    tmp.replace(path)
    return path


def load_run_config(train_dir: str | Path, run: str = 'run'):
    """The ``Config`` saved by :func:`save_run_config`, with today's work folder.

    Raises:
        RunError: the run has no saved config (trained before configs were saved): it must
            be trained again, since today's params may not be the ones it was trained with.
    """
    from mmengine.config import Config
    path = Path(train_dir) / RUN_CONFIG
    if not path.is_file():
        raise RunError(f'run {run}: {path} is missing (trained before the resolved config '
                       f'was saved with each run); train it again, e.g. `dvc repro -f '
                       f'train@{run.split("/")[0]}`')
    text = path.read_text().replace(WORKDIR_TOKEN, str(workdir()) + os.sep)
    cfg = Config.fromstring(text, '.py')
    object.__setattr__(cfg, '_format_python_code', False)  # no yapf: see bench.config
    return cfg
