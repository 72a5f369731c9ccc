"""posebench: per-pixel classification vs heatmap regression for 2D pose, on MMPose.

Importing the package registers its MMPose modules, so that any MMPose config can use them
with ``custom_imports = dict(imports=['bench'], allow_failed_imports=False)``:

- ``KEYPOINT_CODECS``: ``PixelClassLabel``, ``UDPHeatmapExact``
- ``MODELS``: ``PixelClassHead``, ``PixelCrossEntropyLoss``, ``PixelFocalLoss``,
  ``SigmoidHeatmapHead``, ``PeakFocalHeatmapLoss``, ``FiniteJSDiscretLoss``,
  ``BatchTopdownPreprocessor``
- ``DATASETS``: ``BatchedTopdownDataset``
- ``HOOKS``: ``DVCLiveLoggerHook``, ``DivergenceGuardHook``, ``HeatmapSnapshotHook``,
  ``ChannelsLastHook``, ``EpochSeedHook``
- ``METRICS``: ``KeypointRecorder``, ``ScoreCocoMetric``

One exception: while ``python -m bench ...`` starts, the package is imported only to reach
``bench/__main__.py``, and registering (which imports torch, MMEngine and MMPose: seconds) is
left to the command line, which does it before any command runs (:func:`bench.cli.main`), so
that ``python -m bench --help`` answers at once.
"""
import sys

from . import quiet  # noqa: F401  (first: filters the stack's import-time warnings)

__version__ = '0.1.0'


def register_modules() -> None:
    """Register the project's modules in MMPose's registries. Idempotent: once they are
    imported, later calls cost nothing."""
    from . import codecs, datasets, engine, evaluation, models  # noqa: F401  (registries)


def _starting_cli() -> bool:
    """Whether this import is ``python -m bench`` locating ``bench/__main__.py``.

    While ``-m`` locates its module, Python imports the module's packages with ``sys.argv[0]``
    set to ``'-m'`` (documented under the ``-m`` command-line option), and ``sys.orig_argv``
    holds the module's name just before the arguments that follow it. Only ``bench`` itself is
    matched: ``python -m bench.perf`` or another package's ``-m`` that imports ``bench`` on
    its way registers as usual.
    """
    argv = getattr(sys, 'argv', None) or ['']
    orig = getattr(sys, 'orig_argv', None) or []
    if argv[0] != '-m' or len(orig) < len(argv):
        return False
    token = orig[len(orig) - len(argv)]  # 'bench' after '-m', or '-mbench' / '-Bmbench'
    name = token.partition('m')[2] if token.startswith('-') else token
    return name in ('bench', 'bench.__main__')


if not _starting_cli():
    register_modules()
