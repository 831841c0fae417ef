"""The one exception type that reaches users as a clear one-line message."""


class PnPError(Exception):
    """A user-facing error: bad input, an incompatible triple, a diverging step size.

    The CLI prints ``error: <message>`` on stderr and exits with code 2, no traceback.
    """
