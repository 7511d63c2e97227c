"""Steps the reconciliation tests share: accounts, grants, reading LDAP back, making drift."""

from __future__ import annotations

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE
from sqlalchemy import insert, select, update

from syncd import operator
from syncd.directory import names
from syncd.directory.connection import open_connection, safe_close
from syncd.reconcile.config import ReconcileConfig
from syncd.reconcile.service import run_reconcile
from syncd.store.db import transaction
from syncd.store.tables import accounts, memberships


def account(rt, name: str, org: str = "CARSAT-RA", **over) -> str:
    """An active account, written to LDAP (as ``syncd account add`` does)."""
    account_id = operator.add_account(rt, f"{name}@lassuranceretraite.fr", name.capitalize(), "Testeur", org)
    if over:
        with transaction(rt.engine) as conn:
            conn.execute(update(accounts).where(accounts.c.id == account_id).values(**over))
    return account_id


def grant(rt, account_id: str, role_key: str, *, in_ldap: bool = True) -> None:
    """A membership syncd granted (and, by default, already wrote to LDAP)."""
    now = rt.clock()
    with transaction(rt.engine) as conn:
        conn.execute(insert(memberships).values(account_id=account_id, role_key=role_key, granted_at=now,
                                                applied_at=now if in_ldap else None))
    if in_ldap:
        rt.directory.add_members(group(rt, role_key), [dn(rt, account_id)])


def revoke(rt, account_id: str, role_key: str) -> None:
    with transaction(rt.engine) as conn:
        conn.execute(update(memberships).where(memberships.c.account_id == account_id,
                                               memberships.c.role_key == role_key).values(revoked_at=rt.clock()))


def group(rt, role_key: str) -> str:
    return rt.mappings.role(role_key).group


def dn(rt, account_id: str) -> str:
    return names.person_dn(rt.mappings.directory, account_id)


def members(rt, role_key: str) -> set[str]:
    return rt.directory.members_of_group(group(rt, role_key))


def key(rt, account_id: str) -> str:
    return names.normalise_dn(dn(rt, account_id))


def entry(rt, account_id: str, *attrs: str) -> dict | None:
    return rt.directory.read_entry(dn(rt, account_id), list(attrs) or ["mail"])


class Ldap:
    """Changes made behind syncd's back, as another tool or an operator would."""

    def __init__(self, rt):
        self.rt = rt

    def _do(self, op: str, *args, **kwargs):
        conn = open_connection(self.rt.settings.ldap)
        try:
            _, result, _, _ = getattr(conn, op)(*args, **kwargs)
        finally:
            safe_close(conn)
        assert result["result"] == 0, result
        return result

    def replace(self, target_dn: str, attr: str, values: list[str]):
        return self._do("modify", target_dn, {attr: [(MODIFY_REPLACE, values)]})

    def add_member(self, role_key: str, member_dn: str):
        return self._do("modify", names.group_dn(self.rt.mappings.directory, group(self.rt, role_key)),
                        {"member": [(MODIFY_ADD, [member_dn])]})

    def remove_member(self, role_key: str, member_dn: str):
        return self._do("modify", names.group_dn(self.rt.mappings.directory, group(self.rt, role_key)),
                        {"member": [(MODIFY_DELETE, [member_dn])]})

    def delete(self, target_dn: str):
        return self._do("delete", target_dn)

    def add_person(self, uid: str, **attrs):
        values = {"objectClass": ["inetOrgPerson", "syncdAccount"], "uid": uid, "cn": uid, "sn": uid}
        values.update(attrs)
        return self._do("add", names.person_dn(self.rt.mappings.directory, uid), attributes=values)


def reconcile(rt, *, dry_run=False, force=False, account=None, group=None, **config):
    """A run with the default guards, except the percentage: a handful of test values always exceed it."""
    config.setdefault("max_percent", None)
    return run_reconcile(rt, ReconcileConfig(**config), dry_run=dry_run, force=force, account=account, group=group)


def account_row(rt, account_id: str):
    with transaction(rt.engine) as conn:
        return conn.execute(select(accounts).where(accounts.c.id == account_id)).mappings().first()
