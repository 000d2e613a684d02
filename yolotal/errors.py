"""One error type for every problem caused by user input.

The CLI turns an :class:`InputError` into exit code 2 and a single line naming the file (and line).
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input: a label file, a heads file, a config file or a command-line value.

    Attributes:
        source: the file (or option) at fault, or None.
        line: 1-based line number inside ``source`` where it makes sense.
    """

    def __init__(self, message: str, source: str | None = None, line: int | None = None):
        self.message = message
        self.source = source
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.source is not None:
            where = f"{self.source}:{self.line}: " if self.line is not None else f"{self.source}: "
        return f"{where}{self.message}"
