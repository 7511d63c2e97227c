"""Apache httpd with mod_authnz_ldap, configured as docs/applications.md says, in front of syncd's directory.

Rights come from syncd's workflow (a portal request, a correspondent's decision, the ``apply``
job); Apache binds as the application account and sees them within its cache time (1 s here).
``/accords-locaux/`` requires the role's group, ``/intranet/`` any active account, ``/bare/``
any account that binds (no status filter: only the directory's own lock refuses a disabled one).
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.slapd

GROUP_PAGE, ANY_ACCOUNT_PAGE, NO_STATUS_FILTER_PAGE = "/accords-locaux/", "/intranet/", "/bare/"
WITHIN_SECONDS = 5.0     # the 1 s caches, and Apache's own clock granularity, with room to spare


def seconds_until(apache, path, person, status, within=WITHIN_SECONDS) -> float:
    """How long until ``path`` answers ``status`` to ``person``; fails after ``within`` seconds."""
    started = time.monotonic()
    while (answer := apache.status(path, person.email, person.password)) != status:
        waited = time.monotonic() - started
        assert waited < within, f"{path} still answers {answer}, not {status}, after {waited:.1f} s"
        time.sleep(0.1)
    return time.monotonic() - started


def test_a_member_of_the_role_group_gets_the_page_and_a_non_member_gets_401(apache, app_world):
    member, other = app_world.person("membre"), app_world.person("autre")
    app_world.grant(member)
    assert apache.status(GROUP_PAGE, member.email, member.password) == 200
    assert apache.status(GROUP_PAGE, other.email, other.password) == 401
    assert apache.status(ANY_ACCOUNT_PAGE, other.email, other.password) == 200, "an active account is enough"
    assert apache.status(GROUP_PAGE) == 401, "no credentials, no page"


def test_a_wrong_or_empty_password_gets_401_on_both_paths(apache, app_world):
    member = app_world.person("membre")
    app_world.grant(member)
    for path in (GROUP_PAGE, ANY_ACCOUNT_PAGE, NO_STATUS_FILTER_PAGE):
        assert apache.status(path, member.email, member.password + "x") == 401, path
        assert apache.status(path, member.email, "") == 401, f"{path}: an empty password is no anonymous bind"
        assert apache.status(path, "personne@lassuranceretraite.fr", member.password) == 401, path


def test_a_disabled_account_gets_401_on_both_paths_within_seconds(apache, app_world):
    member = app_world.person("membre")
    app_world.grant(member)
    assert apache.status(GROUP_PAGE, member.email, member.password) == 200
    assert apache.status(ANY_ACCOUNT_PAGE, member.email, member.password) == 200
    app_world.disable(member)
    seconds_until(apache, GROUP_PAGE, member, 401)
    seconds_until(apache, ANY_ACCOUNT_PAGE, member, 401)


def test_a_disabled_account_cannot_log_in_even_where_the_application_checks_no_status(apache, app_world,
                                                                                      app_directory):
    """The directory refuses the bind itself (OpenLDAP: deploy/openldap/production/50-acls.ldif,
    answered 49, so 401; 389-DS: nsAccountLock, answered 53, which mod_authnz_ldap turns into 500:
    docs/applications.md)."""
    member = app_world.person("membre")
    assert apache.status(NO_STATUS_FILTER_PAGE, member.email, member.password) == 200
    app_world.disable(member)
    seconds_until(apache, NO_STATUS_FILTER_PAGE, member, 401 if app_directory.kind == "openldap" else 500)


def test_a_revoked_right_gets_401_within_seconds_and_the_account_still_logs_in(apache, app_world):
    member = app_world.person("membre")
    app_world.grant(member)
    assert apache.status(GROUP_PAGE, member.email, member.password) == 200
    app_world.revoke(member)
    seconds_until(apache, GROUP_PAGE, member, 401)
    assert apache.status(ANY_ACCOUNT_PAGE, member.email, member.password) == 200
