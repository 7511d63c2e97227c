"""The correspondents' desk without a browser: the digest's link, the session, bulk decisions,
CSRF, expiry and revocation, on the real servers (slapd, SQLite or PostgreSQL, the SMTP fixture).

The browser's view of the same pages is ``test_desk_browser.py``.
"""

from __future__ import annotations

import re
import pytest
from sqlalchemy import func, select

from syncd import operator
from syncd.jobs import digest
from syncd.store.db import transaction
from syncd.store.tables import audit_log, outbox, request_events, requests, used_tokens
from tests.scenarios.helpers import ADMIN, CORRESPONDENT, habilitation, mails_to, people, request_row
from tests.web.conftest import OTHER_CORRESPONDENT, SQLITE_ONLY

pytestmark = pytest.mark.slapd

DESK_LINK = re.compile(r"https?://[^\s]+(/desk/open/[A-Za-z0-9_.\-]+)")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
LOCAL_ROLES = ("accords-locaux-acces", "annuaire-redacteur", "greve-declaration")


def desk_path(daemon, smtp_server, email: str) -> str:
    """The path of the desk link in ``email``'s newest digest (the digest job, then delivery)."""
    daemon.run_job("digest")
    daemon.run_job("deliver")
    digests = [m for m in mails_to(smtp_server, email) if "/desk/open/" in m.get_body(("plain",)).get_content()]
    return DESK_LINK.findall(digests[-1].get_body(("plain",)).get_content())[0]


def open_desk(client, path: str):
    """Open the link as a browser does; return the desk page, session cookie set."""
    opened = client.get(path)
    assert opened.status_code == 200, opened.text
    assert 'http-equiv="refresh"' in opened.text
    page = client.get("/desk")
    assert page.status_code == 200, page.text
    return page


def csrf_of(page) -> str:
    return CSRF.search(page.text).group(1)


def counts(rt) -> dict[str, int]:
    with transaction(rt.engine, readonly=True) as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                for t in (requests, request_events, audit_log, outbox, used_tokens)}


def many_requests(rt, daemon, people_count: int) -> list[int]:
    """Three locally managed requests per requester of CARSAT-RA, routed to its correspondent."""
    ids = []
    for n in range(people_count):
        email = f"agent{n}@lassuranceretraite.fr"
        operator.add_account(rt, email, "Agent", f"Numéro {n}", "CARSAT-RA")
        ids += [habilitation(rt, role, email=email) for role in LOCAL_ROLES]
    daemon.run_job("intake")
    return ids


def test_a_decider_with_30_pending_requests_accepts_them_in_one_post_and_a_second_submit_decides_nothing(
        rt, daemon, client, smtp_server):
    people(rt)
    ids = many_requests(rt, daemon, 10)
    page = open_desk(client, desk_path(daemon, smtp_server, CORRESPONDENT))
    assert "Demandes en attente de votre décision (30)" in page.text
    form = {"csrf": csrf_of(page), "verdict": "accept", "request": [str(i) for i in ids]}

    done = client.post("/desk/decide", data=form)

    assert done.status_code == 200
    assert done.text.count('data-outcome="accepted"') == 30
    assert {request_row(rt, i)["status"] for i in ids} == {"accepted"}
    daemon.run_job("apply")
    with transaction(rt.engine, readonly=True) as conn:
        decided = conn.execute(select(request_events.c.request_id).where(
            request_events.c.event == "decided", request_events.c.request_id.in_(ids))).scalars().all()
        audited = conn.execute(select(audit_log.c.request_id, audit_log.c.detail).where(
            audit_log.c.action == "decided", audit_log.c.request_id.in_(ids))).all()
        mailed = conn.execute(select(outbox.c.request_id).where(
            outbox.c.template == "request_accepted", outbox.c.request_id.in_(ids))).scalars().all()
    assert sorted(decided) == sorted(audited_id for audited_id, _ in audited) == sorted(mailed) == sorted(ids)
    assert {detail["channel"] for _, detail in audited} == {"desk"}

    before = counts(rt)
    again = client.post("/desk/decide", data=form)       # the same form, submitted once more

    assert again.status_code == 200
    assert again.text.count('data-outcome="already_decided"') == 30
    assert "Cette demande a déjà été traitée" in again.text
    after = counts(rt)
    assert after["outbox"] == before["outbox"] and after["requests"] == before["requests"]
    with transaction(rt.engine, readonly=True) as conn:
        assert conn.execute(select(func.count()).select_from(request_events).where(
            request_events.c.event == "decided", request_events.c.request_id.in_(ids))).scalar() == 30


