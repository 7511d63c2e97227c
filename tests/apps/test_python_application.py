"""docs/applications.md's Python example (ldap3), run as written against syncd's directory.

The block is executed with the doc's example values swapped for this directory's, and its
``has_role`` asked about people whose rights came through syncd's workflow.
"""

from __future__ import annotations

import pytest

from tests.apps.docblocks import doc_block, substitute
from tests.scenarios.shipped_mappings import SHIPPED_BASE

pytestmark = pytest.mark.slapd


@pytest.fixture
def has_role(app_directory, tmp_path):
    secret = tmp_path / "ldap.password"
    secret.write_text(app_directory.app_password + "\n")
    code = substitute(doc_block("python"), {
        '"ldap://ldap.example.org"': repr(app_directory.url),
        '"/etc/example-app/ldap.password"': repr(str(secret)),
        SHIPPED_BASE: app_directory.suffix,
    })
    namespace: dict = {}
    exec(compile(code, "docs/applications.md (python example)", "exec"), namespace)
    return namespace["has_role"]


def test_the_python_example_says_yes_to_a_member_with_their_password_only(has_role, app_world):
    member, other = app_world.person("membre"), app_world.person("autre")
    app_world.grant(member)
    assert has_role(member.email, member.password) is True
    assert has_role(other.email, other.password) is False, "not in the group"
    assert has_role(member.email, member.password + "x") is False, "wrong password"
    assert has_role(member.email, "") is False, "an empty password is an anonymous bind, not a login"
    pattern = member.email.split("@")[0] + "*"      # unescaped, it would find the member alone
    assert has_role(pattern, member.password) is False, "the login is escaped, never a wildcard"


def test_the_python_example_says_no_once_the_right_is_revoked_or_the_account_disabled(has_role, app_world):
    revoked, disabled = app_world.person("retire"), app_world.person("desactive")
    for person in (revoked, disabled):
        app_world.grant(person)
        assert has_role(person.email, person.password) is True
    app_world.revoke(revoked)
    app_world.disable(disabled)
    assert has_role(revoked.email, revoked.password) is False
    assert has_role(disabled.email, disabled.password) is False
