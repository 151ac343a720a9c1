"""repmon's errors: one tree, each branch named for what the caller should do.

The root lives in the lowest layer so that every layer raises its own branch of the same
tree. The command line catches :class:`RepmonError` once, prints the message and exits with
the error's :attr:`~RepmonError.exit_status`; the HTTP API maps the same classes to status
codes. A failing *target* is never an exception: it is a result (``unknown`` with a reason).

::

    RepmonError                      exit 1
    ├── ConfigError                  exit 2  the configuration cannot be used (names the key)
    │   └── InventoryError                   a pool is too large or malformed
    ├── UsageError                   exit 2  bad arguments or request (CLI, API: 4xx)
    │   ├── TargetError                      not an IP address, CIDR or domain
    │   ├── CaseNotFound                     no case with that id
    │   └── CaseStateError                   the case cannot take that action now
    ├── InputError                   exit 1  a message or file cannot be read (quarantined)
    │   └── ParseError                       malformed feedback, report or bounce
    ├── StoreError                   exit 4  the store failed
    │   ├── StoreUnavailable                 cannot be reached now; try again later
    │   └── StoreConflict                    a write collided with another writer
    └── SpoolError                   exit 4  the spool directory cannot be written
"""

from __future__ import annotations

EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 4


class RepmonError(Exception):
    """The root of every error repmon raises on purpose."""

    exit_status = EXIT_PROBLEM


class ConfigError(RepmonError):
    """The configuration cannot be used; the message names the file and key."""

    exit_status = EXIT_USAGE


class InventoryError(ConfigError, ValueError):
    """A pool's CIDR is larger than repmon may expand, or malformed."""


class UsageError(RepmonError):
    """Bad arguments (CLI) or a bad request (API): the message says what is wrong."""

    exit_status = EXIT_USAGE


class TargetError(UsageError, ValueError):
    """Not an IP address, a CIDR or a domain name."""


class CaseNotFound(UsageError, LookupError):
    """No case with that id."""


class CaseStateError(UsageError, ValueError):
    """The case cannot take that action in its current state."""


class InputError(RepmonError, ValueError):
    """A message or file cannot be read; it is quarantined or reported per file."""


class ParseError(InputError):
    """Malformed feedback, report or bounce: the message says what and where."""


class StoreError(RepmonError):
    """The store failed; the message names the URL without its password."""

    exit_status = EXIT_UNAVAILABLE


class StoreUnavailable(StoreError):
    """The store cannot be reached now (connection refused or lost, locked): try again later."""


class StoreConflict(StoreError):
    """A write collided with another writer (a unique key): re-read and retry."""


class SpoolError(RepmonError, OSError):
    """The spool directory cannot be written (full, read-only): the sink answers 451."""

    exit_status = EXIT_UNAVAILABLE