@SQLITE_ONLY
def test_refusing_without_a_reason_is_refused_in_french_and_decides_nothing(rt, daemon, client, smtp_server):
    people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    page = open_desk(client, desk_path(daemon, smtp_server, CORRESPONDENT))
    before = counts(rt)

    refused = client.post("/desk/decide", data={"csrf": csrf_of(page), "verdict": "refuse", "comment": "  ",
                                                "request": [str(request_id)]})

    assert refused.status_code == 400
    assert 'role="alert"' in refused.text and "indiquer le motif du refus" in refused.text
    assert 'aria-invalid="true"' in refused.text and f'value="{request_id}" checked' in refused.text
    assert counts(rt) == before and request_row(rt, request_id)["status"] == "pending"


@SQLITE_ONLY
def test_a_post_without_the_csrf_token_or_with_a_wrong_one_is_refused_and_decides_nothing(
        rt, daemon, client, smtp_server):
    people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    page = open_desk(client, desk_path(daemon, smtp_server, CORRESPONDENT))
    token = csrf_of(page)
    before = counts(rt)

    for csrf in ("", token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "x" * 40):
        answer = client.post("/desk/decide", data={"csrf": csrf, "verdict": "accept", "request": [str(request_id)]})
        assert answer.status_code == 403 and "Formulaire expiré" in answer.text
    assert client.post("/desk/withdraw", data={"reason": "r", "right": ["a:b"]}).status_code == 403
    assert client.post("/desk/logout", data={}).status_code == 403
    assert counts(rt) == before and request_row(rt, request_id)["status"] == "pending"


@SQLITE_ONLY
def test_a_session_of_decider_a_decides_nothing_of_decider_b_and_a_token_of_b_does_not_pass_with_a(
        rt, daemon, app, smtp_server):
    from starlette.testclient import TestClient
    people(rt)
    operator.add_account(rt, OTHER_CORRESPONDENT, "Paul", "Durand", "CPAM-75")
    operator.add_decider(rt, OTHER_CORRESPONDENT, "CPAM-75")
    operator.add_account(rt, "agent@assurance-maladie.fr", "Agent", "Paris", "CPAM-75")
    theirs = habilitation(rt, email="agent@assurance-maladie.fr")     # routed to Paul Durand (CPAM-75)
    mine = habilitation(rt)                                           # routed to Claire Martin (CARSAT-RA)
    daemon.run_job("intake")
    base = "https://habilitations.example.org"
    with TestClient(app, base_url=base) as a, TestClient(app, base_url=base) as b:
        page_a = open_desk(a, desk_path(daemon, smtp_server, CORRESPONDENT))
        page_b = open_desk(b, desk_path(daemon, smtp_server, OTHER_CORRESPONDENT))
        assert f'value="{theirs}"' not in page_a.text and f'value="{mine}"' in page_a.text

        # A's session, B's request: refused by the decision use-case, recorded as an attempt.
        answer = a.post("/desk/decide", data={"csrf": csrf_of(page_a), "verdict": "accept", "request": [str(theirs)]})
        assert 'data-outcome="not_authorised"' in answer.text
        # A's cookie replayed with B's form token: the token is bound to B's session.
        answer = a.post("/desk/decide", data={"csrf": csrf_of(page_b), "verdict": "accept", "request": [str(mine)]})
        assert answer.status_code == 403
    assert request_row(rt, theirs)["status"] == request_row(rt, mine)["status"] == "pending"


