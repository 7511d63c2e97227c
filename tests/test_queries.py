"""The portal's read queries (history, synthesis, contacts, a decider's work), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from syncd.store import queries
from syncd.store.db import transaction
from syncd.store.tables import accounts, deciders, memberships, organisations, request_deciders, requests
from tests.factories import T0, mappings

M = mappings()


def account(conn, account_id, email, given, family, org="CARSAT-RA", status="active"):
    conn.execute(insert(accounts).values(id=account_id, email=email, given_name=given, family_name=family,
                                         primary_organisation=org, internal=True, status=status,
                                         created_at=T0, updated_at=T0))


def request(conn, **values) -> int:
    values.setdefault("submitted_at", T0)
    values.setdefault("status", "pending")
    return conn.execute(insert(requests).values(**values)).inserted_primary_key[0]


@pytest.fixture
def data(engine):
    """Aristide (CARSAT-RA) and his requests; Claire and Chloé, correspondents; Alice, central administrator."""
    with transaction(engine) as conn:
        conn.execute(insert(organisations), [
            {"code": "CARSAT-RA", "name": "CARSAT Rhône-Alpes", "branch": "retraite", "updated_at": T0},
            {"code": "CPAM-75", "name": "CPAM de Paris", "branch": "maladie", "updated_at": T0}])
        account(conn, "u-req", "a.charenne@lassuranceretraite.fr", "Aristide", "Charenne")
        account(conn, "u-claire", "c.martin@lassuranceretraite.fr", "Claire", "Martin")
        account(conn, "u-chloe", "c.aubert@lassuranceretraite.fr", "Chloé", "Aubert")
        account(conn, "u-gone", "g.parti@lassuranceretraite.fr", "Gaston", "Parti", status="disabled")
        account(conn, "u-paris", "p.durand@assurance-maladie.fr", "Paul", "Durand", org="CPAM-75")
        account(conn, "u-admin", "admin@ucanss.fr", "Alice", "Admin")
        conn.execute(insert(deciders), [
            {"account_id": "u-claire", "scope": "correspondent", "organisation_code": "CARSAT-RA", "created_at": T0},
            {"account_id": "u-chloe", "scope": "correspondent", "organisation_code": "CARSAT-RA", "created_at": T0},
            {"account_id": "u-gone", "scope": "correspondent", "organisation_code": "CARSAT-RA", "created_at": T0},
            {"account_id": "u-admin", "scope": "central", "organisation_code": None, "created_at": T0}])
        ids = {
            "account": request(conn, kind="account", email="a.charenne@lassuranceretraite.fr", account_id="u-req",
                               organisation_code="CARSAT-RA", status="accepted", submitted_at=T0 - timedelta(days=30),
                               decided_at=T0 - timedelta(days=29), applied_at=T0 - timedelta(days=29)),
            "tacit": request(conn, kind="habilitation", email="a.charenne@lassuranceretraite.fr", account_id="u-req",
                             organisation_code="CARSAT-RA", role_key="accords-locaux-acces", status="accepted_tacitly",
                             submitted_at=T0 - timedelta(days=20), decided_at=T0 - timedelta(days=10),
                             applied_at=T0 - timedelta(days=10)),
            "refused": request(conn, kind="habilitation", email="a.charenne@lassuranceretraite.fr",
                               account_id="u-req", organisation_code="CARSAT-RA", role_key="greve-declaration",
                               status="refused", submitted_at=T0 - timedelta(days=5), decided_at=T0 - timedelta(days=4),
                               comment="Réservé aux déclarants"),
            "rejected": request(conn, kind="habilitation", email="A.Charenne@lassuranceretraite.fr",
                                role_key="inconnu", status="rejected", submitted_at=T0 - timedelta(days=3),
                                reason="Habilitation inconnue"),
            "pending": request(conn, kind="habilitation", email="a.charenne@lassuranceretraite.fr",
                               account_id="u-req", organisation_code="CARSAT-RA", role_key="opim-local",
                               submitted_at=T0 - timedelta(days=1), deadline_at=T0 + timedelta(days=4)),
            "someone_else": request(conn, kind="habilitation", email="p.durand@assurance-maladie.fr",
                                    account_id="u-paris", organisation_code="CPAM-75", role_key="opim-local"),
        }
        for row in [
            {"account_id": "u-req", "role_key": "accords-locaux-acces", "granted_by_request": ids["tacit"],
             "granted_at": T0 - timedelta(days=10), "applied_at": T0 - timedelta(days=10)},
            {"account_id": "u-req", "role_key": "opim-local", "granted_at": T0 - timedelta(days=2)},
            {"account_id": "u-req", "role_key": "greve-declaration", "granted_at": T0 - timedelta(days=100),
             "revoked_at": T0 - timedelta(days=50)},
            {"account_id": "u-req", "role_key": "ancien-role", "granted_at": T0 - timedelta(days=100),
             "applied_at": T0 - timedelta(days=100)},
            {"account_id": "u-paris", "role_key": "opim-local", "granted_at": T0},
        ]:
            conn.execute(insert(memberships).values(**row))
    return ids


def read(engine, fn, *args, **kwargs):
    with transaction(engine, readonly=True) as conn:
        return fn(conn, *args, **kwargs)


def test_history_lists_every_request_of_the_person_newest_first_with_the_labels_users_see(engine, data):
    items = read(engine, queries.request_history, "u-req", M)
    assert [i.request_id for i in items] == [data["pending"], data["rejected"], data["refused"], data["tacit"],
                                             data["account"]]
    assert [(i.description, i.status_label) for i in items] == [
        ("OPIM - Organisme Local", "En attente validation d'un gestionnaire"),
        ("inconnu", "Rejetée"),
        ("Grève - Déclaration des mouvements", "Refusée"),
        ("Accords locaux - Accès organisme", "Acceptée tacitement"),
        ("Création de compte", "Acceptée"),
    ]
    pending, rejected, refused = items[0], items[1], items[2]
    assert pending.deadline == T0 + timedelta(days=4) and pending.date.tzinfo is not None
    assert refused.comment == "Réservé aux déclarants" and refused.decided_at == T0 - timedelta(days=4)
    assert rejected.reason == "Habilitation inconnue"
    assert items[3].application_label == "Accords locaux"


def test_history_of_someone_without_an_account_is_found_by_e_mail(engine, data):
    items = read(engine, queries.request_history, None, M, email="a.charenne@LASSURANCERETRAITE.fr")
    assert [i.request_id for i in items] == [data["rejected"]]
    assert read(engine, queries.request_history, None, M) == []


def test_synthesis_groups_the_roles_held_now_by_application_with_their_state(engine, data):
    apps = read(engine, queries.rights_synthesis, "u-req", M)
    assert [(a.application_label, [r.label for r in a.roles]) for a in apps] == [
        ("Accords locaux", ["Accords locaux - Accès organisme"]),
        ("OPIM", ["OPIM - Organisme Local"]),
        ("Autres habilitations", ["ancien-role"]),
    ]
    accords, opim = apps[0].roles[0], apps[1].roles[0]
    assert (accords.state, accords.accepted_tacitly) == ("applied", True)
    assert (opim.state, opim.accepted_tacitly) == ("accepted", False)
    assert "greve-declaration" not in {r.role_key for a in apps for r in a.roles}, "a revoked role is not held"


def test_synthesis_leaves_out_an_expired_habilitation_when_given_the_time(engine, data):
    from sqlalchemy import update
    with transaction(engine) as conn:
        conn.execute(update(memberships).where(memberships.c.role_key == "opim-local",
                                               memberships.c.account_id == "u-req")
                     .values(expires_at=T0 - timedelta(seconds=1)))
    labels = [a.application_label for a in read(engine, queries.rights_synthesis, "u-req", M, now=T0)]
    assert "OPIM" not in labels
    assert "OPIM" in [a.application_label for a in read(engine, queries.rights_synthesis, "u-req", M)]


def test_contacts_are_the_active_correspondents_of_the_primary_organisation(engine, data):
    c = read(engine, queries.contacts, "u-req")
    assert (c.organisation_code, c.organisation_name, c.central) == ("CARSAT-RA", "CARSAT Rhône-Alpes", False)
    assert [(x.name, x.email) for x in c.contacts] == [("Chloé Aubert", "c.aubert@lassuranceretraite.fr"),
                                                       ("Claire Martin", "c.martin@lassuranceretraite.fr")]


def test_contacts_fall_back_to_the_central_administrators_when_the_organisation_has_no_correspondent(engine, data):
    c = read(engine, queries.contacts, "u-paris")
    assert c.central and [x.email for x in c.contacts] == ["admin@ucanss.fr"]
    assert read(engine, queries.contacts, "nobody").contacts == ()


def test_a_correspondent_is_not_their_own_contact(engine, data):
    assert [x.email for x in read(engine, queries.contacts, "u-claire").contacts] == ["c.aubert@lassuranceretraite.fr"]


@pytest.fixture
def work(engine, data):
    """Five pending requests routed to Claire, one to Chloé only, one already decided."""
    made = []
    with transaction(engine) as conn:
        for n, (role, org, deadline_days) in enumerate([("opim-local", "CARSAT-RA", 3),
                                                        ("accords-locaux-acces", "CARSAT-RA", 1),
                                                        ("opim-local", "CPAM-75", 9),
                                                        ("greve-declaration", "CARSAT-RA", 5),
                                                        ("opim-local", "CARSAT-RA", 7)]):
            rid = request(conn, kind="habilitation", email="a.charenne@lassuranceretraite.fr", account_id="u-req",
                          organisation_code=org, role_key=role, submitted_at=T0 + timedelta(hours=n),
                          deadline_at=T0 + timedelta(days=deadline_days))
            made.append(rid)
        account_request = request(conn, kind="account", email="n.nouveau@lassuranceretraite.fr",
                                  given_name="Noé", family_name="Nouveau", organisation_code="CARSAT-RA",
                                  submitted_at=T0 + timedelta(hours=9), deadline_at=T0 + timedelta(days=2))
        made.append(account_request)
        chloe_only = request(conn, kind="habilitation", email="x@lassuranceretraite.fr", role_key="opim-local",
                             organisation_code="CARSAT-RA", deadline_at=T0)
        decided = request(conn, kind="habilitation", email="x@lassuranceretraite.fr", role_key="opim-local",
                          organisation_code="CARSAT-RA", status="accepted")
        conn.execute(insert(request_deciders), [{"request_id": r, "account_id": "u-claire"}
                                                for r in made + [decided]] +
                     [{"request_id": chloe_only, "account_id": "u-chloe"}])
    return made


def test_a_deciders_pending_requests_come_soonest_deadline_first(engine, work):
    page = read(engine, queries.pending_for_decider, "u-claire", mappings=M)
    assert page.total == 6
    assert [i.request_id for i in page.items] == [work[1], work[5], work[0], work[3], work[4], work[2]]
    account_item = page.items[1]
    assert (account_item.description, account_item.requester_name) == ("Création de compte", "Noé Nouveau")
    assert page.items[0].requester_name == "Aristide Charenne"
    assert page.items[0].description == "Accords locaux - Accès organisme"


def test_a_deciders_pending_requests_sort_filter_and_page(engine, work):
    newest = read(engine, queries.pending_for_decider, "u-claire", sort="-submitted", page_size=2)
    assert [i.request_id for i in newest.items] == [work[5], work[4]] and newest.total == 6
    second = read(engine, queries.pending_for_decider, "u-claire", sort="-submitted", page=2, page_size=2)
    assert [i.request_id for i in second.items] == [work[3], work[2]]
    assert second.items[0].description == "greve-declaration", "without mappings the role key stands in"
    opim = read(engine, queries.pending_for_decider, "u-claire", role="opim-local", organisation="CARSAT-RA")
    assert [i.request_id for i in opim.items] == [work[0], work[4]]
    accounts_only = read(engine, queries.pending_for_decider, "u-claire", kind="account")
    assert [i.request_id for i in accounts_only.items] == [work[5]]
    assert read(engine, queries.pending_for_decider, "u-claire", page=9).items == ()
    assert read(engine, queries.pending_for_decider, "u-admin").total == 0
    with pytest.raises(ValueError):
        read(engine, queries.pending_for_decider, "u-claire", sort="id; drop table requests")


def test_a_request_detail_tells_who_asks_for_what_from_where_and_until_when(engine, data):
    d = read(engine, queries.request_detail, data["pending"], M)
    assert (d.requester_name, d.requester_email, d.organisation_name) == (
        "Aristide Charenne", "a.charenne@lassuranceretraite.fr", "CARSAT Rhône-Alpes")
    assert (d.role_label, d.application_label, d.status_label) == (
        "OPIM - Organisme Local", "OPIM", "En attente validation d'un gestionnaire")
    assert d.deadline == T0 + timedelta(days=4) and d.internal is True
    assert read(engine, queries.request_detail, 999_999, M) is None
