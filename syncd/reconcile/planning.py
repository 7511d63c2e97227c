"""Building a reconciliation plan from two streams: LDAP (paged, lean) and SQL (streamed).

Full run, in this order:

1. **People, LDAP side.** One paged search of the people branch (one level) for the
   attributes syncd may own. Each entry is reduced at once to its key and a few digests
   (``compare.AccountComparer``): memory holds ~100 bytes per person, not the entries.
2. **Accounts, database side.** The ``accounts`` table, streamed (a server-side cursor on
   PostgreSQL). Each row's desired attributes are digested and matched against the LDAP
   digest of the same key, which is then dropped. Only rows whose digests differ are kept
   ("suspects"); an active row with no entry is *missing*; the LDAP keys left at the end
   are *extra* (entries the database does not know).
3. **Suspects.** Their entries are read again, in batches (one ``(|(uid=…)…)`` search per
   200), and compared attribute by attribute: *renamed* (e-mail or names), *changed*,
   *disable*.
4. **Groups.** One paged search of the groups branch for ``member``; the entries stream in
   one at a time, so memory holds one group's member list (the biggest one bounds it). For
   each role group, LDAP is read first, then that role's rows in ``memberships`` (so a
   revocation committed in between is seen as such), and ``syncd.core.planner.plan_group``
   decides: exclusive groups exactly, shared groups only removing members syncd granted.
   Role groups that never showed up are *missing*.

One-object runs read only what they need: ``plan_account`` reads one entry and asks each
role group with an LDAP compare (no member list transferred, O(log n) on the server with
``sortvals``); ``plan_group`` reads one group.

Reads of the database happen *after* the LDAP reads they are compared with: a change that
lands in between is then seen in its newer state on the database side, which wins.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

from sqlalchemy import func, select

from syncd.core.planner import plan_group
from syncd.directory import names, ranges, servers
from syncd.errors import PermanentError
from syncd.jobs.runtime import Runtime
from syncd.mappings import Role
from syncd.reconcile.compare import AccountComparer, Keys
from syncd.reconcile.config import ReconcileConfig
from syncd.reconcile.ldapread import LeanReader
from syncd.reconcile.model import AccountDrift, GroupDrift, Plan
from syncd.store import repo
from syncd.store.db import transaction
from syncd.store.tables import accounts, memberships

SUSPECT_BATCH = 200          # entries re-read per search
EXTRA_DETAILS = 1000         # extra accounts described one by one (all of them when disabling)
# What a row needs to say what its entry should hold (and what the plan shows).
_ALWAYS = ("id", "status", "director", "email", "given_name", "family_name")


class Progress(Protocol):
    def phase(self, name: str, total: int | None = None) -> None: ...
    def advance(self, n: int = 1) -> None: ...


class NoProgress:
    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


class Planner:
    """Plans for one runtime (mappings, database, LDAP settings). See the module docstring."""

    def __init__(self, rt: Runtime, config: ReconcileConfig, progress: Progress | None = None):
        self.rt = rt
        self.config = config
        self.layout = rt.mappings.directory
        self.keys = Keys(self.layout)
        self.comparer = AccountComparer(self.layout)
        self.progress = progress or NoProgress()
        self.member_attr = self.layout.groups.member_attribute
        # What member lists are asked for: by ranges where the server caps them (AD).
        self.member_request = (ranges.ranged(self.member_attr) if servers.traits(self.layout.kind).ranged_members
                               else self.member_attr)
        self.roles: list[Role] = [r for app in rt.mappings.applications for r in app.roles]
        self._inactive: frozenset[str] | None = None     # read once per plan, after the LDAP reads
        self.role_by_group_key = {names.normalise_dn(names.group_dn(self.layout, r.group)): r for r in self.roles}

    def reader(self) -> LeanReader:
        return LeanReader(self.rt.settings.ldap)

    # -- full ------------------------------------------------------------------------------

    def plan_full(self) -> Plan:
        plan = Plan("full")
        with self.reader() as reader:
            t = time.perf_counter()
            people = self._read_people(reader, plan)
            plan.seconds["ldap_people"] = time.perf_counter() - t
            t = time.perf_counter()
            suspects = self._match_accounts(people, plan)
            plan.seconds["db_accounts"] = time.perf_counter() - t
            t = time.perf_counter()
            self._diff_suspects(reader, suspects, plan)
            self._describe_extras(reader, people, plan)
            del people
            plan.seconds["suspects"] = time.perf_counter() - t
            t = time.perf_counter()
            self._plan_groups(reader, plan)
            plan.seconds["groups"] = time.perf_counter() - t
        return plan

    def _read_people(self, reader: LeanReader, plan: Plan) -> dict[str, tuple[bytes, bool]]:
        with transaction(self.rt.engine, readonly=True) as conn:
            expected = repo_count_accounts(conn)
        self.progress.phase("people (LDAP)", expected)
        people: dict[str, tuple[bytes, bool]] = {}
        comparer, keys = self.comparer, self.keys
        n = 0
        for dn, attrs in reader.search(self.keys.branch, self.keys.people_filter, comparer.read_attributes,
                                       scope="one", page_size=self.config.page_size, missing_ok=True):
            people[keys.of_dn(dn)] = (comparer.ldap_digests(attrs), comparer.is_disabled(attrs))
            n += 1
            if n % 1000 == 0:
                self.progress.advance(1000)
        self.progress.advance(n % 1000)
        plan.people_in_ldap = len(people)
        return people

    def _account_rows(self) -> Iterator[Any]:
        # Only the columns the comparison reads: converting unused timestamps costs ~1 s per 150k rows.
        wanted = set(_ALWAYS) | set(self.layout.people.attributes)
        columns = [c for c in accounts.c if c.name in wanted]
        with transaction(self.rt.engine, readonly=True) as conn:
            result = conn.execution_options(stream_results=True, yield_per=2000).execute(select(*columns))
            for row in result.mappings():
                yield row

    def _match_accounts(self, people: dict[str, tuple[bytes, bool]], plan: Plan) -> dict[str, tuple]:
        """Pop every known key from ``people``; return the suspects (key -> (row, desired))."""
        self.progress.phase("accounts (database)", plan.people_in_ldap or None)
        comparer, keys = self.comparer, self.keys
        suspects: dict[str, tuple] = {}
        n = 0
        for row in self._account_rows():
            n += 1
            if n % 1000 == 0:
                self.progress.advance(1000)
            key = keys.of_id(row["id"])
            have = people.pop(key, None)
            if row["status"] not in ("active", "disabled"):
                continue                   # pending: not syncd's to compare yet
            plan.accounts_in_db += 1
            if have is None:
                if row["status"] == "active":
                    plan.accounts.append(AccountDrift(row["id"], "missing", keys.dn(row["id"]), row["email"],
                                                      action="create"))
                continue
            desired = comparer.desired(row)
            variant = comparer.variant_of(row)
            if comparer.digest_of_variant(have[0], variant) != comparer.db_digest(desired, variant):
                suspects[key] = (dict(row), desired)
        self.progress.advance(n % 1000)
        return suspects

    def _diff_suspects(self, reader: LeanReader, suspects: dict[str, tuple], plan: Plan) -> None:
        if not suspects:
            return
        self.progress.phase("accounts that differ (LDAP)", len(suspects))
        items = list(suspects.items())
        for start in range(0, len(items), SUSPECT_BATCH):
            batch = items[start:start + SUSPECT_BATCH]
            flt = names.filter_or(*(names.filter_eq(self.keys.rdn, row["id"]) for _, (row, _) in batch))
            found = {self.keys.of_dn(dn): attrs for dn, attrs in
                     reader.search(self.keys.branch, flt, self.comparer.read_attributes, scope="one")}
            for key, (row, desired) in batch:
                attrs = found.get(key)
                if attrs is None:      # gone in between
                    if row["status"] == "active":
                        plan.accounts.append(AccountDrift(row["id"], "missing", self.keys.dn(row["id"]),
                                                          row["email"], action="create"))
                    continue
                drift = self.account_drift(row, desired, attrs)
                if drift is not None:
                    plan.accounts.append(drift)
            self.progress.advance(len(batch))

    def account_drift(self, row: dict, desired: dict[str, list[str]], attrs: dict[str, list[str]]
                      ) -> AccountDrift | None:
        diff = self.comparer.differences(desired, attrs)
        if not diff:
            return None
        changed = {a.lower() for a in diff}
        if row["status"] == "disabled" and self.comparer.status_attribute in changed:
            kind = "disable"
        elif changed & self.comparer.mail_attributes:
            kind = "renamed"
        else:
            kind = "changed"
        return AccountDrift(row["id"], kind, self.keys.dn(row["id"]), row["email"], diff, action="update")

    def _describe_extras(self, reader: LeanReader, people: dict[str, tuple[bytes, bool]], plan: Plan) -> None:
        """Entries of the people branch the database does not know: reported, maybe disabled."""
        if not people:
            return
        disable = self.config.disable_extra_accounts
        plan.extra_accounts_total = len(people)
        # Every entry to disable is described (it is written); the others up to a limit.
        to_disable = [k for k, (_, disabled) in people.items() if disable and not disabled]
        others = [k for k, (_, disabled) in people.items() if not (disable and not disabled)]
        described = to_disable + others[:EXTRA_DETAILS]
        mail = self.layout.people.attributes.get("email")
        mail_attr = mail.ldap.lower() if mail else "mail"
        for start in range(0, len(described), SUSPECT_BATCH):
            batch = described[start:start + SUSPECT_BATCH]
            flt = names.filter_or(*(self.keys.filter_of_key(k) for k in batch))
            for dn, attrs in reader.search(self.keys.branch, flt, [mail_attr, self.layout.people.disabled_attribute],
                                           scope="one"):
                uid = self.keys.account_id_of_dn(dn)
                already = self.comparer.is_disabled(attrs)
                action = "disable" if disable and not already and uid else "none"
                note = "already disabled" if already else (None if uid else "not named by an account id")
                plan.accounts.append(AccountDrift(uid or dn, "extra", dn, (attrs.get(mail_attr) or [None])[0],
                                                  action=action, note=note))

    # -- groups ----------------------------------------------------------------------------

    def _plan_groups(self, reader: LeanReader, plan: Plan) -> None:
        self.progress.phase("groups", len(self.roles))
        seen: set[str] = set()
        branch = names.branch_dn(self.layout, "groups")
        for dn, attrs in reader.search(branch, "(objectClass=*)", [self.member_request], scope="one",
                                       page_size=10, missing_ok=True):
            role = self.role_by_group_key.get(names.normalise_dn(dn))
            if role is None or role.key in seen:
                continue
            seen.add(role.key)
            self._plan_one_group(role, dn, attrs.get(self.member_attr.lower(), []), plan)
            self.progress.advance(1)
        for role in self.roles:
            if role.key not in seen:
                self._plan_one_group(role, None, [], plan)
                self.progress.advance(1)

    def _plan_one_group(self, role: Role, dn: str | None, values: list[str], plan: Plan) -> GroupDrift:
        keys = self.keys
        actual: dict[str, str] = {}
        for v in values:
            k = keys.of_dn(v)
            if k != keys.placeholder:
                actual[k] = v
        del values
        desired, granted = self.desired_members(role.key)
        change = plan_group(role.group, desired, actual, role.ownership, granted)
        drift = GroupDrift(role.key, role.group, dn or names.group_dn(self.layout, role.group), role.ownership,
                           missing=dn is None, current=len(actual), desired=len(desired))
        drift.add = [desired[k] for k in change.add]
        drift.add_dns = [keys.dn(a) for a in drift.add]
        drift.remove = [actual[k] for k in change.remove]
        if role.ownership == "shared":
            drift.kept_foreign = sum(1 for k in actual if k not in desired and k not in granted)
        plan.groups_checked += 1
        plan.member_values += len(actual)
        plan.desired_memberships += len(desired)
        if drift.missing or drift.size:
            plan.groups.append(drift)
        return drift

    def desired_members(self, role_key: str) -> tuple[dict[str, str], set[str]]:
        """(key -> account id) of the role's desired members, and keys syncd granted then revoked.

        Desired: a membership row not revoked, of an active account. Granted-then-revoked:
        a revoked row, or a row of an account that is no longer active.
        """
        desired: dict[str, str] = {}
        granted: set[str] = set()
        of_id = self.keys.of_id
        inactive = self._inactive_accounts()
        with transaction(self.rt.engine, readonly=True) as conn:
            # No join with accounts: it triples the cost on SQLite (measured); the few
            # accounts that are not active are looked up in a set instead.
            rows = conn.execution_options(stream_results=True, yield_per=5000).execute(
                select(memberships.c.account_id, memberships.c.revoked_at.is_(None))
                .where(memberships.c.role_key == role_key))
            for account_id, current in rows:
                if current and account_id not in inactive:
                    desired[of_id(account_id)] = account_id
                else:
                    granted.add(of_id(account_id))
        granted.difference_update(desired)
        return desired, granted

    def _inactive_accounts(self) -> frozenset[str]:
        if self._inactive is None:
            with transaction(self.rt.engine, readonly=True) as conn:
                self._inactive = frozenset(r[0] for r in conn.execute(
                    select(accounts.c.id).where(accounts.c.status != "active")))
        return self._inactive

    # -- one object ------------------------------------------------------------------------

    def plan_group(self, role_key: str) -> Plan:
        role = self.rt.mappings.role(role_key)
        if role is None:
            raise UnknownObject(f"no role {role_key!r} in the mappings")
        plan = Plan(f"group:{role_key}")
        dn = names.group_dn(self.layout, role.group)
        t = time.perf_counter()
        with self.reader() as reader:
            attrs = reader.read(dn, [self.member_request])
        self._plan_one_group(role, dn if attrs is not None else None,
                             (attrs or {}).get(self.member_attr.lower(), []), plan)
        plan.seconds["group"] = time.perf_counter() - t
        return plan

    def plan_account(self, id_or_email: str) -> Plan:
        t = time.perf_counter()
        with transaction(self.rt.engine, readonly=True) as conn:
            row = repo.find_account(conn, id_or_email)
        account_id = row["id"] if row else id_or_email
        plan = Plan(f"account:{account_id}")
        dn = self.keys.dn(account_id)
        with self.reader() as reader:
            attrs = reader.read(dn, self.comparer.read_attributes)
            if row is None and attrs is None:
                raise UnknownObject(f"no account {id_or_email!r} in the database nor in LDAP")
            # LDAP first, then the database (see the module docstring).
            in_group = {}
            for role in self.roles:
                in_group[role.key] = reader.compare(names.group_dn(self.layout, role.group), self.member_attr, dn)
        with transaction(self.rt.engine, readonly=True) as conn:
            row = repo.account_by_id(conn, account_id) if row is not None else None
            rows = list(conn.execute(select(memberships.c.role_key, memberships.c.revoked_at.is_(None))
                                     .where(memberships.c.account_id == account_id)))
        plan.people_in_ldap = 1 if attrs is not None else 0
        if row is None:
            assert attrs is not None
            disable = self.config.disable_extra_accounts and not self.comparer.is_disabled(attrs)
            mail = self.layout.people.attributes.get("email")
            plan.accounts.append(AccountDrift(account_id, "extra", dn,
                                              (attrs.get(mail.ldap.lower()) or [None])[0] if mail else None,
                                              action="disable" if disable else "none"))
            plan.extra_accounts_total = 1
        elif row["status"] in ("active", "disabled"):
            plan.accounts_in_db = 1
            if attrs is None:
                if row["status"] == "active":
                    plan.accounts.append(AccountDrift(account_id, "missing", dn, row["email"], action="create"))
            else:
                drift = self.account_drift(dict(row), self.comparer.desired(row), attrs)
                if drift:
                    plan.accounts.append(drift)
        active = row is not None and row["status"] == "active"
        states = {role_key: bool(current) for role_key, current in rows}
        key = self.keys.of_id(account_id)
        for role in self.roles:
            member = in_group[role.key]
            wanted = active and states.get(role.key, False)
            granted = role.key in states and not wanted
            actual = {key: dn} if member else {}
            desired = {key: account_id} if wanted else {}
            change = plan_group(role.group, desired, actual, role.ownership, {key} if granted else set())
            group_dn = names.group_dn(self.layout, role.group)
            plan.groups_checked += 1
            plan.member_values += len(actual)
            plan.desired_memberships += len(desired)
            if member is None or change.size:
                drift = GroupDrift(role.key, role.group, group_dn, role.ownership, missing=member is None,
                                   current=len(actual), desired=len(desired))
                drift.add = [account_id] if change.add else []
                drift.add_dns = [dn] if change.add else []
                drift.remove = [dn] if change.remove else []
                if member is None and not drift.size:
                    # a missing group is reported by full and group runs; here only if it matters
                    continue
                plan.groups.append(drift)
        plan.seconds["account"] = time.perf_counter() - t
        return plan


class UnknownObject(PermanentError):
    """The account or role named on the command line does not exist."""


def repo_count_accounts(conn: Any) -> int:
    return conn.execute(select(func.count()).select_from(accounts)
                        .where(accounts.c.status.in_(("active", "disabled")))).scalar_one()


