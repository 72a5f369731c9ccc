"""The project's user-facing errors, defined here alone: each carries a one-line message naming
the culprit. This module imports nothing, so any module can raise them without pulling in the
data, engine or params layers (those re-export their own error under its old name)."""


class ParamsError(ValueError):
    """A one-line, user-facing error about ``params.yaml``."""


class DatasetError(ValueError):
    """A malformed dataset; the message is one line naming the file and the record."""


class DivergenceError(RuntimeError):
    """A run produced a non-finite loss or weights; the message is one line."""


class RunError(RuntimeError):
    """A run cannot be trained or evaluated as asked (unknown method/seed, missing inputs)."""


USER_ERRORS = (ParamsError, DatasetError, DivergenceError, RunError)
