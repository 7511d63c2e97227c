"""Prometheus series of the LDAP writes this process makes (the daemon serves them, see
``syncd.daemon``; ``deploy/grafana`` and ``deploy/prometheus`` read them).

Kept in prometheus_client's default registry: they describe the process, whichever Directory
objects it opens. A write is one request to the server (a batched member modify counts once).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WRITE_SECONDS = Histogram(
    "syncd_ldap_write_seconds", "Duration of one LDAP write (an entry, or a batched membership modify)",
    ["operation"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
WRITE_ERRORS = Counter(
    "syncd_ldap_write_errors", "LDAP writes that failed: the server unreachable, or a result that is "
    "neither success nor 'already so'", ["operation", "kind"])

# Results syncd takes as "already in the wanted state" (a value already there, already gone,
# an entry that exists): the callers treat them as success, so they are not errors here.
SETTLED_RESULTS = frozenset({16, 20, 68})    # noSuchAttribute, attributeOrValueExists, entryAlreadyExists
