"""The small exception tree every adapter translates its driver's errors into.

Callers decide what to do from the class alone: a ``TemporaryError`` is worth retrying
(after a backoff), a ``PermanentError`` is not and must be recorded and shown.
No exception of a driver (LDAP, SQL, SMTP) escapes an adapter.
"""

from __future__ import annotations


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""


class ConfigError(SyncdError):
    """The settings or the mappings are invalid; ``problems`` lists each one."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class TemporaryError(SyncdError):
    """Retrying later may succeed: a server is down, a lock is held, a timeout hit."""


class PermanentError(SyncdError):
    """Retrying will not help until something (data, config, a person) changes."""


class DirectoryUnavailable(TemporaryError):
    """The LDAP server cannot be reached or is busy."""


class DirectoryRejected(PermanentError):
    """The LDAP server refused an operation for a reason a retry does not fix."""


class StoreUnavailable(TemporaryError):
    """The SQL database cannot be reached, or a lock or serialisation conflict occurred."""


class StoreRejected(PermanentError):
    """The SQL database refused a statement (constraint, schema mismatch)."""


class MailUnavailable(TemporaryError):
    """The SMTP server cannot be reached or answered with a 4xx code."""


class MailRejected(PermanentError):
    """The SMTP server refused the message for good (5xx)."""


class DecisionRefused(PermanentError):
    """A decision cannot be taken: the request is already decided, the decider is not allowed, …

    ``code`` is a stable machine-readable reason (``already_decided``, ``not_authorised``, …).
    """

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)
