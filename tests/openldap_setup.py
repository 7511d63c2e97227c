"""OpenLDAP configured the way deploy/openldap/README.md tells an operator to, for the tests.

* ``documented_sequence()``: the README's tested shell block (the sequence for an existing
  server, and the end of a new one), as text;
* ``configure_as_documented(server, folder, base=…)``: runs that block on a running ``DevSlapd``
  (its settings lines, and only those, replaced by this server's), then records syncd's service
  account on the server (``server.service_account``), so ``server.ldap_settings()`` binds as it;
* ``serve_base(server, base)``: the base entry (added as the root DN, as an operator does) and
  ``50-acls.ldif`` applied again for that base, for a test that gets its own subtree;
* ``replicating_providers(...)``: two providers seeded and configured that way, then
  ``70-replication.ldif``; ``tls_server(...)`` / ``apply_tls(...)``: ``80-tls.ldif`` applied;
* ``read_config(server)``: what ``cn=config`` says now, read over ``ldapi://``;
  ``changes_of(render(name, suffix, base))``: what a production file says it should say.

The access rules name one base: a server serves the base of the last ``serve_base`` call, so
tests sharing a server take turns (pytest runs them one after the other).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from syncd.devslapd import DevSlapd, DevSlapdError

REPO = Path(__file__).resolve().parents[1]
README = REPO / "deploy" / "openldap" / "README.md"
PRODUCTION = REPO / "deploy" / "openldap" / "production"
MDB = "olcDatabase={1}mdb,cn=config"

SYNCD_PASSWORD = "syncd-service-password-for-tests"
APP_PASSWORD = "application-password-for-tests"


def syncd_dn(suffix: str) -> str:
    return f"cn=syncd,ou=services,{suffix}"


def app_dn(suffix: str) -> str:
    return f"cn=example-app,ou=applications,ou=services,{suffix}"


def documented_sequence() -> str:
    """The shell block of the README that follows the ``<!-- tested: … -->`` marker."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- tested: [^>]*-->\s*```sh\n(.*?)```", text, re.S)
    if not found:
        raise AssertionError(f"{README} has no tested ```sh block")
    return found.group(1)


