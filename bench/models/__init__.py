"""Heads, losses and data preprocessors registered in ``mmpose.registry.MODELS``."""
from .losses import (FiniteJSDiscretLoss, PeakFocalHeatmapLoss, PixelCrossEntropyLoss,
                     PixelFocalLoss)
from .pixel_class_head import PixelClassHead
from .sigmoid_heatmap_head import SigmoidHeatmapHead
from .data_preprocessors import BatchTopdownPreprocessor

__all__ = ['BatchTopdownPreprocessor', 'FiniteJSDiscretLoss', 'PeakFocalHeatmapLoss',
           'PixelClassHead', 'PixelCrossEntropyLoss', 'PixelFocalLoss', 'SigmoidHeatmapHead']
