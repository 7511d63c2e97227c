"""DevSlapd's options for the operations tests: Debian's own starting configuration, the
``ldapi://`` socket that manages it, and a later ``ldaps://`` listener. (The production files
are applied live with ldapmodify: tests/openldap_setup.py; there is no offline patcher.)"""

from __future__ import annotations

import base64
import os
import re

import pytest

from syncd.devslapd import DEBIAN_INIT, DevSlapd, DevSlapdError
from tests.ops.ldif import parse_change_records


def test_the_options_leave_the_default_rendering_alone(tmp_path):
    plain = DevSlapd(tmp_path / "a")
    assert plain.initial == "template" and not plain.ldapi and plain.service_account is None
    with pytest.raises(DevSlapdError, match="enable_ldaps"):
        _ = plain.ldaps_url
    with pytest.raises(DevSlapdError, match="'template'"):
        DevSlapd(tmp_path / "b", initial="rhel")
    assert DevSlapd(tmp_path / "c", initial="debian").ldapi, "cn=config is managed over ldapi"


@pytest.mark.skipif(not DEBIAN_INIT.is_file(), reason="the Debian slapd package's slapd.init.ldif is not here")
def test_debians_configuration_is_rendered_as_its_postinst_does_with_only_the_folders_changed(tmp_path):
    server = DevSlapd(tmp_path / "d", suffix="dc=example,dc=org", initial="debian")
    rendered = server.render_debian_config()
    original = DEBIAN_INIT.read_text()
    assert "@" not in "".join(l for l in rendered.splitlines() if not l.startswith("#"))
    assert "olcSuffix: dc=example,dc=org" in rendered and "olcRootPW: {SSHA}" in rendered
    assert server.root_password not in rendered
    for line in ("olcDbIndex: cn,uid eq", "olcDbIndex: member,memberUid eq", "olcDbMaxSize: 1073741824",
                 "olcAccess: to *\n  by * read"):
        assert line in original and line in rendered, "Debian's own values stay"
    changed = {a for a in re.findall(r"(?m)^(\w+):", original)
               if sorted(re.findall(rf"(?m)^{a}:.*$", original)) != sorted(re.findall(rf"(?m)^{a}:.*$", rendered))}
    expected = {"olcPidFile", "olcArgsFile", "olcDbDirectory", "olcSuffix", "olcRootDN", "olcRootPW"}
    if os.geteuid() != 0:
        expected.add("olcAccess")            # the peercred identity of the user running slapd
    assert changed <= expected | {"olcModulePath", "include"}, changed


def test_change_records_parse_with_base64_dns_decoded():
    encoded = base64.b64encode("cn=Émile,dc=example,dc=org".encode()).decode()
    records = parse_change_records(f"# a comment\ndn:: {encoded}\nchangetype: modify\nreplace: description\n"
                                   "description: x\n-\n\ndn: cn=b,dc=example,dc=org\nobjectClass: device\ncn: b\n")
    assert [(dn, kind) for dn, kind, _ in records] == [("cn=Émile,dc=example,dc=org", "modify"),
                                                      ("cn=b,dc=example,dc=org", "add")]
    assert records[0][2] == [("replace", "description", ["description: x"])]


def test_a_delete_given_in_base64_is_read_as_the_delete_it_is():
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()
    access = b64("{0}to * by * read")
    records = parse_change_records(f"dn: olcDatabase={{1}}mdb,cn=config\nchangetype:: {b64('modify')}\n"
                                   f"delete:: {b64('olcAccess')}\nolcAccess:: {access}\n-\n")
    assert records == [("olcDatabase={1}mdb,cn=config", "modify", [("delete", "olcaccess", [f"olcAccess:: {access}"])])]
