"""Habilitations and accounts over time: revocation, disabling, profile changes, expiry, renewal.

- A correspondent or administrator may revoke one habilitation, if they could decide a request
  for it now. The membership row is marked revoked (history kept); the ``accounts`` job removes
  the member from its group, batched, and the user is told.
- A role with ``validity_months`` grants habilitations that expire. ``RENEWAL_NOTICE`` before the
  end, a renewal request goes to the deciders like a new request (tacit acceptance included);
  accepted, the validity starts again; an habilitation still unrenewed at its end is removed
  and the user told. Not for a role marked ``review: true``: access review campaigns recertify
  those (``syncd.jobs.reviews``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog

from syncd.core import routing
from syncd.core.model import AccountStatus, DeciderScope, RequestKind, Status
from syncd.core.profile import ProfileStale, validate_profile_changes
from syncd.errors import DecisionRefused, PermanentError
from syncd.jobs import notify
from syncd.jobs.intake import route_and_schedule
from syncd.runtime import Runtime
from syncd.mail.outbox import enqueue
from syncd.store import accounts, audit, grants, repo
from syncd.store.db import transaction

log = structlog.get_logger(__name__)

RENEWAL_NOTICE = timedelta(days=30)


def _habilitation_context(rt: Runtime, account, role_key: str) -> dict[str, Any]:
    role = rt.mappings.role(role_key)
    app = rt.mappings.application_of(role_key)
    return {"requester_name": f"{account.given_name} {account.family_name}",
            "role_label": role.label if role else role_key, "application_label": app.label if app else ""}


def revoke(rt: Runtime, account_ref: str, role_key: str, by: str, reason: str | None = None) -> dict[str, Any]:
    """Withdraw one habilitation (``syncd revoke``, the API's withdrawal, the correspondents' desk).

    Raises ``DecisionRefused``: ``not_found`` (no such account holding the role), ``own_request``,
    ``not_authorised`` (``routing.withdrawal_refusal``: a central administrator for any role, a
    correspondent of the holder's organisation for a locally managed one). Returns who withdrew
    what, and when.
    """
    now = rt.clock()
    with transaction(rt.engine) as conn:
        account = repo.find_account(conn, account_ref)
        actor = repo.find_account(conn, by)
        row = grants.membership(conn, account.id, role_key, "held") if account else None
        if row is None or rt.mappings.role(role_key) is None:
            raise DecisionRefused("not_found", f"{account_ref} holds no habilitation {role_key!r}.")
        refusal = routing.withdrawal_refusal(
            management=rt.mappings.management_of(role_key), organisation_code=account.primary_organisation,
            holder_account_id=account.id, actor_account_id=actor.id if actor else None,
            deciders=repo.current_deciders(conn, account.primary_organisation))
        if refusal == "own_request":
            raise DecisionRefused(refusal, "Nobody withdraws their own habilitation.")
        if refusal is not None:
            raise DecisionRefused(refusal, "Only a central administrator, or a correspondent of the holder's "
                                           "organisation for a locally managed role, may withdraw it.")
        withdraw(conn, rt, account, role_key, actor.id, reason, now, granted_by_request=row["granted_by_request"])
    return {"account_id": account.id, "role_key": role_key, "withdrawn_at": now, "withdrawn_by": actor.id}


def withdraw(conn, rt: Runtime, account, role_key: str, actor_id: str, reason: str | None, now,
             *, granted_by_request: int | None) -> None:
    """The withdrawal itself, once authorised: the membership marked revoked (the ``accounts`` job
    takes the member out of its group), the audit row, the history event and the holder's mail.
    ``revoke`` and an accepted mobility (``syncd.jobs.mobility``) both withdraw through here."""
    grants.revoke(conn, account.id, role_key, now)
    audit.record(conn, at=now, actor=actor_id, action="revoked", request_id=granted_by_request,
                 target=f"{account.id}:{role_key}", detail={"reason": reason} if reason else None)
    if granted_by_request:
        repo.add_event(conn, granted_by_request, "revoked", now, actor=actor_id,
                       detail={"reason": reason} if reason else None)
    enqueue(conn, recipient=account.email, template="habilitation_revoked", now=now,
            language=notify.language_of(rt.settings), dedupe_key=f"revoked:{account.id}:{role_key}:{now.isoformat()}",
            context=_habilitation_context(rt, account, role_key) | {"revoked_at": now, "reason": reason})
    log.info("habilitation_revoked", account_id=account.id, role=role_key, by=actor_id)


def set_account_status(rt: Runtime, account_ref: str, status: str, *, actor: str | None = None,
                       reason: str | None = None) -> tuple[str, bool]:
    """Disable (every membership goes, history stays) or re-enable an account; return its id and
    whether it changed.

    ``actor`` None: the operator at the command line. Otherwise the account id or e-mail of who
    asks, which must be an active central administrator (``DecisionRefused("not_authorised")``),
    and not the account itself (``own_request``).
    """
    if status not in (AccountStatus.ACTIVE, AccountStatus.DISABLED):
        raise PermanentError(f"unknown account status {status!r}")
    now = rt.clock()
    with transaction(rt.engine) as conn:
        account = repo.find_account(conn, account_ref)
        if account is None:
            raise DecisionRefused("not_found", f"no account {account_ref!r}")
        actor_id = "operator"
        if actor is not None:
            found = repo.find_account(conn, actor)
            central = {d.account_id for d in repo.current_deciders(conn) if d.scope is DeciderScope.CENTRAL}
            if found is None or found.id not in central:
                raise DecisionRefused("not_authorised", "Only a central administrator may change an account's state.")
            if found.id == account.id:
                raise DecisionRefused("own_request", "Nobody changes their own account's state.")
            actor_id = found.id
        if account.status == status:
            return account.id, False
        # A new status is a change worth a new try, parked or not (syncd.jobs.accounts writes a
        # disable on its own first, so a value the directory refuses does not keep it out).
        accounts.set_status(conn, account.id, status, now)
        audit.record(conn, at=now, actor=actor_id, action=f"account_{'disabled' if status == AccountStatus.DISABLED else 'enabled'}",
                     target=account.id, detail={"reason": reason} if reason else None)
    log.info("account_status_changed", account_id=account.id, status=status, by=actor_id)
    return account.id, True


def update_profile(rt: Runtime, account_ref: str, changes: dict[str, Any], *, expected_version: int | None = None,
                   channel: str = "cli") -> dict[str, Any]:
    """Apply "mes coordonnées" changes; the ``accounts`` job writes them to LDAP.

    ``expected_version``: the account's ``version`` the form was read at; ``ProfileStale`` when
    it has moved on since (checked in the update itself, so two writers cannot both pass).
    """
    with transaction(rt.engine) as conn:
        account = repo.find_account(conn, account_ref)
        if account is None:
            raise PermanentError(f"no account {account_ref!r}")
        if expected_version is not None and account.version != expected_version:
            raise ProfileStale(account.version)
        clean = validate_profile_changes(changes, vars(account), rt.mappings)
        if clean:
            if not accounts.change_profile(conn, account.id, account.version, rt.clock(), clean):
                raise ProfileStale(account.version + 1)
            audit.record(conn, at=rt.clock(), actor=account.id, action="profile_changed", target=account.id,
                         detail={"fields": sorted(clean), "channel": channel})
    return clean


def expire_and_renew(rt: Runtime) -> int:
    """Open renewal requests for habilitations nearing their end; remove the expired ones."""
    now = rt.clock()
    touched = 0
    with transaction(rt.engine) as conn:
        # A reviewed role (review: true) is recertified by its review campaigns (syncd.jobs.reviews):
        # no renewal request, and a validity set before it was reviewed does not end it.
        due = grants.expiring(conn, now + RENEWAL_NOTICE, excluding_roles=rt.mappings.reviewed_roles())
        for m in due:
            account = repo.account_by_id(conn, m["account_id"])
            if account is None:
                continue
            if m["expires_at"] <= now:
                _expire(conn, rt, m, account, now)
            elif not repo.renewal_asked_since(conn, m["account_id"], m["role_key"], m["granted_at"]):
                # no renewal for this membership since its current validity began
                _open_renewal(conn, rt, m, account, now)
            else:
                continue
            touched += 1
    return touched


def _open_renewal(conn, rt: Runtime, m, account, now) -> None:
    request_id, _ = repo.submit_request(conn, dict(
        kind=RequestKind.RENEWAL.value, submitted_at=now, email=account.email, role_key=m["role_key"],
        account_id=account.id, organisation_code=account.primary_organisation,
        status=Status.NEW.value, updated_at=now))
    row = repo.get_request(conn, request_id)
    route_and_schedule(conn, rt, row, kind=RequestKind.RENEWAL, account_id=account.id,
                       organisation_code=account.primary_organisation, role_key=m["role_key"])
    enqueue(conn, recipient=account.email, template="habilitation_expiring", now=now, language=notify.language_of(rt.settings),
            dedupe_key=f"expiring:{account.id}:{m['role_key']}:{m['expires_at'].isoformat()}",
            request_id=request_id,
            context=_habilitation_context(rt, account, m["role_key"]) | {"expires_at": m["expires_at"]})
    log.info("renewal_requested", request_id=request_id, account_id=account.id, role=m["role_key"])


def _expire(conn, rt: Runtime, m, account, now) -> None:
    grants.revoke(conn, m["account_id"], m["role_key"], now, if_held=False)
    if m["granted_by_request"]:
        repo.add_event(conn, m["granted_by_request"], "expired", now)
    audit.record(conn, at=now, actor="syncd", action="expired", request_id=m["granted_by_request"],
                 target=f"{account.id}:{m['role_key']}")
    enqueue(conn, recipient=account.email, template="habilitation_expired", now=now, language=notify.language_of(rt.settings),
            dedupe_key=f"expired:{account.id}:{m['role_key']}:{m['expires_at'].isoformat()}",
            context=_habilitation_context(rt, account, m["role_key"]) | {"expired_at": m["expires_at"]})
    log.info("habilitation_expired", account_id=account.id, role=m["role_key"])
