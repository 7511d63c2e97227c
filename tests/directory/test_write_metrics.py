"""LDAP write latency and errors, as the daemon exposes them to Prometheus."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from syncd.directory import names
from syncd.errors import DirectoryRejected, DirectoryUnavailable

pytestmark = pytest.mark.slapd


def writes(operation):
    return REGISTRY.get_sample_value("syncd_ldap_write_seconds_count", {"operation": operation}) or 0


def errors(operation, kind):
    return REGISTRY.get_sample_value("syncd_ldap_write_errors_total", {"operation": operation, "kind": kind}) or 0


def test_every_write_is_timed_and_a_member_already_there_is_not_an_error(directory):
    directory.ensure_branches()
    directory.ensure_group("metrics-g", "metrics-role", "metrics-app")
    dn = names.person_dn(directory.layout, "metrics-ann")
    directory.upsert_account("metrics-ann", {"given_name": "Ann", "family_name": "Lee"})
    directory.supports_permissive_modify()
    before_modify, before_errors = writes("modify"), errors("modify", "rejected")
    directory.add_members("metrics-g", [dn])
    directory.add_members("metrics-g", [dn])          # already a member: success, not an error
    assert writes("modify") == before_modify + 2
    assert errors("modify", "rejected") == before_errors


def test_a_write_the_server_refuses_is_counted_as_rejected(directory):
    directory.ensure_branches()
    before = errors("modify", "rejected")
    with pytest.raises(DirectoryRejected):
        directory.add_members("no-such-group-for-metrics", ["uid=x,dc=example,dc=org"])
    assert errors("modify", "rejected") == before + 1


def test_a_write_to_an_unreachable_server_is_counted_as_unavailable(make_directory):
    # permissive modify fixed, so the modify is the first thing sent (no probe read before it)
    d = make_directory(urls=["ldap://127.0.0.1:9"], timeout_seconds=1, permissive_modify="off")
    before = errors("modify", "unavailable")
    with pytest.raises(DirectoryUnavailable):
        d.add_members("any-group", ["uid=x,dc=example,dc=org"])
    assert errors("modify", "unavailable") == before + 1