def _settings_replaced(block: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        block, count = re.subn(rf"(?m)^{name}=.*$", f"{name}='{value}'", block)
        if count != 1:
            raise AssertionError(f"the README's block sets {name} {count} times, not once")
    return block


def run_documented_sequence(server: DevSlapd, folder: Path, *, base: str | None = None) -> subprocess.CompletedProcess:
    """Run the README's block against ``server``; returns what the shell did (not checked)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"ADMIN_PW_FILE": server.root_password, "SYNCD_PW_FILE": SYNCD_PASSWORD, "APP_PW_FILE": APP_PASSWORD}
    values = {"S": server.suffix, "B": base or server.suffix, "H": server.ldapi_url}
    for name, secret in files.items():
        path = folder / name.lower()
        path.write_text(secret, encoding="utf-8")
        path.chmod(0o600)
        values[name] = str(path)
    script = _settings_replaced(documented_sequence(), values)
    return subprocess.run(["sh", "-e", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)


def configure_as_documented(server: DevSlapd, folder: Path, *, base: str | None = None) -> DevSlapd:
    done = run_documented_sequence(server, folder, base=base)
    if done.returncode != 0:
        raise DevSlapdError(f"the README's sequence failed (exit {done.returncode}):\n{done.stderr}")
    server.service_account = (syncd_dn(server.suffix), SYNCD_PASSWORD)
    return server


def render(name: str, suffix: str, base: str, **values: str) -> str:
    text = (PRODUCTION / name).read_text(encoding="utf-8")
    for key, value in {"SUFFIX": suffix, "BASE": base, **values}.items():
        text = text.replace(f"@{key}@", value)
    return text


def serve_base(server: DevSlapd, base: str, *, add_entry: bool = True) -> None:
    """Make ``base`` the one syncd's access rules name (a test's own subtree).

    ``add_entry=False`` for a provider that gets the base entry by replication.
    """
    if getattr(server, "served_base", None) == base:
        return
    from ldap3 import NONE, SAFE_SYNC, Connection, Server
    if add_entry and base.lower() != server.suffix.lower():
        conn = Connection(Server(server.url, get_info=NONE), server.root_dn, server.root_password,
                          client_strategy=SAFE_SYNC, auto_bind=True)
        try:
            rdn = base.split(",", 1)[0]
            attr, value = rdn.split("=", 1)
            _, result, _, _ = conn.add(base, ["organizationalUnit"] if attr.lower() == "ou" else ["domain"],
                                       {attr: value})
            if result["result"] not in (0, 68):
                raise DevSlapdError(f"cannot add the base entry {base}: {result}")
        finally:
            conn.unbind()
    done = server.ldap_tool("ldapmodify", input=render("50-acls.ldif", server.suffix, base))
    if done.returncode != 0:
        raise DevSlapdError(f"50-acls.ldif for {base} was refused: {done.stderr}")
    server.served_base = base


def replicating_providers(folders: list[Path], ports: list[int], ca_file: Path, *,
                          replicator_password: str = "replicator-password-for-tests") -> list[DevSlapd]:
    """Two providers made as an operator makes them, started and replicating each other.

    The first: a stock Debian slapd, the README's block, the replicator's entry (as the root DN,
    like syncd's in 60-service-accounts.ldif). The second: Debian's configuration seeded with the
    first one's data (``slapcat``/``slapadd``, so both hold the same entries, same entryUUIDs),
    then the README's block. Then ``70-replication.ldif`` on each, applied with ldapmodify.
    The providers' URLs are plain ``ldap://`` here (``@CA_FILE@`` is filled but not used): TLS
    between providers is 80-tls.ldif's business, tested on its own.
    """
    from ldap3 import NONE, SAFE_SYNC, Connection, Server
    from syncd.devslapd import ssha_hash
    # written as slapd's -h lists them: at start slapd finds its own olcServerID by that text
    urls = [f"ldap://127.0.0.1:{p}/" for p in ports]
    first = DevSlapd(folders[0] / "server", port=ports[0], initial="debian").start()
    configure_as_documented(first, folders[0] / "secrets")
    conn = Connection(Server(first.url, get_info=NONE), first.root_dn, first.root_password,
                      client_strategy=SAFE_SYNC, auto_bind=True)
    _, result, _, _ = conn.add(f"cn=replicator,ou=services,{first.suffix}", ["applicationProcess", "simpleSecurityObject"],
                               {"cn": "replicator", "userPassword": ssha_hash(replicator_password)})
    conn.unbind()
    if result["result"] != 0:
        raise DevSlapdError(f"cannot add the replicator: {result}")
    seed = folders[1] / "seed.ldif"
    folders[1].mkdir(parents=True, exist_ok=True)
    seed.write_text(first.slapcat(), encoding="utf-8")
    second = DevSlapd(folders[1] / "server", port=ports[1], initial="debian", initial_data=seed,
                      root_password=first.root_password).start()
    configure_as_documented(second, folders[1] / "secrets")
    replication = render("70-replication.ldif", first.suffix, first.suffix, PROVIDER1_URL=urls[0],
                         PROVIDER2_URL=urls[1], REPLICATOR_PASSWORD=replicator_password, CA_FILE=str(ca_file))
    for server in (first, second):
        done = server.ldap_tool("ldapmodify", input=replication)
        if done.returncode != 0:
            raise DevSlapdError(f"70-replication.ldif was refused on {server.url}: {done.stderr}")
    return [first, second]


def apply_tls(server: DevSlapd, cert: Path, key: Path, ca: Path) -> None:
    """``80-tls.ldif`` filled with these PEM files, applied with ldapmodify."""
    done = server.ldap_tool("ldapmodify", input=render("80-tls.ldif", server.suffix, server.suffix, CERT_FILE=str(cert),
                                                       KEY_FILE=str(key), CA_FILE=str(ca)))
    if done.returncode != 0:
        raise DevSlapdError(f"80-tls.ldif was refused: {done.stderr}")


def tls_server(folder: Path, cert: Path, key: Path, ca: Path) -> DevSlapd:
    """A production-configured slapd with ``80-tls.ldif``: StartTLS on its port, and LDAPS on a
    second one (slapd restarted with an ``ldaps://`` listener, as SLAPD_SERVICES gets one)."""
    server = DevSlapd(folder / "server", initial="debian").start()
    configure_as_documented(server, folder / "secrets")
    apply_tls(server, cert, key, ca)
    server.stop()
    server.enable_ldaps()
    return server.start()


# -- reading cn=config back ------------------------------------------------------------------

def parse_ldif(text: str) -> dict[str, dict[str, list[str]]]:
    """``ldapsearch -LLL`` output → ``{dn: {attribute (lower case): [values]}}``."""
    entries: dict[str, dict[str, list[str]]] = {}
    for block in re.split(r"\n\s*\n", text.replace("\n ", "")):
        lines = [line for line in block.splitlines() if line and not line.startswith("#")]
        if not lines:
            continue
        dn = lines[0].split(":", 1)[1].strip()
        attrs: dict[str, list[str]] = {}
        for line in lines[1:]:
            if ":" not in line:
                continue        # the "-" between the changes of a modify record
            name, value = line.split(":", 1)
            attrs.setdefault(name.strip().lower(), []).append(value.strip())
        entries[dn] = attrs
    return entries


def read_config(server: DevSlapd) -> dict[str, dict[str, list[str]]]:
    done = server.ldap_tool("ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-b", "cn=config", "(objectClass=*)", "*")
    if done.returncode != 0:
        raise DevSlapdError(f"cannot read cn=config: {done.stderr}")
    return parse_ldif(done.stdout)


def changes_of(ldif: str) -> dict[str, dict[str, list[str]]]:
    """The values a change-record LDIF sets (``replace:``/``add:``), by DN and attribute."""
    out: dict[str, dict[str, list[str]]] = {}
    for dn, attrs in parse_ldif("\n".join(l for l in ldif.splitlines() if not l.startswith("#"))).items():
        values = out.setdefault(dn, {})
        for name, vals in attrs.items():
            if name not in ("changetype", "add", "replace", "delete", "-"):
                values.setdefault(name, []).extend(vals)
    return out


def strip_order(values: list[str]) -> list[str]:
    return [re.sub(r"^\{\d+\}", "", v) for v in values]
