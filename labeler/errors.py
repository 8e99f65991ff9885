"""One base class for every error a user can cause and fix.

A :class:`LabelerError` says what was expected, what was found and how to fix it, in one line; the
CLI prints it on stderr as ``labeler: error: <message>`` and exits with status 2, no traceback.
"""

from __future__ import annotations


class LabelerError(Exception):
    """A user-fixable problem: bad input, bad configuration, a missing or mismatched file."""


class ConfigError(LabelerError, ValueError):
    """A configuration file or option that is not what it should be."""
