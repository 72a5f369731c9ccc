"""The project's user-facing errors: each carries a one-line message naming the culprit."""
from bench.data.validate import DatasetError
from bench.engine.hooks import DivergenceError
from bench.params import ParamsError


class RunError(RuntimeError):
    """A run cannot be trained or evaluated as asked (unknown method/seed, missing inputs)."""


USER_ERRORS = (ParamsError, DatasetError, DivergenceError, RunError)
