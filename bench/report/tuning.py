"""The learning-rate budget of each method, as the report states it (``reports/tuning.csv``).

Read from ``runs/tuned/<method>.json`` (stage ``tune@<method>``, :mod:`bench.stages.tune`):
with tuning on, every method had the same grid, epochs and seed on the validation split, and
the table shows each trial's validation PCK@0.1 and the chosen rate; with tuning off, every
method trained at ``train.lr``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from bench.errors import RunError
from bench.report.tables import to_markdown


def tuning_table(runs_root: Path, methods: Sequence[str], labels: Mapping[str, str],
                 lrs: Sequence[float], *, enabled: bool = True,
                 default_lr: float = math.nan) -> pd.DataFrame:
    """One row per method: ``tuned`` (bool), ``lr`` (what its seeds trained with), and one
    ``val_PCK@lr=<x>`` column per rate of ``lrs`` (NaN when tuning was off or a trial
    diverged). With tuning off (``enabled`` False) a method without a choice file trained at
    ``default_lr``; with tuning on, a missing choice is an error."""
    rows = []
    for m in methods:
        path = Path(runs_root) / 'tuned' / f'{m}.json'
        try:
            choice = json.loads(path.read_text())
        except (OSError, ValueError):
            if not enabled:
                choice = dict(enabled=False, lr=default_lr)
            else:
                    raise RunError(f'{path} is missing or unreadable: run `dvc repro '
                               f'tune@{m}` first') from None
        grid = choice.get('grid') or {}
        row = dict(method=m, label=labels.get(m, m), tuned=bool(choice.get('enabled')),
                   lr=float(choice['lr']))
        for lr in lrs:
            v = grid.get(f'{lr:g}')
            row[f'val_PCK@lr={lr:g}'] = float(v) if isinstance(v, (int, float)) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def tuning_markdown(table: pd.DataFrame, *, epochs: int, seed: int, lr: float) -> str:
    """The README's statement of the budget and the chosen values."""
    if table.empty:
        return ''
    if not table.tuned.any():
        return (f'Learning rate: **not tuned** in this profile (`tune.enabled: false`); every '
                f'method trains at the fixed, documented `train.lr` = {lr:g}.\n')
    grid = [c for c in table.columns if c.startswith('val_PCK@lr=')]
    df = pd.DataFrame({'method': table.label, 'chosen lr': table.lr.map(lambda x: f'{x:g}')})
    for c in grid:
        best = table.lr.map(lambda x: f'{x:g}') == c.split('=', 1)[1]
        df[c.split('@', 1)[1]] = [('**%.3f**' if b else '%.3f') % v if math.isfinite(v) else '—'
                                  for v, b in zip(table[c], best)]
    text = (f'Learning rate: **tuned per method with the same budget** — each rate of the grid '
            f'trained once ({epochs} epochs, seed {seed}, the schedule shrunk to that length), '
            f'scored by validation PCK@0.1; the best (bold) trains every seed '
            f'([`tuning.csv`](tuning.csv)):\n\n' + to_markdown(df))
    rates = sorted(float(c.split('=', 1)[1]) for c in grid)
    edge = [lab for lab, lr, on in zip(table.label, table.lr, table.tuned)
            if on and len(rates) > 1 and lr in (rates[0], rates[-1])]
    if edge:
        text += (f'\n\n> The chosen rate is at an end of the grid ({rates[0]:g}–{rates[-1]:g}) '
                 f'for {", ".join(edge)}: a wider grid might find a better one for '
                 f'{"it" if len(edge) == 1 else "them"}.\n')
    return text
