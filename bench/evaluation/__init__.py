"""Evaluation: the metrics registered in ``mmpose.registry.METRICS`` (a run's keypoints and
PCK, COCO AP under a second score), and what the report measures beyond them: the codec floor,
per-pixel calibration, the targets' class imbalance, a model's cost."""
from .metrics import KeypointRecorder, ScoreCocoMetric

__all__ = ['KeypointRecorder', 'ScoreCocoMetric']
