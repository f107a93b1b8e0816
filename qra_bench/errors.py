"""User-facing errors.

A :class:`QRBenchError` is a mistake in what the user asked for (a bad bit width, an unparseable budget,
a corrupt table). The CLI prints its message on one line and exits non-zero without a traceback; every
other exception is an internal error and keeps its traceback.
"""


class QRBenchError(ValueError):
    """A user error: the message names the bad value and what is allowed."""


class InfeasibleBudgetError(QRBenchError):
    """No configuration in the search space fits the requested memory budget."""


class TableError(QRBenchError):
    """A results table (or one of its part files) is corrupt, foreign, or of another schema."""
