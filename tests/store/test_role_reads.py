"""Reconcile's reads of roles' rows: several roles at once give what one role read alone gives."""

from __future__ import annotations

from sqlalchemy import insert

from syncd.store import grants
from syncd.store.db import transaction
from syncd.store.tables import accounts, memberships, organisations

from .rows import T0

# The last id holds the separator the batched read joins ids with: its role is read row by row.
IDS = ["a1", "a2", "a3", "a4", "odd\x1fid"]


def _seed(engine) -> None:
    with transaction(engine) as conn:
        conn.execute(insert(organisations), [{"code": "ORG", "name": "Org", "branch": "b", "updated_at": T0}])
        conn.execute(insert(accounts), [
            {"id": account_id, "email": f"{n}@example.org", "given_name": "A", "family_name": "B",
             "primary_organisation": "ORG", "internal": True, "status": "active", "created_at": T0,
             "updated_at": T0} for n, account_id in enumerate(IDS)])
        conn.execute(insert(memberships), [
            {"account_id": account_id, "role_key": role_key, "granted_at": T0, "revoked_at": revoked}
            for account_id, role_key, revoked in (
                ("a1", "held-only", None), ("a2", "held-only", None),
                ("a1", "mixed", None), ("a3", "mixed", T0), ("a4", "mixed", T0), ("a2", "mixed", None),
                ("a3", "revoked-only", T0),
                ("a1", "separator", None), ("odd\x1fid", "separator", None), ("a2", "separator", T0))])


def test_several_roles_read_at_once_give_each_role_s_held_and_revoked_ids_as_read_alone(engine):
    _seed(engine)
    keys = ["held-only", "mixed", "revoked-only", "separator", "no-rows"]
    with grants.role_rows_reader(engine) as reader:
        many = reader.ids_many(keys)
        alone = {key: reader.ids(key) for key in keys}
    def sorted_ids(found):     # neither read orders a role's ids (string_agg has no ORDER BY): reconcile makes sets of them
        return {key: (sorted(held), sorted(revoked)) for key, (held, revoked) in found.items()}
    assert sorted_ids(many) == sorted_ids(alone)
    assert sorted_ids(many) == {
        "held-only": (["a1", "a2"], []), "mixed": (["a1", "a2"], ["a3", "a4"]), "revoked-only": ([], ["a3"]),
        "separator": (["a1", "odd\x1fid"], ["a2"]), "no-rows": ([], [])}
