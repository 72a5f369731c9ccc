"""The package's layers (issue 28, item 3): no module imports from a package above it, no
import cycle, no private name imported from another module.

Every ``bench`` import counts, at the top of a module or inside a function: a lazy import is
still a dependency. The layers, lowest first:

0. the foundations: errors, parameters, the runs' layout, the console, the warning filters
1. data generation and layout; the codecs
2. the formulation records (they describe codecs and heads)
3. what MMPose registers or runs: datasets, models, engine, evaluation
4. the config builder
5. the report
6. the DVC stages
7. the command line and the commands around the pipeline (perf, gpu-check, install...)

A module may import its own layer or lower ones. ``bench/__init__.py`` (which registers the
MMPose modules) is the package's entry point, not a layer: importing ``bench`` registers, which
a lower module may ask for (``params`` does, to validate loss names).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.params import ROOT

LAYERS = [
    ('bench.errors', 'bench.params', 'bench.runs', 'bench.console', 'bench.quiet'),
    ('bench.data', 'bench.codecs'),
    ('bench.formulations',),
    ('bench.datasets', 'bench.models', 'bench.engine', 'bench.evaluation'),
    ('bench.config',),
    ('bench.report',),
    ('bench.stages',),
    ('bench.cli', 'bench.__main__', 'bench.launch', 'bench.perf', 'bench.perf_data',
     'bench.gpu_check', 'bench.gpu_bundle', 'bench.install', 'bench.profiles',
     'bench.study_estimate'),
]


def layer(module: str) -> int:
    """The layer of a module: that of the longest listed name it is, or lies under."""
    best, found = -1, None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + '.')) and len(n) > best:
                best, found = len(n), i
    if found is None:
        raise AssertionError(f'{module} is in no layer: add it to tests/test_layers.py LAYERS')
    return found


def modules() -> dict[str, Path]:
    out = {}
    for f in sorted((ROOT / 'bench').rglob('*.py')):
        parts = f.relative_to(ROOT).with_suffix('').parts
        name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
        out[name] = f
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every ``bench`` import in a module."""
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names
                      if a.name.split('.')[0] == 'bench']
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                pkg = package.split('.')
                pkg = pkg[:len(pkg) - node.level + 1]
                base = '.'.join(pkg + ([base] if base else []))
            if base.split('.')[0] != 'bench':
                continue
            names = [a.name for a in node.names]
            # `from pkg import module` imports the module
            for n in names:
                if f'{base}.{n}' in known:
                    found.append((f'{base}.{n}', [], node.lineno))
            plain = [n for n in names if f'{base}.{n}' not in known]
            if plain or not names:
                found.append((base, plain, node.lineno))
    return found


def test_every_module_has_a_layer():
    for name in modules():
        if name != 'bench':
            layer(name)


def test_no_module_imports_from_a_layer_above():
    known = modules()
    wrong = []
    for name, path in known.items():
        if name == 'bench':
            continue
        for target, _, line in imports(name, path, known):
            if target == 'bench':  # the entry point: registering (see the module docstring)
                continue
            if layer(target) > layer(name):
                wrong.append(f'{path.relative_to(ROOT)}:{line} {name} (layer {layer(name)}) '
                             f'imports {target} (layer {layer(target)})')
    assert not wrong, '\n'.join(wrong)


def test_no_import_cycle():
    known = modules()
    graph = {name: {t for t, _, _ in imports(name, path, known) if t in known and t != name}
             for name, path in known.items()}
    # a package's __init__ importing its own modules is how packages register: not a cycle
    for name in graph:
        graph[name] = {t for t in graph[name] if not t.startswith(name + '.')}
    graph.pop('bench', None)
    for deps in graph.values():
        deps.discard('bench')
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                pytest.fail('import cycle: ' + ' -> '.join(cycle))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_no_private_name_imported_across_modules():
    known = modules()
    wrong = [f'{path.relative_to(ROOT)}:{line} imports {n} from {target}'
             for name, path in known.items() for target, names, line in
             imports(name, path, known) for n in names if n.startswith('_')]
    wrong += [f'{path.relative_to(ROOT)}: imports the private module {target}'
              for name, path in known.items() for target, _, _ in imports(name, path, known)
              if any(part.startswith('_') and part != '__main__'
                     for part in target.split('.'))]
    assert not wrong, '\n'.join(wrong)


def test_the_layer_test_fails_on_an_upward_import(tmp_path, monkeypatch):
    """The check itself: a codec that imports the report would be caught."""
    known = modules()
    fake = tmp_path / 'fake_codec.py'
    fake.write_text('from bench.report import stats\n')
    found = imports('bench.codecs.fake_codec', fake, known)
    assert [(t, layer(t)) for t, _, _ in found] == [('bench.report.stats', 5)]
    assert layer('bench.codecs.fake_codec') == 1
