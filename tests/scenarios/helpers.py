"""Steps the scenarios share: people, portal inserts, reading back LDAP and mail."""

from __future__ import annotations

from sqlalchemy import insert, select

from syncd import operator
from syncd.directory import names
from syncd.store import repo
from syncd.store.db import transaction
from syncd.store.tables import requests

REQUESTER = "a.charenne@lassuranceretraite.fr"
CORRESPONDENT = "c.martin@lassuranceretraite.fr"
ADMIN = "admin@ucanss.fr"


def people(rt, *, correspondent=True, admin=True):
    ids = {"requester": operator.add_account(rt, REQUESTER, "Aristide", "Charenne", "CARSAT-RA")}
    if correspondent:
        ids["correspondent"] = operator.add_account(rt, CORRESPONDENT, "Claire", "Martin", "CARSAT-RA")
        operator.add_decider(rt, CORRESPONDENT, "CARSAT-RA")
    if admin:
        ids["admin"] = operator.add_account(rt, ADMIN, "Alice", "Admin", "CARSAT-RA")
        operator.add_decider(rt, ADMIN, None)
    return ids


def portal_inserts(rt, **values) -> int:
    """Insert a row exactly as docs/queue.md tells the portal to (status left to its default)."""
    values.setdefault("submitted_at", rt.clock())
    with transaction(rt.engine) as conn:
        return conn.execute(insert(requests).values(**values)).inserted_primary_key[0]


def habilitation(rt, role="accords-locaux-acces", email=REQUESTER) -> int:
    return portal_inserts(rt, kind="habilitation", email=email, role_key=role)


def request_row(rt, request_id):
    with transaction(rt.engine) as conn:
        return dict(conn.execute(select(requests).where(requests.c.id == request_id)).mappings().one())


def events(rt, request_id):
    with transaction(rt.engine) as conn:
        return [e["event"] for e in repo.events_of(conn, request_id)]


def member_dns(rt, role_key):
    return rt.directory.members_of_group(rt.mappings.role(role_key).group)


def person(rt, account_id):
    return names.normalise_dn(names.person_dn(rt.mappings.directory, account_id))


def mails_to(smtp_server, address):
    return [m for m in smtp_server.messages if address in m["To"]]
