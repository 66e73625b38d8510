"""Exceptions that separate bad input (exit code 2) from failures (exit code 1)."""


class RepairError(Exception):
    """The repair failed for a reason other than its input."""


class RepairInputError(RepairError):
    """An argument, model file or data file is unusable; the message says why."""
