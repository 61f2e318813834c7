"""The one error type users see.

Every failure a user can fix (unknown name, missing package, bad file, offline and not cached) raises
:class:`SslzooError` with a single line that says what is wrong and what to do. The CLI prints that line and
exits non-zero; nothing deeper than this reaches the terminal.
"""

from __future__ import annotations


class SslzooError(Exception):
    """A user-facing error: one line, what is wrong and what to do about it."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
