"""``syncd adopt``: take over a directory that already holds people, organisations and groups.

Reads LDAP and records what it finds as syncd's desired state in the database, so that the
next reconciliation finds no drift instead of removing everything syncd did not create:

* **accounts**: each entry of the people branch whose id the database does not know
  becomes an ``accounts`` row, its fields read back through the people mappings (``mail``
  → e-mail, ``givenName`` → given name …); ``status`` from the status/disabled attribute.
* **memberships**: each member of an *exclusive* role group that is a known (or just
  adopted) account becomes a ``memberships`` row (granted now, already applied). Members of
  *shared* groups are left to their owners: syncd does not take them over (it would then
  remove them when revoked), they are only counted.
* **correspondents**: each ``syncdCorrespondent`` of a known organisation that is a known
  account becomes a correspondent (``deciders`` row), so that provisioning keeps it.

It writes nothing to LDAP and removes nothing anywhere. What does not fit the mappings is
reported and left alone: people without a usable e-mail, names or organisation, e-mails
already used by another account, organisations and groups the mappings do not describe,
members that are not accounts, memberships the database has revoked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

import structlog

from syncd.core.intake import email_domain_is_internal, normalise_email
from syncd.core.model import AccountStatus
from syncd.directory import names, ranges, servers
from syncd.runtime import Runtime
from syncd.reconcile.compare import AccountComparer, Keys
from syncd.reconcile.ldapread import LeanReader
from syncd.reconcile.planning import NoProgress, Progress
from syncd.store import accounts, grants, repo
from syncd.store.db import transaction

log = structlog.get_logger(__name__)

DETAILS = 1000              # skipped items listed one by one (the rest are counted)
_BATCH = 1000
_LIMITS = {"email": 254, "given_name": 100, "family_name": 100, "birth_name": 100, "contact_email": 254,
           "phone": 40, "civility": 8, "terms_version": 20}


@dataclass
class AdoptReport:
    dry_run: bool
    accounts_adopted: int = 0
    accounts_known: int = 0
    memberships_adopted: int = 0
    memberships_known: int = 0
    correspondents_adopted: int = 0
    correspondents_known: int = 0
    shared_members_left: int = 0
    skipped_by_reason: Counter = field(default_factory=Counter)
    skipped: list[dict[str, str]] = field(default_factory=list)
    organisations_unknown: list[str] = field(default_factory=list)
    groups_unknown: list[str] = field(default_factory=list)
    groups_missing: list[str] = field(default_factory=list)

    def skip(self, what: str, name: str, reason: str) -> None:
        self.skipped_by_reason[f"{what}: {reason}"] += 1
        if len(self.skipped) < DETAILS:
            self.skipped.append({"what": what, "name": name, "reason": reason})

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"skipped_by_reason": dict(self.skipped_by_reason)}


def _generalized_time(value: str | None) -> datetime | None:
    if not value or len(value) < 14:
        return None
    try:
        return datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return {"TRUE": True, "FALSE": False}.get(value.strip().upper())


class _Adopter:
    def __init__(self, rt: Runtime, dry_run: bool, progress: Progress):
        self.rt = rt
        self.dry_run = dry_run
        self.progress = progress
        self.layout = rt.mappings.directory
        self.keys = Keys(self.layout)
        self.comparer = AccountComparer(self.layout)
        self.report = AdoptReport(dry_run)
        self.now = rt.clock()
        self.org_codes = {o.code.casefold(): o.code for o in rt.mappings.organisations}
        self.org_branch = names.normalise_dn(names.branch_dn(self.layout, "organisations"))
        self.known: dict[str, str] = {}        # key -> account id (database or adopted)
        self.emails: set[str] = set()

    def run(self) -> AdoptReport:
        with transaction(self.rt.engine) as conn:
            if not self.dry_run:       # accounts refer to organisations: the table must hold them
                repo.upsert_organisations(conn, self.rt.mappings.organisations, self.now)
            for account_id, email in accounts.ids_and_emails(conn):
                self.known[self.keys.of_id(account_id)] = account_id
                self.emails.add(email.lower())
        with LeanReader(self.rt.settings.ldap) as reader:
            correspondents = self._organisations(reader)
            self._people(reader)
            self._groups(reader)
        self._correspondents(correspondents)
        log.info("directory_adopted", **{k: v for k, v in self.report.to_json().items()
                                        if isinstance(v, (int, bool))})
        return self.report

    # -- organisations ---------------------------------------------------------------------

    def _organisation_code(self, dn: str) -> str | None:
        """The mapped organisation code an organisation DN names, or None."""
        try:
            rdns = names.parse_dn(dn)
        except names.InvalidName:
            return None
        if len(rdns) < 2 or names.normalise_dn(names.format_dn(rdns[1:])) != self.org_branch:
            return None
        value = rdns[0][0][1]
        return self.org_codes.get(value.casefold()) if isinstance(value, str) else None

    def _organisations(self, reader: LeanReader) -> dict[str, list[str]]:
        branch = names.branch_dn(self.layout, "organisations")
        found: dict[str, list[str]] = {}
        correspondent = servers.traits(self.layout.kind).name("syncdCorrespondent")   # AD: seeAlso
        for dn, attrs in reader.search(branch, "(objectClass=*)", [correspondent], scope="one",
                                       missing_ok=True):
            code = self._organisation_code(dn)
            if code is None:
                self.report.organisations_unknown.append(dn)
                continue
            found[code] = attrs.get(correspondent.lower(), [])
        return found

    # -- people ----------------------------------------------------------------------------

    def _people(self, reader: LeanReader) -> None:
        self.progress.phase("people (LDAP)")
        batch: list[dict[str, Any]] = []
        for dn, attrs in reader.search(self.keys.branch, self.keys.people_filter, self.comparer.read_attributes,
                                       scope="one", missing_ok=True):
            self.progress.advance(1)
            key = self.keys.of_dn(dn)
            if key in self.known:
                self.report.accounts_known += 1
                continue
            account_id = self.keys.account_id_of_dn(dn)
            if account_id is None:
                self.report.skip("person", dn, f"not named by {self.keys.rdn} right under the people branch")
                continue
            row = self._account_row(account_id, dn, attrs)
            if row is None:
                continue
            self.known[key] = account_id
            self.emails.add(row["email"])
            self.report.accounts_adopted += 1
            batch.append(row)
            if len(batch) >= _BATCH:
                self._insert(accounts.add_many, batch)
                batch = []
        self._insert(accounts.add_many, batch)

    def _account_row(self, account_id: str, dn: str, attrs: dict[str, list[str]]) -> dict[str, Any] | None:
        fields = self.layout.people.attributes
        value = lambda field: (attrs.get(fields[field].ldap.lower()) or [None])[0] if field in fields else None  # noqa: E731
        if len(account_id) > 40:
            self.report.skip("person", dn, "its id is longer than 40 characters")
            return None
        email = normalise_email(value("email"))
        if email is None:
            self.report.skip("person", dn, "no valid e-mail address")
            return None
        if email in self.emails:
            self.report.skip("person", dn, f"e-mail {email} is already used by another account")
            return None
        given, family = value("given_name"), value("family_name")
        if not given or not family:
            self.report.skip("person", dn, "no given name or no family name")
            return None
        org_value = value("primary_organisation")
        primary = self._organisation_code(org_value) if org_value else None
        if primary is None:
            self.report.skip("person", dn, "no primary organisation known to the mappings"
                             + (f" ({org_value})" if org_value else ""))
            return None
        secondary_value = value("secondary_organisation")
        secondary = self._organisation_code(secondary_value) if secondary_value else None
        internal = _bool(value("internal"))
        if internal is None:
            internal = email_domain_is_internal(email, self.rt.mappings.internal_email_domains)
        status_values = attrs.get(self.comparer.status_attribute, [])
        disabled = any(v.lower() == AccountStatus.DISABLED for v in status_values) or self.comparer.is_disabled(attrs)
        row: dict[str, Any] = {
            "id": account_id, "email": email, "given_name": given, "family_name": family,
            "civility": value("civility"), "birth_name": value("birth_name"),
            "contact_email": normalise_email(value("contact_email")) if value("contact_email") else None,
            "phone": value("phone"), "primary_organisation": primary, "secondary_organisation": secondary,
            "internal": internal, "director": bool(_bool(value("director"))),
            "terms_version": value("terms_version"), "terms_accepted_at": _generalized_time(value("terms_accepted_at")),
            "status": (AccountStatus.DISABLED if disabled else AccountStatus.ACTIVE).value,
            "created_at": self.now, "updated_at": self.now, "ldap_synced_at": self.now,
            "version": 1, "ldap_version": 1,        # read from LDAP: in step with it
        }
        for name, limit in _LIMITS.items():
            if row.get(name) is not None and len(row[name]) > limit:
                self.report.skip("person", dn, f"{name} is longer than {limit} characters")
                return None
        return row

    # -- groups ----------------------------------------------------------------------------

    def _groups(self, reader: LeanReader) -> None:
        roles = {names.normalise_dn(names.group_dn(self.layout, r.group)): r
                 for app in self.rt.mappings.applications for r in app.roles}
        seen: set[str] = set()
        branch = names.branch_dn(self.layout, "groups")
        attr = self.layout.groups.member_attribute
        request = ranges.ranged(attr) if servers.traits(self.layout.kind).ranged_members else attr
        self.progress.phase("groups (LDAP)", len(roles))
        for dn, attrs in reader.search(branch, "(objectClass=*)", [request], scope="one", page_size=10,
                                       missing_ok=True):
            role = roles.get(names.normalise_dn(dn))
            if role is None:
                self.report.groups_unknown.append(dn)
                continue
            seen.add(role.key)
            self.progress.advance(1)
            values = attrs.get(attr.lower(), [])
            if role.ownership == "shared":
                self.report.shared_members_left += sum(1 for v in values if self.keys.of_dn(v) != self.keys.placeholder)
                continue
            self._members(role.key, role.group, values)
        self.report.groups_missing = sorted(r.key for r in roles.values() if r.key not in seen)

    def _members(self, role_key: str, group: str, values: list[str]) -> None:
        with transaction(self.rt.engine, readonly=True) as conn:
            existing = {self.keys.of_id(a): bool(held) for a, held in grants.role_rows(conn, role_key)}
        rows = []
        for v in values:
            key = self.keys.of_dn(v)
            if key == self.keys.placeholder:
                continue
            account_id = self.known.get(key)
            if account_id is None:
                self.report.skip("member", f"{group}: {v}", "not an account of the people branch syncd knows")
                continue
            state = existing.get(key)
            if state is True:
                self.report.memberships_known += 1
                continue
            if state is False:
                self.report.skip("member", f"{group}: {v}", "revoked in the database (reconcile will remove it)")
                continue
            existing[key] = True
            rows.append({"account_id": account_id, "role_key": role_key, "granted_by_request": None,
                         "granted_at": self.now, "expires_at": None, "revoked_at": None, "applied_at": self.now})
        self.report.memberships_adopted += len(rows)
        for start in range(0, len(rows), _BATCH):
            self._insert(grants.add_many, rows[start:start + _BATCH])

    # -- correspondents --------------------------------------------------------------------

    def _correspondents(self, found: dict[str, list[str]]) -> None:
        with transaction(self.rt.engine, readonly=True) as conn:
            existing = {(d.account_id, d.organisation_code) for d in repo.current_deciders(conn)}
        rows = []
        for code, dns in sorted(found.items()):
            for dn in dns:
                account_id = self.known.get(self.keys.of_dn(dn))
                if account_id is None:
                    self.report.skip("correspondent", f"{code}: {dn}", "not an account syncd knows")
                    continue
                if (account_id, code) in existing:
                    self.report.correspondents_known += 1
                    continue
                existing.add((account_id, code))
                rows.append({"account_id": account_id, "scope": "correspondent", "organisation_code": code,
                             "created_at": self.now})
        self.report.correspondents_adopted = len(rows)
        self._insert(repo.add_deciders, rows)

    def _insert(self, add: Callable[[Any, list[dict[str, Any]]], None], rows: list[dict[str, Any]]) -> None:
        if rows and not self.dry_run:
            with transaction(self.rt.engine) as conn:
                add(conn, rows)


def adopt(rt: Runtime, *, dry_run: bool = False, progress: Progress | None = None) -> AdoptReport:
    """Record what LDAP holds as desired state (see the module docstring); removes nothing."""
    return _Adopter(rt, dry_run, progress or NoProgress()).run()

