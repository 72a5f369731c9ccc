"""Heads and losses registered in ``mmpose.registry.MODELS``."""
from .losses import PixelCrossEntropyLoss, PixelFocalLoss
from .pixel_class_head import PixelClassHead

__all__ = ['PixelClassHead', 'PixelCrossEntropyLoss', 'PixelFocalLoss']