@SQLITE_ONLY
def test_nothing_changes_on_a_get_whatever_its_query(rt, daemon, client, smtp_server):
    people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    path = desk_path(daemon, smtp_server, CORRESPONDENT)
    before = counts(rt)

    open_desk(client, path)
    for target in ("/desk", f"/desk?verdict=accept&request={request_id}&status=due_today&application=opim",
                   "/desk/rights", "/desk/decide", "/desk/withdraw", "/desk/logout", path):
        assert client.get(target).status_code in (200, 405)
        assert client.head(target).status_code in (200, 405)

    assert counts(rt) == before and request_row(rt, request_id)["status"] == "pending"


@SQLITE_ONLY
def test_a_link_after_its_expiry_or_its_revocation_gets_the_french_expiry_page_and_so_does_its_session(
        rt, daemon, client, smtp_server, clock):
    people(rt)
    habilitation(rt)
    daemon.run_job("intake")
    path = desk_path(daemon, smtp_server, CORRESPONDENT)
    open_desk(client, path)

    digest.revoke_links(rt, CORRESPONDENT, "poste quitté")

    for target in (path, "/desk"):
        page = client.get(target)
        assert page.status_code == 410 and ("Ce lien a expiré" in page.text or "Votre session a expiré" in page.text)
    with transaction(rt.engine, readonly=True) as conn:
        assert conn.execute(select(audit_log.c.action).where(audit_log.c.action == "desk_links_revoked")).first()

    clock.advance(days=1)                                  # tomorrow's digest: a new link, which works
    fresh = desk_path(daemon, smtp_server, CORRESPONDENT)
    assert fresh != path
    open_desk(client, fresh)
    clock.advance(minutes=rt.settings.desk.session_minutes + 1)     # idle too long: the session ends
    assert client.get("/desk").status_code == 410
    clock.advance(days=rt.settings.desk.link_days)                   # and the link expires
    expired = client.get(fresh)
    assert expired.status_code == 410 and "Ce lien a expiré" in expired.text


@SQLITE_ONLY
def test_after_logout_a_copy_of_the_session_cookie_is_refused(rt, daemon, app, client, smtp_server):
    people(rt)
    habilitation(rt)
    daemon.run_job("intake")
    page = open_desk(client, desk_path(daemon, smtp_server, CORRESPONDENT))
    cookie = client.cookies.get("syncd_desk")

    bye = client.post("/desk/logout", data={"csrf": csrf_of(page)})

    assert bye.status_code == 200 and "Vous êtes déconnecté(e)" in bye.text
    assert 'syncd_desk=""' in bye.headers["set-cookie"] or "Max-Age=0" in bye.headers["set-cookie"]
    client.cookies.set("syncd_desk", cookie, domain="habilitations.example.org", path="/desk")
    assert client.get("/desk").status_code == 410


@SQLITE_ONLY
def test_the_session_cookie_is_httponly_samesite_strict_secure_on_https_and_short_lived(
        rt, daemon, client, smtp_server):
    people(rt)
    habilitation(rt)
    daemon.run_job("intake")
    opened = client.get(desk_path(daemon, smtp_server, CORRESPONDENT))
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith("syncd_desk=")
    for attribute in ("HttpOnly", "SameSite=strict", "Secure", "Path=/desk",
                      f"Max-Age={rt.settings.desk.session_minutes * 60}"):
        assert attribute.lower() in cookie.lower()


@SQLITE_ONLY
def test_the_digest_goes_once_a_day_only_to_deciders_with_something_pending(rt, daemon, smtp_server, clock):
    people(rt)
    daemon.run_job("digest")
    assert daemon.jobs["digest"].last_count == 0                 # nothing pending: no digest

    habilitation(rt)
    daemon.run_job("intake")
    daemon.run_job("digest")
    daemon.run_job("digest")
    daemon.run_job("deliver")
    [mail] = [m for m in mails_to(smtp_server, CORRESPONDENT) if "récapitulatif" in m["Subject"]]
    text = mail.get_body(("plain",)).get_content()
    assert "1 demande attend votre décision" in text and "Accords locaux - Accès organisme" in text
    assert not [m for m in mails_to(smtp_server, ADMIN) if "récapitulatif" in m["Subject"]]
    with transaction(rt.engine, readonly=True) as conn:            # the link is not kept in the outbox
        assert "/desk/open/" not in str(conn.execute(select(outbox.c.context).where(
            outbox.c.template == "decider_digest")).scalar())


