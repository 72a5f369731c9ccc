"""``python -m bench gpu-check`` (``make gpu-check``): does the GPU path work, and how fast is it.

Where torch sees no CUDA device it says so in one line and exits 0. Otherwise, in a temporary
folder and through the real stage commands (``python -m bench data|train|evaluate``):

1. **determinism**: a tiny profile trains the headline regression and one classification method
   on the GPU with ``train.deterministic: true``, twice each in separate folders, and their
   ``metrics.json`` must be byte-identical;
2. **throughput**: one epoch of the study profile (``profiles/study``: its model, input and
   batch; ``--train-images`` caps the generated training set) per method, timed: wall time,
   training time, images per second, and the GPU utilisation sampled with ``nvidia-smi``.

The numbers are printed and written to ``<out>/gpu_check.json``. Exit status 1 when a check
fails (non-identical metrics, a failed stage).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from bench.params import ROOT

#: The tiny determinism profile, on top of params.yaml.
TINY = {
    'data': {'workers': 2, 'stickman': {'image_size': [96, 96], 'train': 64, 'val': 16,
                                        'test': 16}},
    'train': {'epochs': 2, 'batch_size': 16, 'warmup_iters': 2, 'milestones': [],
              'workers': 2, 'deterministic': True, 'launcher': 'none'},
    'seeds': [0],
    'eval': {'snapshot_epochs': [1], 'snapshot_images': 2},
}


def _bench(work: Path, *args: str, timeout: int = 1800) -> float:
    """Run ``python -m bench ARGS`` in ``work``; its wall time. Raises on failure."""
    env = {**os.environ, 'POSEBENCH_WORKDIR': str(work), 'PYTHONUNBUFFERED': '1'}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, '-m', 'bench', *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f'bench {" ".join(args)} failed in {work}:\n{proc.stderr[-2000:]}')
    return time.perf_counter() - start


class GpuSampler:
    """GPU utilisation (%) from ``nvidia-smi`` every ``period`` s while in a ``with`` block."""

    def __init__(self, period: float = 0.5):
        self.period, self.samples = period, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            try:
                out = subprocess.run(['nvidia-smi', '--query-gpu=utilization.gpu',
                                      '--format=csv,noheader,nounits', '-i', '0'],
                                     capture_output=True, text=True, timeout=5).stdout
                self.samples.append(float(out.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                pass
            self._stop.wait(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = self.samples
        return dict(gpu_util_mean=round(sum(s) / len(s), 1) if s else None,
                    gpu_util_max=max(s) if s else None, gpu_util_samples=len(s))


def _workdir(root: Path, name: str, params: dict, data_from: Path | None = None) -> Path:
    work = root / name
    work.mkdir(parents=True)
    (work / 'params.yaml').write_text(yaml.safe_dump(params, sort_keys=False))
    if data_from is not None:
        shutil.copytree(data_from / 'data', work / 'data')
    return work


def determinism(root: Path, methods: list[str]) -> dict:
    from bench.params import merge
    params = merge(yaml.safe_load((ROOT / 'params.yaml').read_text()), TINY)
    params['active_methods'] = list(dict.fromkeys([params['report']['baseline'], *methods]))
    data = _workdir(root, 'tiny_data', params)
    _bench(data, 'data')
    from bench.runs import RunPaths
    out = {}
    for method in params['active_methods']:
        metrics = []
        for attempt in ('a', 'b'):
            work = _workdir(root, f'det_{method}_{attempt}', params, data)
            _bench(work, 'train', '--method', method, '--seed', '0')
            _bench(work, 'evaluate', '--method', method, '--seed', '0')
            metrics.append((RunPaths(method, 0, work / 'runs').eval / 'metrics.json')
                           .read_bytes())
        out[method] = dict(identical=metrics[0] == metrics[1],
                           pck=json.loads(metrics[0]).get('PCK@0.1'))
    return out


def throughput(root: Path, train_images: int | None) -> dict:
    from bench.params import resolve_raw
    params = resolve_raw(ROOT / 'profiles' / 'study' / 'params.yaml')
    st = params['data']['stickman']
    if train_images:
        st['train'] = min(st['train'], int(train_images))
    params['data']['workers'] = max(os.cpu_count() or 1, 1)
    params['train'].update(epochs=1, milestones=[], val_interval=1)
    params['seeds'] = [0]
    params['eval']['snapshot_epochs'] = [1]
    data = _workdir(root, 'study_data', params)
    t_data = _bench(data, 'data')
    from bench.runs import RunPaths
    rows = {}
    for method in params['active_methods']:
        work = _workdir(root, f'tp_{method}', params, data)
        with GpuSampler() as gpu:
            wall = _bench(work, 'train', '--method', method, '--seed', '0')
        status = json.loads((RunPaths(method, 0, work / 'runs').train / 'status.json')
                            .read_text())
        rows[method] = dict(wall_s=round(wall, 1), train_s=status.get('wall_s'),
                            images_per_s=round(st['train'] / status['wall_s'], 1)
                            if status.get('wall_s') else None, **gpu.summary())
    return dict(train_images=st['train'], batch=params['train']['batch_size'],
                workers=params['train']['workers'], data_s=round(t_data, 1), methods=rows)


def run(out_dir: str | Path = 'reports', train_images: int | None = None,
        skip_throughput: bool = False) -> int:
    import torch
    from importlib.metadata import PackageNotFoundError, version
    try:  # the version only: mmcv.ops' build-info calls segfaulted on a CPU-ops build (H100)
        mmcv_facts = dict(mmcv=version('mmcv'))
    except PackageNotFoundError:
        mmcv_facts = dict(mmcv='not installed')
    if not torch.cuda.is_available():
        print(f'gpu-check: no CUDA device visible to torch {torch.__version__} '
              f'(CUDA build: {torch.version.cuda or "no"}): nothing to check here')
        return 0
    report = dict(gpu=torch.cuda.get_device_name(0), torch=torch.__version__,
                  torch_cuda=torch.version.cuda, **mmcv_facts)
    print(f'gpu-check on {report["gpu"]} (torch {report["torch"]}, CUDA {report["torch_cuda"]}; '
          f'mmcv {report["mmcv"]})', flush=True)
    params = yaml.safe_load((ROOT / 'params.yaml').read_text())
    cls = [m for m in params['active_methods'] if m.startswith('cls')][:1]
    ok = True
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def save():  # after every step: a run stopped by a time limit keeps what it measured
        (out / 'gpu_check.json').write_text(json.dumps(report, indent=2, sort_keys=True) + '\n')

    with tempfile.TemporaryDirectory(prefix='posebench-gpu-') as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        report['determinism'] = determinism(root, cls)
        report['determinism_s'] = round(time.perf_counter() - t0, 1)
        for m, r in report['determinism'].items():
            print(f'  deterministic {m}: {"identical" if r["identical"] else "DIFFERENT"} '
                  f'metrics.json over 2 trainings (PCK@0.1 {r["pck"]})', flush=True)
            ok &= r['identical']
        save()
        if not skip_throughput:
            report['throughput'] = throughput(root, train_images)
            tp = report['throughput']
            print(f'  study profile, 1 epoch of {tp["train_images"]} images, batch {tp["batch"]}, '
                  f'{tp["workers"]} workers (data generation {tp["data_s"]} s):', flush=True)
            for m, r in tp['methods'].items():
                print(f'    {m:>16}: {r["train_s"]} s training ({r["wall_s"]} s with start-up), '
                      f'{r["images_per_s"]} img/s, GPU util mean {r["gpu_util_mean"]}% '
                      f'max {r["gpu_util_max"]}%', flush=True)
    save()
    print(f'gpu-check: {"ok" if ok else "FAILED"} -> {out / "gpu_check.json"}')
    return 0 if ok else 1
