"""Errors an operator must act on: printed as they are, without a traceback, with an exit code."""

from __future__ import annotations


class OperatorError(Exception):
    """A problem outside the program (a file, a folder, a setting) that a person must fix.

    The message says what is wrong, where, and what to do; ``exit_code`` is what the command
    line exits with.
    """

    exit_code = 1
