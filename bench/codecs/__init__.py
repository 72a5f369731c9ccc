"""Keypoint codecs registered in ``mmpose.registry.KEYPOINT_CODECS``."""
from .pixel_class_label import PixelClassLabel

__all__ = ['PixelClassLabel']
