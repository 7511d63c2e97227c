"""Access review campaigns in the database: campaigns, the rights they review, their answers, progress.

Functions take a ``Connection`` inside the caller's transaction (see ``syncd.store.repo``); the
rules (what is due, who reviews, what the end does) are in ``syncd.core.reviews``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from syncd.store.repo import aware
from syncd.store.tables import accounts, memberships, review_campaigns, review_items

UNDECIDED = "undecided"     # the progress key of the rights nobody answered yet

_ITEM_COLUMNS = (review_items.c.id, review_items.c.campaign_id, review_items.c.account_id, review_items.c.role_key,
                 review_items.c.granted_at, review_items.c.decision, review_items.c.decided_at,
                 review_items.c.decided_by, review_items.c.reason, review_campaigns.c.organisation_code,
                 review_campaigns.c.state, review_campaigns.c.closes_at, accounts.c.given_name,
                 accounts.c.family_name, accounts.c.email,
                 # held: the membership still stands (not withdrawn otherwise since the opening)
                 and_(memberships.c.account_id.is_not(None), memberships.c.revoked_at.is_(None)).label("held"),
                 memberships.c.granted_by_request)
_ITEMS = (select(*_ITEM_COLUMNS)
          .select_from(review_items
                       .join(review_campaigns, review_campaigns.c.id == review_items.c.campaign_id)
                       .join(accounts, accounts.c.id == review_items.c.account_id)
                       .outerjoin(memberships, and_(memberships.c.account_id == review_items.c.account_id,
                                                    memberships.c.role_key == review_items.c.role_key))))


def last_openings(conn: Connection) -> dict[str, datetime]:
    """When each organisation's last campaign opened."""
    rows = conn.execute(select(review_campaigns.c.organisation_code, func.max(review_campaigns.c.opened_at))
                        .group_by(review_campaigns.c.organisation_code))
    return {code: aware(at) for code, at in rows}


def under_way(conn: Connection, organisation_code: str | None = None) -> list[RowMapping]:
    """The campaigns not closed yet (open, or waiting for a reviewer), oldest first."""
    stmt = select(review_campaigns).where(review_campaigns.c.closed_at.is_(None))
    if organisation_code is not None:
        stmt = stmt.where(review_campaigns.c.organisation_code == organisation_code)
    return list(conn.execute(stmt.order_by(review_campaigns.c.id)).mappings())


def campaign(conn: Connection, campaign_id: int) -> RowMapping | None:
    return conn.execute(select(review_campaigns).where(review_campaigns.c.id == campaign_id)).mappings().first()


def open_campaign(conn: Connection, *, organisation_code: str, now: datetime, closes_at: datetime, unanswered: str,
                  opened_by: str) -> int:
    """A new campaign, open; the unique index refuses a second one under way for the organisation."""
    return conn.execute(insert(review_campaigns).values(
        organisation_code=organisation_code, state="open", opened_at=now, opened_by=opened_by, closes_at=closes_at,
        unanswered=unanswered)).inserted_primary_key[0]


def reviewed_memberships(conn: Connection, organisation_code: str, role_keys: Iterable[str]) -> list[RowMapping]:
    """The rights the people of an organisation hold in these roles now (account id, role key,
    granted at), in key order."""
    keys = sorted(set(role_keys))
    if not keys:
        return []
    return list(conn.execute(
        select(memberships.c.account_id, memberships.c.role_key, memberships.c.granted_at)
        .select_from(memberships.join(accounts, accounts.c.id == memberships.c.account_id))
        .where(accounts.c.primary_organisation == organisation_code, memberships.c.role_key.in_(keys),
               memberships.c.revoked_at.is_(None))
        .order_by(memberships.c.account_id, memberships.c.role_key)).mappings())


def add_items(conn: Connection, campaign_id: int, rights: Iterable[RowMapping | dict[str, Any]]) -> int:
    rows = [{"campaign_id": campaign_id, "account_id": r["account_id"], "role_key": r["role_key"],
             "granted_at": r["granted_at"]} for r in rights]
    if rows:
        conn.execute(insert(review_items), rows)
    return len(rows)


