"""Heads and losses registered in ``mmpose.registry.MODELS``."""
from .losses import (FiniteJSDiscretLoss, PeakFocalHeatmapLoss, PixelCrossEntropyLoss,
                     PixelFocalLoss)
from .pixel_class_head import PixelClassHead
from .sigmoid_heatmap_head import SigmoidHeatmapHead

__all__ = ['FiniteJSDiscretLoss', 'PeakFocalHeatmapLoss', 'PixelClassHead',
           'PixelCrossEntropyLoss', 'PixelFocalLoss', 'SigmoidHeatmapHead']
