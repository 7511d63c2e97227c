"""A sample context for every mail template, as the jobs will build them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

SUBMITTED = datetime(2026, 3, 2, 12, 33, tzinfo=timezone.utc)   # 13:33 in Paris (winter time)
DEADLINE = SUBMITTED + timedelta(days=10)
DECIDED = datetime(2026, 3, 5, 8, 15, tzinfo=timezone.utc)      # 09:15 in Paris
EXPIRES = datetime(2026, 7, 1, 21, 59, tzinfo=timezone.utc)     # 23:59 in Paris (summer time)

# Keys a template shows when present besides the ones it requires (``syncd.mail.render.TEMPLATES``; other
# keys are ignored): test_render checks that every template reads only these.
OPTIONAL_KEYS: dict[str, frozenset[str]] = {
    "request_to_decide": frozenset({"internal", "tacit"}),   # tacit: False for a request never accepted tacitly
    # days_left: what really remains (a late reminder); business_days: "3 jours ouvrés"
    "decision_reminder": frozenset({"internal", "business_days", "days_left", "tacit"}),
    "request_escalated": frozenset({"internal"}),
    "request_accepted": frozenset({"decided_at"}),
    "request_accepted_tacitly": frozenset({"decided_at"}),
    "request_refused": frozenset({"decided_at", "decider_name"}),
    "request_rejected": frozenset(),
    "account_created_set_password": frozenset({"login"}),
    "password_reset": frozenset(),
    "password_changed": frozenset(),
    "habilitation_revoked": frozenset({"reason"}),
    "habilitation_expiring": frozenset({"renew_url"}),
    "habilitation_expired": frozenset(),
    "mobility_accepted": frozenset({"decided_at", "tacit"}),
    "review_opened": frozenset(),
    "decider_digest": frozenset(),
}

HABILITATION = {
    "kind": "habilitation",
    "application_label": "Guides juridiques (Gap, Paie, Jurisprudence)",
    "role_label": "Egap - Guides d'administration du personnel",
}

_DECIDER = {
    "decider_name": "Lucie Martin",
    **HABILITATION,
    "requester_name": "Aristide Charenne",
    "requester_email": "a.charenne@lassuranceretraite.fr",
    "organisation_name": "CARSAT Rhône-Alpes",
    "internal": True,
    "submitted_at": SUBMITTED,
    "deadline_at": DEADLINE,
    "decide_url": "https://habilitations.example.org/decide/42?token=abc&v=1",
}
_REQUESTER = {"requester_name": "Aristide Charenne", **HABILITATION, "submitted_at": SUBMITTED}

SAMPLE_CONTEXTS: dict[str, dict] = {
    "request_to_decide": dict(_DECIDER),
    "decision_reminder": {**_DECIDER, "days_before": 2},
    "request_escalated": {key: value for key, value in _DECIDER.items() if key != "deadline_at"},
    "request_accepted": {**_REQUESTER, "decided_at": DECIDED},
    "request_accepted_tacitly": {**_REQUESTER, "decided_at": DEADLINE},
    "request_refused": {**_REQUESTER, "decided_at": DECIDED, "decider_name": "Lucie Martin",
                        "comment": "Cette application est réservée au service RH."},
    "request_rejected": {**_REQUESTER, "reason": "Le rôle demandé n'existe pas."},
    "account_created_set_password": {
        "requester_name": "Aristide Charenne",
        "login": "a.charenne@lassuranceretraite.fr",
        "reset_url": "https://habilitations.example.org/password/set?token=xyz",
        "expires_at": EXPIRES,
    },
    "password_reset": {
        "requester_name": "Aristide Charenne",
        "reset_url": "https://habilitations.example.org/password/reset?token=xyz",
        "expires_at": EXPIRES,
    },
    "password_changed": {"requester_name": "Aristide Charenne", "email": "a.charenne@lassuranceretraite.fr",
                         "changed_at": DECIDED},
    "habilitation_revoked": {"requester_name": "Aristide Charenne", **HABILITATION, "revoked_at": DECIDED,
                             "reason": "Changement de poste."},
    "habilitation_expiring": {"requester_name": "Aristide Charenne", **HABILITATION, "expires_at": EXPIRES},
    "habilitation_expired": {"requester_name": "Aristide Charenne", **HABILITATION, "expired_at": EXPIRES},
    "mobility_accepted": {"requester_name": "Aristide Charenne", "kind": "mobility",
                          "submitted_at": SUBMITTED, "decided_at": DECIDED,
                          "target_organisation_name": "CPAM de Paris", "tacit": False,
                          "withdrawn": ["Accords locaux - Accès organisme"]},
    "review_opened": {"reviewer_name": "Lucie Martin", "organisation_name": "CARSAT Rhône-Alpes", "rights": 12,
                      "closes_at": EXPIRES, "unanswered": "withdraw",
                      "review_url": "https://habilitations.example.org/review/abc.def"},
    "decider_digest": {"decider_name": "Lucie Martin", "count": 32, "more": 2, "waiting_count": 1,
                       "desk_url": "https://habilitations.example.org/desk/open/eyJkIjoiYSJ9.sig",
                       "expires_at": DEADLINE, "items": [
                           {"request_id": 12, "description": "Accords locaux - Accès organisme",
                            "requester_name": "Aristide Charenne", "organisation_name": "CARSAT Rhône-Alpes",
                            "deadline_at": DEADLINE, "today": True},
                           {"request_id": 13, "description": "Création de compte", "requester_name": "Jean Dupont",
                            "organisation_name": "CARSAT Rhône-Alpes", "deadline_at": "", "today": False}]},
}
