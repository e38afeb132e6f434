"""The exceptions poolcli raises on purpose, how their messages are shown, and how a signal
becomes one (`Interrupted`).

Every message names the parameter (or file), the value and the fix, so that the
command line can print it as one line and a Python user can act on it.
"""

import contextlib
import re
import signal
import threading
from collections.abc import Iterator, Mapping

_PARAMETER = re.compile("\x1f(\\w+)\x1f")


def param(name: str) -> str:
    """How a message names a parameter: as its keyword (``max_pixels``) where the message is
    read in Python (``str(error)``), as the option the command line maps it to
    (``--max-pixels``) there (`render` with the command line's names). One mapping, in the
    command line; no library module spells a flag.

    >>> str(PoolError(f"{param('window')} 0 must be >= 1"))
    'window 0 must be >= 1'
    >>> PoolError(f"{param('window')} 0 must be >= 1").text({"window": "--window"})
    '--window 0 must be >= 1'
    """
    return f"\x1f{name}\x1f"


def render(message: str, names: Mapping[str, str] | None = None) -> str:
    """`message` with every `param` shown by its name in `names` (else as the keyword)."""
    names = names or {}
    return _PARAMETER.sub(lambda match: names.get(match[1], match[1]), message)


class PoolError(ValueError):
    """A pooling parameter or input array that poolcli cannot use.

    >>> raise PoolError("window 0 must be >= 1; use window >= 1")
    Traceback (most recent call last):
    ...
    poolcli.errors.PoolError: window 0 must be >= 1; use window >= 1
    """

    @property
    def template(self) -> str:
        """The message with its parameters still marked (see `param`): for wrapping it in
        another message without losing them."""
        return str(self.args[0]) if self.args else ""

    def text(self, names: Mapping[str, str] | None = None) -> str:
        """The message, parameters shown by `names` (the command line's flags) or as keywords."""
        return render(self.template, names)

    def __str__(self) -> str:
        return self.text()


class InputError(PoolError):
    """An input file that cannot be read, decoded or is refused (pickles, bombs)."""


class OutputError(PoolError):
    """An output that cannot be written: it exists, is an input, or its folder is unwritable."""


class Interrupted(KeyboardInterrupt):
    """A stop asked for by a signal: Ctrl-C (SIGINT), SIGTERM (as `timeout` sends) or SIGHUP.

    It is a KeyboardInterrupt, so every clean-up that handles Ctrl-C handles it too.
    """

    def __init__(self, signum: int = 2):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as shells report a process a signal ended."""
        return 128 + self.signum


@contextlib.contextmanager
def signals_interrupt(numbers: tuple[int, ...]) -> Iterator[None]:
    """While the block runs, the signals `numbers` raise `Interrupted` (in the main thread;
    a signal the process was told to ignore, as nohup does, stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise Interrupted(signum)

    previous = {}
    for number in numbers:
        if signal.getsignal(number) != signal.SIG_IGN:
            previous[number] = signal.signal(number, interrupt)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def printable(text: str) -> str:
    """``text`` safe to print on one line of a terminal: control characters (newlines,
    escape sequences) written as Python escapes, bytes that were not UTF-8 in a file name
    (surrogate escapes) as ``\\xNN``.

    >>> print(printable("a\\nb\\x1b[31m.png"))
    a\\nb\\x1b[31m.png
    >>> print(printable("caf" + chr(0xDCE9) + ".png"))
    caf\\xe9.png
    """
    return "".join(_printable_character(character) for character in text)


def _printable_character(character: str) -> str:
    code = ord(character)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's escape of an undecodable byte
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x20 or 0x7F <= code < 0xA0 or 0xD800 <= code <= 0xDFFF:
        return character.encode("unicode_escape", "backslashreplace").decode("ascii")
    return character
