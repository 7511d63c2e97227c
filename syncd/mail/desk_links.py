"""The desk's personal links, minted where mail needs them: the digest and the review mails carry them.

A link is a token signed with ``web.signing_key`` (HMAC-SHA256, itsdangerous, salt ``LINK_SALT``)
naming one decider, when it was issued and when it expires. ``syncd.web.desk_auth`` reads it back
and opens the session; this module only writes it, so the daemon needs no web framework.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from syncd.mail.links import serializer, signing_key

if TYPE_CHECKING:
    from syncd.settings import Settings

LINK_SALT = "syncd.desk-link.v1"
OPEN_PATH = "/desk/open/"
REVIEWS_TAB = "reviews"     # ``?tab=`` of a link that opens on the access reviews (syncd.web.desk_reviews)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def link_token(key: str, decider_id: str, now: datetime, days: int) -> str:
    return serializer(key, LINK_SALT).dumps({"d": str(decider_id), "i": ms(now),
                                              "x": ms(now + timedelta(days=days))})


def desk_url(settings: "Settings", decider_id: str, now: datetime) -> str:
    """The personal desk link of ``decider_id``; needs ``web.signing_key``."""
    key = signing_key(settings.web)
    if key is None:
        raise ValueError("web.signing_key is not set: the desk needs it")
    return (f"{settings.web.base_url.rstrip('/')}{OPEN_PATH}"
            f"{link_token(key, decider_id, now, settings.desk.link_days)}")


def review_url(settings: "Settings", decider_id: str, now: datetime, closes_at: datetime) -> str:
    """A reviewer's personal desk link, opening on the access reviews tab (``REVIEWS_TAB``) and
    valid until a day after the campaign's window ends; without ``web.signing_key``, the tab's
    plain address."""
    key = signing_key(settings.web)
    base = settings.web.base_url.rstrip("/")
    if key is None:
        return f"{base}/desk/reviews"
    days = max((closes_at - now).days + 2, 1)
    return f"{base}{OPEN_PATH}{link_token(key, decider_id, now, days)}?tab={REVIEWS_TAB}"
