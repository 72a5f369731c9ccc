"""Keypoint codecs registered in ``mmpose.registry.KEYPOINT_CODECS``."""
from .pixel_class_label import PixelClassLabel
from .udp_heatmap import UDPHeatmapExact

__all__ = ['PixelClassLabel', 'UDPHeatmapExact']
