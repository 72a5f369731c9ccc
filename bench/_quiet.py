"""Silence warnings the MMPose stack prints at every run that say nothing about the user's work.

Each filter names the exact message and why it is harmless; anything else still shows.
"""
import warnings

# mmengine/mmcv call torch.load / pkg_resources in ways newer torch/setuptools deprecate; the
# calls are in the pinned third-party code, not ours, and behave correctly for our inputs.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
warnings.filterwarnings('ignore', category=DeprecationWarning, module=r'(mmengine|mmcv|mmpose|mmdet)')
