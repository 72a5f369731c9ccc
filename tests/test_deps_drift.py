"""``dvc.yaml``'s code deps cannot drift from the code (issue 28, item 4).

A stage's code is the transitive closure of ``bench`` imports (anywhere in a module: top level
or inside a function) from its module ``bench/stages/<stage>.py``, with the packages' own
``__init__.py`` files. Left out by rule, because they cannot change what a stage computes:
:data:`INFRASTRUCTURE` (the command line that dispatches to the stage, the package's registry
import, the warning filters). Each stage's ``deps`` must cover every module of its closure (a
file, or a folder holding it) and list nothing outside it; the train stage's deps decide
retraining (``bench.stages.common.training_key`` hashes them), so both kinds of drift matter.

One dependency is not an import: MMPose builds our codecs, heads, losses, hooks, datasets and
metrics by name from its registries, which ``bench.register_modules`` fills. A stage that builds
MMPose modules from a config (its closure holds one of :data:`BUILDERS`) depends on every
registered package (:data:`REGISTERED`). And ``bench.formulations`` imports each family's
module by discovery, not by name (:data:`AUTO_IMPORTING`): a stage that imports the package
depends on all of them.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from bench.params import ROOT

#: Never a stage's dependency: dispatch (cli, __main__), registration (bench/__init__) and the
#: warning filters (quiet).
INFRASTRUCTURE = {'bench/__init__.py', 'bench/__main__.py', 'bench/cli.py', 'bench/quiet.py'}
#: The packages bench.register_modules imports into MMPose's registries.
REGISTERED = ('bench.codecs', 'bench.datasets', 'bench.engine', 'bench.evaluation',
              'bench.models')
#: Modules whose importers build MMPose modules from configs: the config builder, and the
#: reader of a run's saved config.
BUILDERS = ('bench/config.py', 'bench/stages/run_config.py')
#: Packages that import every module of theirs at import (a new family is a new file there).
AUTO_IMPORTING = ('bench.formulations',)
STAGE_MODULE = {'data': 'data', 'floor': 'floor', 'tune': 'tune', 'train': 'train',
                'evaluate': 'evaluate', 'report': 'report'}


def _module_file(name: str) -> Path | None:
    """bench.x.y -> bench/x/y.py or bench/x/y/__init__.py (None: not a module of ours)."""
    base = ROOT / Path(*name.split('.'))
    if base.with_suffix('.py').is_file():
        return base.with_suffix('.py')
    if (base / '__init__.py').is_file():
        return base / '__init__.py'
    return None


def _imports(path: Path) -> set[str]:
    """The ``bench`` modules a file imports (``from bench.x import y``: bench.x, and bench.x.y
    when y is a module)."""
    rel = path.relative_to(ROOT).with_suffix('')
    package = list(rel.parts[:-1]) if rel.name != '__init__' else list(rel.parts[:-1])
    if rel.name == '__init__':
        package = list(rel.parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split('.')[0] == 'bench'}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = '.'.join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ''
            if mod.split('.')[0] != 'bench':
                continue
            found.add(mod)
            found |= {f'{mod}.{a.name}' for a in node.names if _module_file(f'{mod}.{a.name}')}
    return found


def closure(stage_module: str) -> set[str]:
    """Repo-relative files of ``bench.stages.<stage_module>``'s import closure (with the
    registered packages when it builds a config)."""
    seen = _closure([f'bench.stages.{stage_module}'])
    if any(b in seen for b in BUILDERS):
        seen |= _closure(_modules(REGISTERED))
    auto = [pkg for pkg in AUTO_IMPORTING if _module_file(pkg).relative_to(ROOT).as_posix()
            in seen]
    return seen | _closure(_modules(auto))


def _modules(packages) -> list[str]:
    """Every module of each package (its own folder, not subpackages: those are imported)."""
    return [f'{pkg}.{p.stem}' for pkg in packages
            for p in (ROOT / Path(*pkg.split('.'))).glob('*.py')]


def _closure(todo: list[str]) -> set[str]:
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        parts = name.split('.')
        for i in range(1, len(parts) + 1):   # the packages on the way are imported too
            f = _module_file('.'.join(parts[:i]))
            if f is None:
                continue
            rel = f.relative_to(ROOT).as_posix()
            if rel in seen or rel in INFRASTRUCTURE:
                continue
            seen.add(rel)
            todo += sorted(_imports(f))
    return seen


def _code_deps(stage: str) -> list[str]:
    spec = yaml.safe_load((ROOT / 'dvc.yaml').read_text())['stages'][stage]
    deps = spec.get('deps') or spec['do']['deps']
    return [d for d in deps if d.startswith('bench')]


def drift(stage: str, deps: list[str]) -> tuple[list[str], list[str]]:
    """(closure files no dep covers, deps that cover no closure file) of one stage."""
    files = closure(STAGE_MODULE[stage])

    def covers(d: str, f: str) -> bool:
        return f == d or f.startswith(d.rstrip('/') + '/')

    missing = sorted(f for f in files if not any(covers(d, f) for d in deps))
    extra = sorted(d for d in deps if not any(covers(d, f) for f in files))
    return missing, extra


@pytest.mark.parametrize('stage', sorted(STAGE_MODULE))
def test_stage_deps_are_its_imports(stage):
    missing, extra = drift(stage, _code_deps(stage))
    assert not missing, f'dvc.yaml stage {stage!r} misses {missing}'
    assert not extra, f'dvc.yaml stage {stage!r} lists {extra}, which it does not import'


def test_the_drift_test_fails_on_a_removed_or_a_stray_dep():
    deps = _code_deps('train')
    assert drift('train', deps) == ([], [])
    missing, _ = drift('train', [d for d in deps if d != 'bench/stages/run_config.py'])
    assert missing == ['bench/stages/run_config.py']
    missing, _ = drift('train', [d for d in deps if d != 'bench/models'])
    assert 'bench/models/losses.py' in missing          # registered, never imported by name
    _, extra = drift('train', deps + ['bench/launch.py'])
    assert extra == ['bench/launch.py']                 # only the command line imports it
