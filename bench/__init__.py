"""posebench: per-pixel classification vs heatmap regression for 2D pose, on MMPose.

Importing the package registers its MMPose modules, so that any MMPose config can use them
with ``custom_imports = dict(imports=['bench'], allow_failed_imports=False)``:

- ``KEYPOINT_CODECS``: ``PixelClassLabel``
- ``MODELS``: ``PixelClassHead``, ``PixelCrossEntropyLoss``, ``PixelFocalLoss``
- ``HOOKS``: ``DVCLiveLoggerHook``, ``DivergenceGuardHook``, ``HeatmapSnapshotHook``
- ``METRICS``: ``KeypointRecorder``
"""
from . import _quiet  # noqa: F401  (first: filters the stack's import-time warnings)
from . import codecs, engine, models  # noqa: F401,E402  (registry side effects)

__version__ = '0.1.0'