def items(conn: Connection, *, campaign_ids: Iterable[int] | None = None, item_ids: Iterable[int] | None = None,
          organisation_code: str | None = None, undecided: bool = False) -> list[RowMapping]:
    """Rights under review with their campaign, holder and whether the membership still stands
    (``held``), by item id; filtered by campaign, item ids, organisation, unanswered only."""
    stmt = _ITEMS
    if campaign_ids is not None:
        stmt = stmt.where(review_items.c.campaign_id.in_(sorted(set(campaign_ids))))
    if item_ids is not None:
        stmt = stmt.where(review_items.c.id.in_(sorted(set(item_ids))))
    if organisation_code is not None:
        stmt = stmt.where(review_campaigns.c.organisation_code == organisation_code)
    if undecided:
        stmt = stmt.where(review_items.c.decision.is_(None))
    return list(conn.execute(stmt.order_by(review_items.c.id)).mappings())


def items_under_way(conn: Connection, organisation_code: str | None = None) -> list[RowMapping]:
    """Every right of the campaigns not closed yet (of one organisation's, if given)."""
    stmt = _ITEMS.where(review_campaigns.c.closed_at.is_(None))
    if organisation_code is not None:
        stmt = stmt.where(review_campaigns.c.organisation_code == organisation_code)
    return list(conn.execute(stmt.order_by(review_items.c.id)).mappings())


def decide(conn: Connection, item_ids: Iterable[int], decision: str, at: datetime, by: str,
           reason: str | None = None) -> list[int]:
    """Record an answer for the rights still unanswered among ``item_ids``; return those (a
    second submit of the same answer finds none)."""
    ids = sorted(set(item_ids))
    if not ids:
        return []
    done = conn.execute(update(review_items)
                        .where(review_items.c.id.in_(ids), review_items.c.decision.is_(None))
                        .values(decision=decision, decided_at=at, decided_by=by, reason=reason)
                        .returning(review_items.c.id))
    return sorted(r[0] for r in done)


def set_state(conn: Connection, campaign_id: int, state: str, **values: Any) -> None:
    """Move a campaign on (``closes_at``, ``closed_at``, ``outcome`` as given)."""
    conn.execute(update(review_campaigns).where(review_campaigns.c.id == campaign_id)
                 .values(state=state, **values))


def counts(conn: Connection, campaign_ids: Iterable[int] | None = None) -> dict[int, dict[str, int]]:
    """Per campaign (those not closed yet when no ids are given): rights per answer, the
    unanswered under ``UNDECIDED``."""
    stmt = (select(review_items.c.campaign_id, review_items.c.decision, func.count())
            .group_by(review_items.c.campaign_id, review_items.c.decision))
    if campaign_ids is None:
        stmt = stmt.where(review_items.c.campaign_id.in_(
            select(review_campaigns.c.id).where(review_campaigns.c.closed_at.is_(None))))
    else:
        stmt = stmt.where(review_items.c.campaign_id.in_(sorted(set(campaign_ids))))
    found: dict[int, dict[str, int]] = {}
    for campaign_id, decision, count in conn.execute(stmt):
        found.setdefault(campaign_id, {})[decision or UNDECIDED] = count
    return found


def progress(conn: Connection) -> list[dict[str, Any]]:
    """Each campaign under way: its organisation, state, window and rights per answer."""
    per_campaign = counts(conn)
    return [{"campaign_id": c["id"], "organisation_code": c["organisation_code"], "state": c["state"],
             "opened_at": aware(c["opened_at"]), "closes_at": aware(c["closes_at"]), "unanswered": c["unanswered"],
             "items": per_campaign.get(c["id"], {})} for c in under_way(conn)]


def awaiting_reviewer_oldest(conn: Connection) -> datetime | None:
    """When the window ended of the oldest campaign still waiting for a reviewer (None: none)."""
    return aware(conn.execute(select(func.min(review_campaigns.c.closes_at))
                              .where(review_campaigns.c.state == "awaiting_reviewer")).scalar())
