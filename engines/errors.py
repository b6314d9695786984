"""Errors a user can act on. The CLI prints their message alone, without a traceback."""


class LivedubError(Exception):
    """Base for every error whose message is meant for the user."""


class MissingModelError(LivedubError):
    """A role has no model on this machine; the message names what to install or pass."""


class BadInputError(LivedubError):
    """An input file is empty, corrupt, unsupported or holds nothing usable."""


class WriteError(LivedubError, OSError):
    """A file cannot be written for a reason the user fixes (disk full, quota, read-only disk, too large).

    An OSError too, so code that tolerates a failed cache write (`except OSError`) still does."""
