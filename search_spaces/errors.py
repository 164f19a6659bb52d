"""The exceptions archsearch raises for problems a user can fix.

Each one also inherits the builtin that fits it, so callers may catch either ours or Python's.
Messages are one line: the field or thing at fault, the value received, the rule, and the fix.
"""

from __future__ import annotations


class ArchsearchError(Exception):
    """Base class of every error archsearch raises on purpose."""


class SpecError(ArchsearchError, ValueError):
    """The search spec breaks a rule (bad key, bad domain, contradictory settings)."""


class DataError(ArchsearchError, ValueError):
    """A dataset is missing, unreadable, or unfit for the requested evaluation."""


class StoreError(ArchsearchError, OSError):
    """A results store is missing, damaged, or cannot be written."""
