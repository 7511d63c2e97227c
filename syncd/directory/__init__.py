"""The LDAP adapter: names and filters (``names``), connections and error translation
(``connection``), and the ``Directory`` class every job uses (``adapter``), built on
``base.DirectoryConnection`` (per-thread connections, operations that know no layout), with
``members`` (batched membership changes), ``values`` (Python values as LDAP values),
``paged`` (paged reads), ``ranges`` (range retrieval), ``servers`` (what differs per
``directory.kind``) and ``activedirectory`` (what AD alone needs).

No ldap3 exception leaves this package: callers see ``DirectoryUnavailable`` (retry later)
or ``DirectoryRejected`` (will not succeed as is), from ``syncd.errors``.
"""

from syncd.directory.adapter import Directory, MemberChange
from syncd.directory.connection import NoSuchEntry
from syncd.directory.names import InvalidName

__all__ = ["Directory", "MemberChange", "NoSuchEntry", "InvalidName"]
