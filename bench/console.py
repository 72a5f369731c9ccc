"""What a stage prints: one progress display per stage, the MMEngine stream kept in the runs' logs.

- **Progress.** :class:`StageProgress` shows a stage's runs (seeds x geometries) as one display:
  the method, runs done / running / to go, an ETA from the measured epoch times and the last
  finished run's validation PCK@0.1. On a terminal it is a tqdm bar; elsewhere (CI, ``dvc repro``
  in a pipe, a log file) it prints a plain line when a run finishes and at most every
  :data:`PLAIN_EVERY_S` seconds otherwise, never a carriage return.
- **Logs.** Each Runner's MMEngine log (environment, config, every logged iteration) goes to
  its file in the work dir only (:func:`build_runner`), and the COCO evaluator's prints to the
  same file (:func:`to_log`). ``POSEBENCH_VERBOSE=1`` (or ``bench -v``) brings the
  raw stream back to the console.
- **Failures.** :func:`report_failure` prints one line naming the run, the last lines of its
  log, and the log's path.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

#: The switch that brings MMEngine's console stream back (``bench -v`` sets it too).
VERBOSE_ENV = 'POSEBENCH_VERBOSE'
#: Seconds between two plain progress lines when the output is not a terminal.
PLAIN_EVERY_S = 60.0
#: Lines of a failed run's log shown on the console.
TAIL_LINES = 15
#: A run's progress, written after every epoch by ``ProgressHook`` (bench.engine.hooks).
PROGRESS_FILE = 'progress.json'


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, '') not in ('', '0', 'false', 'no')


def is_terminal(stream=None) -> bool:
    stream = stream if stream is not None else sys.stderr
    return bool(getattr(stream, 'isatty', lambda: False)())


def build_runner(cfg):
    """``Runner.from_cfg(cfg)`` whose MMEngine logger writes everything to its log file
    (``<work_dir>/<timestamp>/<timestamp>.log``, MMEngine's own) and, unless :func:`verbose`,
    only warnings and errors to the console: the environment block, the config dump and the
    logged iterations stay in the file. Returns (runner, log file)."""
    from mmengine.runner import Runner

    class _QuietRunner(Runner):
        def build_logger(self, log_level='INFO', log_file=None, **kwargs):
            logger = super().build_logger(log_level, log_file, **kwargs)
            if not verbose():
                for h in logger.handlers:
                    if type(h) is logging.StreamHandler:  # the console (FileHandler: a subclass)
                        h.setLevel(logging.WARNING)
            return logger

    printed = io.StringIO()
    # building the evaluators loads the COCO annotations, which xtcocotools announces on stdout
    with contextlib.redirect_stdout(printed) if not verbose() else contextlib.nullcontext():
        runner = _QuietRunner.from_cfg(cfg)
    log_file = runner_log_file(runner)
    if log_file is not None and printed.getvalue():
        with open(log_file, 'a') as f:
            f.write(printed.getvalue())
    return runner, log_file


def runner_log_file(runner) -> Optional[Path]:
    """The file the Runner's logger writes, or None."""
    for h in runner.logger.handlers:
        if isinstance(h, logging.FileHandler):
            return Path(h.baseFilename)
    return None


def latest_log(work_dir: Path) -> Optional[Path]:
    """The newest MMEngine log under ``work_dir`` (``<timestamp>/<timestamp>.log``), or None."""
    logs = sorted(Path(work_dir).glob('*/*.log'), key=lambda p: p.stat().st_mtime)
    return logs[-1] if logs else None


@contextlib.contextmanager
def to_log(log_file: Optional[Path]) -> Iterator[None]:
    """Send what third-party code prints (xtcocotools' COCO evaluation: about 20 lines per
    evaluation) to ``log_file`` instead of the console, unless :func:`verbose`."""
    if verbose() or log_file is None:
        yield
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        with open(log_file, 'a') as f:
            f.write(buffer.getvalue())


def log_tail(log_file: Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        return Path(log_file).read_text(errors='replace').splitlines()[-lines:]
    except OSError:
        return []


def report_failure(run: str, message: str, log_file: Optional[Path]) -> None:
    """Point to the evidence: one line naming the run and what happened, the last lines of its
    log, and the log's path (to stderr)."""
    out = [f'error: run {run} failed: {_one_line(message)}']
    if log_file is not None:
        tail = log_tail(log_file)
        if tail:
            out += [f'  | {line}' for line in tail]
        out.append(f'  log: {log_file}')
    print('\n'.join(out), file=sys.stderr, flush=True)


def _one_line(text: str, limit: int = 240) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    line = lines[0] if lines else 'unknown error'
    return line if len(line) <= limit else line[:limit - 3] + '...'


def read_progress(work_dir: Path, since: Optional[float] = None) -> dict:
    """A run's ``progress.json`` ({} when there is none yet, or, with ``since`` (a time),
    when it was written before then: by an earlier process)."""
    path = Path(work_dir) / PROGRESS_FILE
    try:
        if since is not None and path.stat().st_mtime < since:
            return {}
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _fmt_eta(seconds: float) -> str:
    if seconds != seconds or seconds == float('inf'):
        return '?'
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f'{h}h{m:02d}m' if h else f'{m}m{s:02d}s'


class StageProgress:
    """One stage's progress over its runs, each ``units`` long (epochs; 1 for evaluation).

    Args:
        what (str): the stage and method, e.g. ``'train cls_ohem'``.
        runs (Sequence[str]): the run names (``cls_ohem/seed0``...).
        units (int): units per run (its epochs).
        unit (str): the unit's name.
        poll (callable, optional): ``poll(run) -> (units done, finished, last PCK or None)``
            for a run (units done None: not started yet, so neither running nor done), called
            every second from a thread (trainings in other processes write
            :data:`PROGRESS_FILE`); without it, the stage calls :meth:`run_done` itself.
        stream: where to draw (default stderr).
        item (str): what ``runs`` are called on the display (``'trial'``, ``'step'``...).
    """

    def __init__(self, what: str, runs: Sequence[str], units: int = 1, unit: str = 'run',
                 poll: Optional[Callable[[str], tuple]] = None, stream=None, item: str = 'run'):
        self.what, self.runs, self.units, self.unit = what, list(runs), max(int(units), 1), unit
        self.item = item
        self.poll = poll
        self.stream = stream if stream is not None else sys.stderr
        self.tty = is_terminal(self.stream) and not verbose()
        self.done: dict[str, float | None] = {}     # run -> its last PCK (None: unknown)
        self.partial: dict[str, int] = {}
        self.last: Optional[tuple[str, float]] = None
        self.start = time.monotonic()
        self.first_units: Optional[int] = None
        self._last_plain = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bar = None
        self._thread = None
        self._stopped = False

    # -- public -------------------------------------------------------------------------
    def __enter__(self) -> 'StageProgress':
        if self.tty:
            from tqdm import tqdm
            self._bar = tqdm(total=len(self.runs) * self.units, desc=self.what, unit=self.unit,
                             file=self.stream, dynamic_ncols=True, leave=True)
        if self.poll is not None:
            self._poll_once()
            self._thread = threading.Thread(target=self._poll_loop, daemon=True)
            self._thread.start()
        self._draw(force=True)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._poll_once()
        self._stopped = exc_type is not None
        self._draw(force=True, final=True)
        if self._bar is not None:
            self._bar.close()

    def run_done(self, run: str, pck: Optional[float] = None) -> None:
        with self._lock:
            self.done[run] = pck
            self.partial.pop(run, None)
            if pck is not None:
                self.last = (run, pck)
        self._draw(force=True)

    # -- internals ----------------------------------------------------------------------
    def _poll_loop(self) -> None:
        while not self._stop.wait(1.0):
            self._poll_once()
            self._draw()

    def _poll_once(self) -> None:
        for run in self.runs:
            if run in self.done:
                continue
            units, finished, pck = self.poll(run)
            with self._lock:
                if finished:
                    self.done[run] = pck
                    self.partial.pop(run, None)
                    if pck is not None:
                        self.last = (run, pck)
                    self._draw_locked(force=True)
                elif units is not None:  # started
                    self.partial[run] = min(int(units), self.units)

    def _counts(self) -> tuple[int, int, int, int]:
        done = len(self.done)
        running = sum(1 for r, u in self.partial.items() if r not in self.done)
        units = done * self.units + sum(self.partial.values())
        return done, running, len(self.runs) - done - running, units

    def _eta(self, units: int) -> float:
        if self.first_units is None:
            self.first_units = units  # runs finished before this stage started: no rate
        gained = units - self.first_units
        left = len(self.runs) * self.units - units
        if left <= 0:
            return 0.0
        if gained <= 0:
            return float('nan')
        return (time.monotonic() - self.start) / gained * left

    def _draw(self, force: bool = False, final: bool = False) -> None:
        with self._lock:
            self._draw_locked(force, final)

    def _draw_locked(self, force: bool = False, final: bool = False) -> None:
        done, running, todo, units = self._counts()
        eta = self._eta(units)
        last = (f', last val PCK@0.1 {self.last[1]:.3f} ({self.last[0]})'
                if self.last is not None else '')
        state = f'{done}/{len(self.runs)} {self.item}s done, {running} running, {todo} to go'
        if self._bar is not None:
            self._bar.n = units
            self._bar.set_postfix_str(state + last, refresh=True)
            return
        now = time.monotonic()
        if not force and now - self._last_plain < PLAIN_EVERY_S:
            return
        self._last_plain = now
        tail = (('stopped' if self._stopped else 'finished') if final
                else f'ETA {_fmt_eta(eta)}')
        count = (f', {units}/{len(self.runs) * self.units} {self.unit}s'
                 if self.unit != self.item else '')
        print(f'{self.what}: {state}{count}, {tail}{last}', file=self.stream, flush=True)
