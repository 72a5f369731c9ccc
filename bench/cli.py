"""``python -m bench <stage>`` / ``bench <stage>``: one sub-command per DVC stage.

Every command validates ``params.yaml`` first and turns the project's own errors (bad params,
a broken dataset, a diverged run) into one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import subprocess
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='bench', description=__doc__.splitlines()[0])
    p.add_argument('--params', default=None,
                   help='params file (default: params.yaml in the current directory)')
    p.add_argument('-v', '--verbose', action='store_true',
                   help='print MMEngine\'s whole stream (environment, config, every logged '
                   'iteration) and the COCO evaluator\'s output on the console too; by default '
                   'they go to each run\'s log in its work dir (same as POSEBENCH_VERBOSE=1)')
    sub = p.add_subparsers(dest='command', required=True, metavar='COMMAND')

    sub.add_parser('check-params', help='validate params.yaml and exit')
    sp = sub.add_parser('pipeline', help='write profiles/<name>/dvc.yaml from the top-level '
                        'dvc.yaml (a profile: a study beside the default one, its params '
                        'an override of params.yaml; see bench/profiles.py)')
    sp.add_argument('name', help='a folder of profiles/ with a params.yaml')
    sub.add_parser('data', help='generate (stickman) or validate (coco) the dataset, draw the '
                   'contact sheet, write data/manifest.json')
    for name, text in (('train', 'train every seed of one method (or one seed) with MMEngine\'s '
                        'Runner, in one process; skips finished seeds, resumes from the last '
                        'checkpoint'),
                       ('evaluate', 'score every trained seed of one method (or one seed) on '
                        'the test split')):
        sp = sub.add_parser(name, help=text)
        sp.add_argument('--method', required=True, help='a key of params.yaml `methods`')
        sp.add_argument('--seed', type=int, default=None,
                        help='one of params.yaml `seeds` (default: every seed, every geometry)')
        sp.add_argument('--geometry', default=None,
                        help='with --seed: a `sweep` geometry tag such as hm32s2 (default: '
                        'model\'s own geometry)')
    sp = sub.add_parser('tune', help='pick one method\'s learning rate from tune.lrs on the '
                        'validation split (tune.enabled), or record train.lr (off): '
                        'runs/tuned/<method>.json')
    sp.add_argument('--method', required=True, help='a key of params.yaml `methods`')
    sub.add_parser('floor', help='codec floor of every method (a perfect network\'s score), the '
                   'method descriptions and the imbalance table: reports/codec_floor.csv, '
                   'methods.csv, imbalance.csv')
    sub.add_parser('report', help='tables, figures and reports/README.md from every run')
    sp = sub.add_parser('gpu-check', help='on a CUDA machine: deterministic GPU trainings '
                        '(twice, compared) and one timed study-profile epoch per method; '
                        'elsewhere one line and exit 0')
    sp.add_argument('--out', default='reports', help='where gpu_check.json goes')
    sp.add_argument('--train-images', type=int, default=None,
                    help='cap the study profile\'s training images (default: all)')
    sp.add_argument('--skip-throughput', action='store_true', help='determinism check only')
    sp = sub.add_parser('estimate', help='time one training step per active method x '
                        'geometry on this machine (GPU when there is one) and extrapolate the '
                        'profile\'s study: <out>/study_estimate.csv|md (needs data/)')
    sp.add_argument('--steps', type=int, default=5, help='timed steps per cell (default 5)')
    sp.add_argument('--out', default='reports', help='output folder')
    sp = sub.add_parser('perf', help='micro-benchmarks: codec, loss, training step, pipeline')
    sp.add_argument('--quick', action='store_true', help='fewer repeats (for tests)')
    sp.add_argument('--out', default='reports', help='output folder')
    return p


def main(argv: list[str] | None = None) -> int:
    # `--help` and usage errors exit here, having imported nothing but the standard library
    # (under `python -m bench`, `bench/__init__` leaves registration to this function).
    args = _parser().parse_args(argv)
    if args.verbose:
        import os
        os.environ['POSEBENCH_VERBOSE'] = '1'  # read by bench.console, and by spawned workers
    if args.command == 'check-params':  # the schema alone: no MMPose unless a loss needs it
        from bench.params import ParamsError, load_params
        try:
            params = load_params(args.params)
        except ParamsError as exc:
            print(f'error: {exc}', file=sys.stderr)
            return 2
        print(f'{args.params or "params.yaml"}: ok ({len(params.active_methods)} methods x '
              f'{len(params.seeds)} seeds)')
        return 0
    if args.command == 'pipeline':  # light: the schema and dvc.yaml only
        from bench.params import ParamsError
        from bench.profiles import write_pipeline
        try:
            print(f'wrote {write_pipeline(args.name)}')
        except ParamsError as exc:
            print(f'error: {exc}', file=sys.stderr)
            return 2
        return 0
    if args.command == 'tune':
        from bench.params import ParamsError, load_params
        try:
            params = load_params(args.params)
        except ParamsError as exc:
            print(f'error: {exc}', file=sys.stderr)
            return 2
        if not params.tune.enabled:  # records train.lr without importing the stack (0.3 s)
            from bench.stages.tune import run as tune
            try:
                tune(params, args.method)
            except ParamsError as exc:
                print(f'error: {exc}', file=sys.stderr)
                return 2
            return 0
    # Every stage needs the project's modules in MMPose's registries: it builds models from
    # configs (and the params schema may look a loss type up in MODELS).
    if args.command == 'gpu-check':  # its stages run as their own processes
        from bench.gpu_check import run as gpu_check
        return gpu_check(args.out, args.train_images, args.skip_throughput)
    import bench
    bench.register_modules()
    from bench.errors import USER_ERRORS
    try:
        from bench.params import load_params
        params = load_params(args.params)
        if args.command == 'data':
            from bench.stages.data import run
            run(params)
        elif args.command in ('train', 'evaluate'):
            from bench.launch import configure_determinism, relaunch_command
            configure_determinism(params.train.deterministic)  # before any CUDA call
            if args.geometry is not None and args.seed is None:
                print('error: --geometry needs --seed', file=sys.stderr)
                return 2
            own = (['--params', args.params] if args.params else []) + [
                args.command, '--method', args.method] + (
                ['--seed', str(args.seed)] if args.seed is not None else []) + (
                ['--geometry', args.geometry] if args.geometry is not None else [])
            cmd = relaunch_command(params.train.launcher, params.train.gpus, own) \
                if args.command == 'train' else None
            if cmd is not None:
                # `dvc repro` starts one process: it becomes torchrun / srun with train.gpus
                # workers, which come back here and train
                return subprocess.run(cmd).returncode
            from bench.stages import evaluate, train
            stage = train if args.command == 'train' else evaluate
            stage.run(params, args.method, args.seed, args.geometry)
        elif args.command == 'tune':
            from bench.stages.tune import run
            run(params, args.method)
        elif args.command == 'floor':
            from bench.stages.floor import run
            run(params)
        elif args.command == 'report':
            from bench.stages.report import run
            run(params)
        elif args.command == 'estimate':
            from bench.study_estimate import run
            run(params, out_dir=args.out, steps=args.steps)
        elif args.command == 'perf':
            from bench.perf import run
            run(params, out_dir=args.out, quick=args.quick)
    except USER_ERRORS as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    return 0