@SQLITE_ONLY
def test_a_decider_who_prefers_the_digest_gets_no_mail_per_request(make_runtime, smtp_server):
    from syncd.daemon import Daemon
    from tests.web.conftest import SIGNING_KEY
    rt = make_runtime(web={"base_url": "https://habilitations.example.org", "signing_key": SIGNING_KEY},
                      desk={"digest_only": [CORRESPONDENT.upper()]})
    daemon = Daemon(rt)
    daemon.run_job("provision")
    people(rt)
    habilitation(rt)
    daemon.run_job("intake")
    daemon.run_job("deliver")
    assert mails_to(smtp_server, CORRESPONDENT) == []
    daemon.run_job("digest")
    daemon.run_job("deliver")
    assert len(mails_to(smtp_server, CORRESPONDENT)) == 1


@SQLITE_ONLY
def test_a_central_administrator_s_digest_tells_of_the_requests_nobody_can_decide(rt, daemon, smtp_server):
    operator.add_account(rt, ADMIN, "Alice", "Admin", "CARSAT-RA")
    operator.add_decider(rt, ADMIN, None)
    habilitation(rt, "opim-local", email=ADMIN)      # centrally managed, asked by the only administrator
    daemon.run_job("intake")
    daemon.run_job("digest")
    daemon.run_job("deliver")
    [mail] = mails_to(smtp_server, ADMIN)
    assert "1 demande ne peut être décidée par personne" in mail.get_body(("plain",)).get_content()



def test_the_rights_tab_shows_the_organisation_s_rights_by_application_and_withdraws_with_a_reason_once(
        rt, daemon, client):
    from syncd.core.model import Verdict
    from syncd.jobs.decisions import decide_request
    ids = people(rt)
    local, central = habilitation(rt), habilitation(rt, "opim-local")
    daemon.run_job("intake")
    decide_request(rt, local, CORRESPONDENT, Verdict.ACCEPT)
    decide_request(rt, central, ADMIN, Verdict.ACCEPT)
    open_desk(client, _link(rt, ids["correspondent"]))

    page = client.get("/desk/rights")
    assert page.status_code == 200
    assert "<h2 id=\"app-1\">Accords locaux</h2>" in page.text and ">OPIM</h2>" in page.text
    right = f"{ids['requester']}:accords-locaux-acces"
    assert f'value="{right}"' in page.text                                 # locally managed: withdrawable
    assert f'value="{ids["requester"]}:opim-local"' not in page.text      # centrally managed: not by a correspondent
    assert ">OPIM</h2>" not in client.get("/desk/rights?application=accords-locaux").text

    form = {"csrf": csrf_of(page), "right": [right], "reason": ""}
    refused = client.post("/desk/withdraw", data=form)
    assert refused.status_code == 400 and "indiquer le motif du retrait" in refused.text
    done = client.post("/desk/withdraw", data=form | {"reason": "Fin de mission"})
    again = client.post("/desk/withdraw", data=form | {"reason": "Fin de mission"})

    assert 'data-outcome="withdrawn"' in done.text and 'data-outcome="not_found"' in again.text
    with transaction(rt.engine, readonly=True) as conn:
        assert conn.execute(select(func.count()).select_from(audit_log).where(
            audit_log.c.action == "revoked", audit_log.c.actor == ids["correspondent"])).scalar() == 1


def _link(rt, account_id: str) -> str:
    """A desk link as ``syncd desk link`` prints it (its path)."""
    from urllib.parse import urlsplit

    from syncd.web import desk_auth
    return urlsplit(desk_auth.desk_url(rt.settings, account_id, rt.clock())).path
