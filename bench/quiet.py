"""Silence warnings the MMPose stack prints at every run that say nothing about the user's work.

Each filter names the exact message and why it is harmless; anything else still shows.
"""
import logging
import warnings

# mmengine/mmcv call torch.load / pkg_resources in ways newer torch/setuptools deprecate; the
# calls are in the pinned third-party code, not ours, and behave correctly for our inputs.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
warnings.filterwarnings('ignore', category=DeprecationWarning,
                        module=r'(mmengine|mmcv|mmpose|mmdet)')

# A spawned worker (train.parallel_runs) starts with the `spawn` method; MMEngine's setup_env
# switches every process to `fork` for its dataloaders and warns that it did, once per run.
warnings.filterwarnings('ignore', message=r'Multi-processing start method `fork` is different '
                        r'from the previous setting `spawn`')


# Log lines (MMEngine's logger, not the warnings module) printed by every training and
# evaluation of the stack itself:
# - "The prefix is not set in metric class PCKAccuracy/EPE": the metrics' keys ('PCK', 'EPE')
#   are what the learning curves and the report are keyed on, so no prefix is wanted;
# - "FileClient" / "HardDiskBackend" deprecations: raised inside mmpose's own transforms and
#   metrics, which pass their default backend arguments; nothing in our configs selects them.
_STACK_NOISE = ('The prefix is not set in metric class ',
                '"FileClient" will be deprecated in future',
                '"HardDiskBackend" is the alias of "LocalBackend"')


class _StackNoiseFilter(logging.Filter):

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_STACK_NOISE)


def quiet_logger(logger: logging.Logger) -> logging.Logger:
    """Drop the log lines above from ``logger`` (a ``Runner``'s ``MMLogger``); idempotent."""
    if not any(isinstance(f, _StackNoiseFilter) for f in logger.filters):
        logger.addFilter(_StackNoiseFilter())
    return logger
