"""The raw limits syncd is compared with: plain ldap3 and OpenLDAP's C client, no syncd code.

* batched member adds: ldap3 ``modify`` with 500 values per request into one new group,
  the values naming real people (so the memberof overlay does its work, as in production),
  and the same with values naming no entry (the group's write alone);
* apply-shaped member adds: exactly the modifies apply sends for a set of accepted requests
  (one per group touched, that group's new values, the same controls), computed here from
  the requests (``apply_writes``), sent raw on one connection and on as many as apply shares
  its groups between, then taken back out (untimed);
* paged reads with ldap3 exactly as an application would write them (``SAFE_SYNC``,
  ``search(..., paged_size=1000)``, values decoded by ldap3), of every person with every
  mapped attribute, and of every group's member list;
* the same two reads with ``ldapsearch`` (output thrown away).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

from collections.abc import Iterable

from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, NONE, SAFE_SYNC, SUBTREE, Connection, Server

from syncd.directory import names
from syncd.mappings import Mappings

PAGED = "1.2.840.113556.1.4.319"
PERMISSIVE_MODIFY = "1.2.840.113556.1.4.1413"   # what apply sends when the server offers it


@dataclass
class Ldap:
    url: str
    bind_dn: str
    password: str


def connect(ldap: Ldap) -> Connection:
    conn = Connection(Server(ldap.url, get_info=NONE), ldap.bind_dn, ldap.password, client_strategy=SAFE_SYNC,
                      raise_exceptions=False, check_names=False, receive_timeout=120)
    ok, result, _, _ = conn.bind()
    if not ok:
        raise RuntimeError(f"bind failed: {result}")
    return conn


def people_attributes(m: Mappings) -> list[str]:
    people = m.directory.people
    return sorted({a.ldap for a in people.attributes.values()} | {"cn", people.disabled_attribute}, key=str.lower)


def ldap3_paged_read(ldap: Ldap, base: str, attributes: list[str], page_size: int = 1000) -> tuple[float, int, int]:
    """(seconds, entries, values) of a plain ldap3 paged search."""
    conn = connect(ldap)
    t = time.perf_counter()
    cookie = None
    entries = values = 0
    while True:
        _, result, response, _ = conn.search(base, "(objectClass=*)", SUBTREE, attributes=attributes,
                                             paged_size=page_size, paged_cookie=cookie)
        for item in response or []:
            if item.get("type") == "searchResEntry":
                entries += 1
                values += sum(len(v) if isinstance(v, list) else 1 for v in item["attributes"].values())
        try:
            cookie = result["controls"][PAGED]["value"]["cookie"]
        except (KeyError, TypeError):
            cookie = None
        if not cookie:
            break
    seconds = time.perf_counter() - t
    conn.unbind()
    return seconds, entries, values


def ldapsearch_read(ldap: Ldap, base: str, attributes: list[str], flt: str = "(objectClass=*)") -> float:
    """Seconds ``ldapsearch`` takes for the same paged read (its LDIF output discarded)."""
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        os.chmod(f.name, 0o600)
        f.write(ldap.password)
    try:
        t = time.perf_counter()
        subprocess.run(["ldapsearch", "-LLL", "-x", "-H", ldap.url, "-D", ldap.bind_dn, "-y", f.name, "-b", base,
                        "-E", "pr=1000/noprompt", flt, *attributes],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
        return time.perf_counter() - t
    finally:
        os.unlink(f.name)


def batched_member_adds(ldap: Ldap, m: Mappings, dns: list[str], group_name: str,
                        batch: int = 500) -> tuple[float, int]:
    """(values per second, values) adding ``dns`` to a new group, ``batch`` values per modify."""
    layout = m.directory
    conn = connect(ldap)
    group = names.group_dn(layout, group_name)
    placeholder = names.placeholder_dn(layout)
    _, result, _, _ = conn.add(group, attributes={"objectClass": ["groupOfNames"], "cn": group_name,
                                                  "member": [placeholder]})
    if result["result"] not in (0, 68):
        raise RuntimeError(f"cannot create the raw group: {result}")
    t = time.perf_counter()
    for i in range(0, len(dns), batch):
        _, result, _, _ = conn.modify(group, {"member": [(MODIFY_ADD, dns[i:i + batch])]})
        if result["result"] != 0:
            raise RuntimeError(f"batched add failed: {result}")
    seconds = time.perf_counter() - t
    conn.unbind()
    return len(dns) / seconds, len(dns)


def apply_writes(m: Mappings, requests: Iterable[tuple[str, str]], batch: int = 500) -> list[tuple[str, list[str]]]:
    """The (group dn, member values) modifies apply sends for these (account id, role key)
    requests, in its order: one batch of requests (the bench applies fewer than
    ``jobs.apply_batch_size``), grouped per group, the group with most requests first (then by
    name), values in request order, at most ``batch`` values (``ldap.batch_size``) per modify."""
    layout = m.directory
    by_group: dict[str, list[str]] = {}
    asked: dict[str, int] = {}
    for account_id, role_key in requests:
        role = m.role(role_key)
        assert role is not None, role_key
        values = by_group.setdefault(role.group, [])
        asked[role.group] = asked.get(role.group, 0) + 1
        dn = names.person_dn(layout, account_id)
        if dn not in values:
            values.append(dn)
    order = sorted(by_group, key=lambda group: (-asked[group], group))
    return [(names.group_dn(layout, group), by_group[group][i:i + batch])
            for group in order for i in range(0, len(by_group[group]), batch)]


def permissive_modify(conn: Connection, some_dn: str) -> bool:
    """Whether the server takes the permissive-modify control: listed in the root DSE, or (as
    OpenLDAP 2.5, which does not list it) a modify of a missing entry carrying it as critical is
    not refused as unavailableCriticalExtension (12) — the test apply makes (``permissive_modify: auto``)."""
    _, _, response, _ = conn.search("", "(objectClass=*)", BASE, attributes=["supportedControl"])
    if PERMISSIVE_MODIFY in (response or [{}])[0].get("attributes", {}).get("supportedControl", []):
        return True
    probe = "cn=bench-permissive-probe," + some_dn.split(",", 1)[1]
    _, result, _, _ = conn.modify(probe, {"description": [(MODIFY_REPLACE, ["probe"])]},
                                  controls=[(PERMISSIVE_MODIFY, True, None)])
    return result["result"] != 12


def apply_shaped_adds(ldap: Ldap, writes: list[tuple[str, list[str]]], connections: int = 1) -> dict[str, float]:
    """Send ``writes`` (``apply_writes``) as plain ldap3 modifies, with the permissive-modify
    control when the server lists it (as apply does), on ``connections`` connections at once
    sharing the list (as apply shares its groups, ``ldap.write_connections``); then remove the
    values again (untimed), so that the same requests can be applied next. Values per second,
    modifies, values, seconds."""
    conns = [connect(ldap) for _ in range(connections)]
    controls = [(PERMISSIVE_MODIFY, False, None)] if permissive_modify(conns[0], writes[0][0]) else None
    values = sum(len(v) for _, v in writes)
    todo, lock, errors = iter(writes), threading.Lock(), []

    def send(conn: Connection) -> None:
        while True:
            with lock:
                write = None if errors else next(todo, None)
            if write is None:
                return
            try:
                _, result, _, _ = conn.modify(write[0], {"member": [(MODIFY_ADD, write[1])]}, controls=controls)
            except Exception as exc:    # noqa: BLE001 — raised by the caller, whichever thread met it
                result = {"result": None, "error": repr(exc)}
            if result["result"] != 0:
                errors.append(result)
    others = [threading.Thread(target=send, args=(c,)) for c in conns[1:]]
    t = time.perf_counter()
    for thread in others:
        thread.start()
    send(conns[0])
    for thread in others:
        thread.join()
    seconds = time.perf_counter() - t
    if errors:
        raise RuntimeError(f"apply-shaped add failed: {errors[0]}")
    for group, chunk in writes:
        _, result, _, _ = conns[0].modify(group, {"member": [(MODIFY_DELETE, chunk)]})
        if result["result"] != 0:
            raise RuntimeError(f"apply-shaped add not undone: {result}")
    for conn in conns:
        conn.unbind()
    os.sync()   # the undo's writes reach the disk now, not in whatever is timed next
    return {"per_s": values / seconds, "values": values, "modifies": len(writes), "seconds": seconds,
            "permissive": controls is not None}


def raw_limits(ldap: Ldap, m: Mappings, account_ids: list[str], adds: int) -> dict[str, float]:
    layout = m.directory
    people = names.branch_dn(layout, "people")
    groups = names.branch_dn(layout, "groups")
    attrs = people_attributes(m)
    out: dict[str, float] = {}
    out["ldap3_people_s"], out["people"], _ = ldap3_paged_read(ldap, people, attrs)
    out["ldap3_groups_s"], _, out["member_values"] = ldap3_paged_read(ldap, groups, ["member"], page_size=10)
    out["ldapsearch_people_s"] = ldapsearch_read(ldap, people, attrs)
    out["ldapsearch_groups_s"] = ldapsearch_read(ldap, groups, ["member"])
    out["ldap3_read_s"] = out["ldap3_people_s"] + out["ldap3_groups_s"]
    out["ldapsearch_read_s"] = out["ldapsearch_people_s"] + out["ldapsearch_groups_s"]
    # Real people: the memberof overlay writes memberOf on each (one more write, and fsync, per value).
    out["member_adds_per_s"], out["member_adds"] = batched_member_adds(
        ldap, m, [names.person_dn(layout, a) for a in account_ids[:adds]], "bench-raw-adds")
    # Values naming no entry: the group's write alone (what the overlay costs, by difference).
    people = names.branch_dn(layout, "people")
    out["dangling_adds_per_s"], _ = batched_member_adds(
        ldap, m, [f"uid=nobody-{i},{people}" for i in range(adds)], "bench-raw-dangling")
    return out
