"""The exceptions poolcli raises on purpose.

Every message names the parameter (or file), the value and the fix, so that the
command line can print it as one line and a Python user can act on it.
"""


class PoolError(ValueError):
    """A pooling parameter or input array that poolcli cannot use.

    >>> raise PoolError("window 0 must be >= 1; use window >= 1")
    Traceback (most recent call last):
    ...
    poolcli.errors.PoolError: window 0 must be >= 1; use window >= 1
    """


class InputError(PoolError):
    """An input file that cannot be read, decoded or is refused (pickles, bombs)."""


class OutputError(PoolError):
    """An output that cannot be written: it exists, is an input, or its folder is unwritable."""
