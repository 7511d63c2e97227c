"""Building a reconciliation plan from two streams: LDAP (paged, lean) and SQL (streamed).

Full run, in this order:

1. **People, LDAP side.** One paged search of the people branch (one level) for each
   entry's change stamp (``syncd.directory.stamps``) and status only: memory holds a key, a
   stamp and a flag per person, not the entries.
2. **Accounts, database side.** The ``accounts`` table joined with ``ldap_stamps``, streamed
   (a server-side cursor on PostgreSQL). An entry whose stamp is the one recorded, with the
   same digest of the account's fields and the same layout, is trusted; the others are
   "suspects"; an active row with no entry is *missing*; the LDAP keys left at the end are
   *extra* (entries the database does not know).
3. **Suspects.** Their entries are read in full, in batches (one ``(|(uid=…)…)`` search per
   200), then their rows, and compared attribute by attribute: *renamed* (e-mail or names),
   *changed*, *disable*; an entry found equal gets its stamp recorded.
4. **Groups.** One paged search of the groups branch for ``member``; the entries stream in
   one at a time, and memory holds a batch of member lists (the biggest group bounds it). For
   each role group, LDAP is read first, then that role's rows in ``memberships`` (so a
   revocation committed in between is seen as such): up to ``GROUP_BATCH`` groups read, then
   their roles' rows in one statement. Member values equal, as strings, to the
   DNs syncd writes for the desired members need no parsing; otherwise
   ``syncd.core.planner.plan_group`` decides on keys: exclusive groups exactly, shared groups
   only removing members syncd granted. Role groups that never showed up are *missing*.

Incremental runs (``syncd.reconcile.incremental``) reuse steps 3 and 4 for what changed since
a cursor, which ``propose_cursor`` computes for the next run.

One-object runs read only what they need: ``plan_account`` reads one entry and asks each
role group with an LDAP compare (no member list transferred, O(log n) on the server with
``sortvals``); ``plan_group`` reads one group.

Reads of the database happen *after* the LDAP reads they are compared with: a change that
lands in between is then seen in its newer state on the database side, which wins.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Any, Protocol

from syncd.core.model import AccountStatus
from syncd.core.planner import plan_group
from syncd.directory import names, ranges, servers
from syncd.directory.stamps import guid_text, layout_fingerprint, server_fingerprint, stamp_profile
from syncd.errors import PermanentError
from syncd.runtime import Runtime
from syncd.mappings import Role
from syncd.reconcile.compare import AccountComparer, Keys
from syncd.reconcile.config import ReconcileConfig
from syncd.reconcile.ldapread import LeanReader
from syncd.reconcile.model import AccountDrift, GroupDrift, Plan
from syncd.store import accounts, grants, repo
from syncd.store import stamps as stamp_store
from syncd.store.db import transaction

SUSPECT_BATCH = 200          # entries re-read per search
GROUP_BATCH = 50             # LDAP groups whose roles' rows are read in one statement, at most:
GROUP_BATCH_VALUES = 20_000  # fewer if they hold that many member values (memory: that, plus one group)
GROUPS_PAGE = 100            # groups per page: entries stream in one at a time whatever the page size,
                             # and each page is a request to encode and a wake-up of the server
BULK_SUSPECTS = 2000         # above (and above a tenth of the people): one read of the branch instead
EXTRA_DETAILS = 1000         # extra accounts described one by one (all of them when disabling)


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
        self.stamps = stamp_profile(self.layout.kind)
        self.stamp_key = self.stamps.attribute.lower()
        self.fingerprint = layout_fingerprint(self.layout)
        self.entry_attributes = [*self.comparer.read_attributes, self.stamps.attribute]
        # What a row needs to say what its entry should hold (and what the plan shows).
        self.account_columns = stamp_store.source_columns(self.layout.people)
        self.placeholder_value = names.placeholder_dn(self.layout)
        # What was read, for the logs and the bench: entries read in full, suspects, stamps recorded.
        self.reads: Counter[str] = Counter()
        self._verified: list[tuple[str, str, str]] = []
        self._newest: str | None = None             # the newest change stamp seen in this run
        self._start_cursor: str | None = None       # the server's own cursor, read before the run
        self.server_id: str | None = None           # the server counting per-server stamps (AD's DC)
        self.started_at = time.time()               # syncd's clock (not rt.clock: tests freeze that)
        self.next_cursor: str | None = None
        self._member_cache: tuple[str, list[str], list[str]] | None = None
        self._role_rows: grants.RoleRows | None = None     # one connection for a run's groups
        self._prefetched: dict[str, tuple[list[str], list[str]]] = {}   # ids of the groups being planned

    def reader(self) -> LeanReader:
        return LeanReader(self.rt.settings.ldap)

    # -- full ------------------------------------------------------------------------------

    def plan_full(self) -> Plan:
        plan = Plan("full")
        started = time.perf_counter()
        with self.reader() as reader:
            self.read_start_cursor(reader)
            t = time.perf_counter()
            # PostgreSQL: the accounts' rows are fetched by a thread while the people are read.
            early = stamp_store.prefetch_stamped(self.rt.engine, self.account_columns)
            try:
                people = self._read_stamps(reader, plan)
                plan.seconds["ldap_people"] = time.perf_counter() - t
                t = time.perf_counter()
                suspects = self._match_stamps(people, plan, early)
            finally:
                if early is not None:
                    early.close()
            plan.seconds["db_accounts"] = time.perf_counter() - t
            t = time.perf_counter()
            self._check_suspects(reader, suspects, plan)
            self._describe_extras(reader, people, plan)
            del people
            plan.seconds["suspects"] = time.perf_counter() - t
            t = time.perf_counter()
            self._plan_groups(reader, plan)
            plan.seconds["groups"] = time.perf_counter() - t
        self.propose_cursor(None, time.perf_counter() - started)
        return plan

    def _read_stamps(self, reader: LeanReader, plan: Plan) -> dict[str, tuple[str | None, bool]]:
        """key -> (change stamp, disabled) of every person entry: no other attribute crosses the wire."""
        with transaction(self.rt.engine, readonly=True) as conn:
            expected = accounts.count_provisioned(conn)
        self.progress.phase("people (LDAP)", expected)
        people: dict[str, tuple[str | None, bool]] = {}
        of_dn, is_disabled, stamp = self.keys.of_dn, self.comparer.is_disabled, self.stamp_key
        n = 0
        for dn, attrs in reader.search(self.keys.branch, self.keys.people_filter,
                                       [self.stamps.attribute, self.layout.people.disabled_attribute],
                                       scope="one", page_size=self.config.page_size, missing_ok=True):
            values = attrs.get(stamp)
            people[of_dn(dn)] = (values[0] if values else None, is_disabled(attrs))
            n += 1
            if n % 1000 == 0:
                self.progress.advance(1000)
        self.progress.advance(n % 1000)
        plan.people_in_ldap = len(people)
        self.seen(s for s, _ in people.values() if s)
        return people

    def _match_stamps(self, people: dict[str, tuple[str | None, bool]], plan: Plan,
                      early: stamp_store.Prefetch | None = None) -> list[tuple[str, str]]:
        """Pop every known key from ``people``; return the suspects: (key, account id) of the
        entries whose stamp, fields (their digest) or layout differ from what was recorded.

        With ``early``, the rows were read as the people's read began: they decide what is a
        suspect (every suspect's row is read again after its entry), but an account missing from
        LDAP or an entry unknown to the database is decided only by rows read after LDAP, as
        without it; if that read finds any, the match is done again with such a read."""
        if early is not None:
            taken: dict[str, tuple[str | None, bool]] = {}
            missing_before = len(plan.accounts)
            suspects = self._match_rows(people, plan, early.rows(), stamp_store.values_digest(self.account_columns),
                                        taken)
            if not people and len(plan.accounts) == missing_before:
                return suspects
            people.update(taken)
            del plan.accounts[missing_before:]
            plan.accounts_in_db = 0
        with transaction(self.rt.engine, readonly=True) as conn:
            return self._match_rows(people, plan, *stamp_store.read_stamped(conn, self.account_columns))

    def _match_rows(self, people: dict[str, tuple[str | None, bool]], plan: Plan, rows: Iterable[Any],
                    digest_of: Callable[[Any], str],
                    taken: dict[str, tuple[str | None, bool]] | None = None) -> list[tuple[str, str]]:
        self.progress.phase("accounts (database)", plan.people_in_ldap or None)
        keys, layout = self.keys, self.fingerprint
        suspects: list[tuple[str, str]] = []
        columns = self.account_columns
        at = {c.name: i for i, c in enumerate(columns)}
        i_id, i_status, i_email = at["id"], at["status"], at["email"]
        of_id, pop, missing = keys.of_id, people.pop, plan.accounts
        active, disabled = AccountStatus.ACTIVE.value, AccountStatus.DISABLED.value
        n = 0
        for row in rows:
            n += 1
            if n % 1000 == 0:
                self.progress.advance(1000)
            account_id, status = row[i_id], row[i_status]
            key = of_id(account_id)
            have = pop(key, None)
            if have is not None and taken is not None:
                taken[key] = have
            if status != active and status != disabled:
                continue                   # pending: not syncd's to compare yet
            plan.accounts_in_db += 1
            if have is None:
                if status == active:
                    missing.append(AccountDrift(account_id, "missing", keys.dn(account_id), row[i_email],
                                                action="create"))
                continue
            if have[0] is None or have[0] != row[-2] or row[-1] != layout \
                    or digest_of(row) != row[-3]:
                suspects.append((key, account_id))
        self.progress.advance(n % 1000)
        self.reads["suspects"] = len(suspects)
        return suspects

    def _check_suspects(self, reader: LeanReader, suspects: list[tuple[str, str]], plan: Plan) -> None:
        """Read the suspects' entries in full, then their rows, and compare: a search per 200
        suspects, or, when they are many (the first run, a restored directory), one paged read of
        the whole branch keeping only them."""
        if not suspects:
            return
        self.progress.phase("accounts that differ (LDAP)", len(suspects))
        if len(suspects) > BULK_SUSPECTS and len(suspects) * 10 > plan.people_in_ldap:
            self._check_suspects_in_one_read(reader, dict(suspects), plan)
        else:
            for start in range(0, len(suspects), SUSPECT_BATCH):
                batch = suspects[start:start + SUSPECT_BATCH]
                flt = names.filter_or(*(names.filter_eq(self.keys.rdn, account_id) for _, account_id in batch))
                found = {self.keys.of_dn(dn): attrs for dn, attrs in
                         reader.search(self.keys.branch, flt, self.entry_attributes, scope="one")}
                self.reads["entries"] += len(found)
                self.compare_entries([(key, account_id, found.get(key)) for key, account_id in batch], plan,
                                     extras=False)
                self.progress.advance(len(batch))
        self.record_verified()

    def _check_suspects_in_one_read(self, reader: LeanReader, wanted: dict[str, str], plan: Plan) -> None:
        of_dn = self.keys.of_dn
        batch: list[tuple[str, str, dict[str, list[str]] | None]] = []
        for dn, attrs in reader.search(self.keys.branch, self.keys.people_filter, self.entry_attributes,
                                       scope="one", page_size=self.config.page_size, missing_ok=True):
            key = of_dn(dn)
            account_id = wanted.pop(key, None)
            if account_id is None:
                continue
            self.reads["entries"] += 1
            batch.append((key, account_id, attrs))
            if len(batch) >= SUSPECT_BATCH:
                self.compare_entries(batch, plan, extras=False)
                self.progress.advance(len(batch))
                batch = []
        batch += [(key, account_id, None) for key, account_id in wanted.items()]    # gone in between
        for start in range(0, len(batch), SUSPECT_BATCH):
            self.compare_entries(batch[start:start + SUSPECT_BATCH], plan, extras=False)
        self.progress.advance(len(batch))

    def compare_entries(self, batch: list[tuple[str, str, dict[str, list[str]] | None]], plan: Plan, *,
                        extras: bool) -> None:
        """Compare entries just read (key, account id, attributes or None if gone) with their rows,
        read now (after LDAP). Equal: the entry's stamp is recorded with the digest of the row. Rows
        that vanished are skipped, or with ``extras`` their entries are reported as extra."""
        ids = [account_id for _, account_id, _ in batch]
        with transaction(self.rt.engine, readonly=True) as conn:
            rows = stamp_store.stamped(conn, self.account_columns, ids)
        for _key, account_id, attrs in batch:
            row = rows.get(account_id)
            if row is None:
                if extras and attrs is not None:
                    self.report_extra(self.keys.dn(account_id), attrs, plan)
                    plan.extra_accounts_total += 1
                continue
            if row["status"] not in (AccountStatus.ACTIVE, AccountStatus.DISABLED):
                continue
            if attrs is not None and self._trusted(row, attrs):
                continue
            if attrs is None:      # gone in between
                if row["status"] == AccountStatus.ACTIVE:
                    plan.accounts.append(AccountDrift(row["id"], "missing", self.keys.dn(row["id"]),
                                                      row["email"], action="create"))
                continue
            self.reads["compared"] += 1
            drift = self.account_drift(dict(row), self.comparer.desired(row), attrs)
            if drift is not None:
                plan.accounts.append(drift)
                continue
            stamp = attrs.get(self.stamp_key)
            if stamp:
                self._verified.append((row["id"], stamp_store.row_digest(row, self.account_columns), stamp[0]))

    def _trusted(self, row: Any, attrs: dict[str, list[str]]) -> bool:
        """The entry's stamp is the one recorded with these fields of the row, under this layout."""
        stamp = attrs.get(self.stamp_key)
        return bool(stamp) and stamp[0] == row["stamp"] and row["stamped_layout"] == self.fingerprint \
            and stamp_store.row_digest(row, self.account_columns) == row["stamped_digest"]

    def read_start_cursor(self, reader: LeanReader) -> None:
        """Servers whose stamps are counters, not clocks, publish their latest one: read it
        before anything else, so every change made during the run is at or after it."""
        self.server_id = self.read_server_id(reader)
        if self.server_id is not None:
            # A recorded stamp is another DC's number: trusted on the DC that counted it only.
            self.fingerprint = server_fingerprint(layout_fingerprint(self.layout), self.server_id)
        attribute = self.stamps.root_dse_cursor
        if attribute is None:
            return
        root = reader.read("", [attribute]) or {}
        self._start_cursor = self.stamps.newest(v for k, vs in root.items()
                                                if k.split(";")[0] == attribute.lower() for v in vs)

    def read_server_id(self, reader: LeanReader) -> str | None:
        """The identity of the server whose stamps this run reads, where stamps are counted per
        server (AD: the DC's invocationId, found through the root DSE's dsServiceName)."""
        if self.stamps.server_identity is None:
            return None
        pointer, attribute = self.stamps.server_identity
        own = reader.read_binary("", pointer)
        if not own:
            raise PermanentError(f"the directory's root DSE has no {pointer}: cannot tell which server counts "
                                 f"its {self.stamps.attribute}")
        raw = reader.read_binary(own[0].decode("utf-8"), attribute)
        if not raw:
            raise PermanentError(f"{own[0].decode('utf-8')!r} has no {attribute} the service account may read")
        return guid_text(raw[0])

    def trusts(self, cursor: stamp_store.Cursor) -> bool:
        """Whether ``cursor`` was counted by the server this run reads (``read_start_cursor`` first)."""
        return cursor.server == self.server_id

    def record_verified(self) -> None:
        """Record the stamps of the entries found equal to their rows (see ``compare_entries``)."""
        if not self._verified:
            return
        verified, self._verified = self._verified, []
        with transaction(self.rt.engine) as conn:
            self.reads["stamps_recorded"] += stamp_store.record(conn, verified, self.fingerprint)

    def report_extra(self, dn: str, attrs: dict[str, list[str]], plan: Plan) -> None:
        uid = self.keys.account_id_of_dn(dn)
        already = self.comparer.is_disabled(attrs)
        action = "disable" if self.config.disable_extra_accounts and not already and uid else "none"
        note = "already disabled" if already else (None if uid else "not named by an account id")
        mail = self.layout.people.attributes.get("email")
        mail_attr = mail.ldap.lower() if mail else "mail"
        plan.accounts.append(AccountDrift(uid or dn, "extra", dn, (attrs.get(mail_attr) or [None])[0],
                                          action=action, note=note))

    def seen(self, stamps: Any) -> None:
        newest = self.stamps.newest(stamps)
        self._newest = self.stamps.later(self._newest, newest)

    def propose_cursor(self, previous: str | None, seconds: float) -> None:
        """Where the next incremental run starts: at or before anything this one may have missed
        (``syncd.directory.stamps``); never before ``previous``."""
        profile = self.stamps
        from_seen = from_clock = None
        if self._newest is not None and profile.cursor_from_seen is not None:
            from_seen = profile.cursor_from_seen(self._newest, seconds)
        if profile.cursor_from_clock is not None:
            from_clock = profile.cursor_from_clock(self.started_at)
        self.next_cursor = profile.later(previous, self._start_cursor, from_seen, from_clock)

    def account_drift(self, row: dict, desired: dict[str, list[str]], attrs: dict[str, list[str]]
                      ) -> AccountDrift | None:
        diff = self.comparer.differences(desired, attrs)
        if not diff:
            return None
        changed = {a.lower() for a in diff}
        if row["status"] == AccountStatus.DISABLED and self.comparer.status_attribute in changed:
            kind = "disable"
        elif changed & self.comparer.mail_attributes:
            kind = "renamed"
        else:
            kind = "changed"
        return AccountDrift(row["id"], kind, self.keys.dn(row["id"]), row["email"], diff, action="update")

    def _describe_extras(self, reader: LeanReader, people: dict[str, tuple[str | None, bool]], plan: Plan) -> None:
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
                self.report_extra(dn, attrs, plan)

    # -- groups ----------------------------------------------------------------------------

    def _plan_groups(self, reader: LeanReader, plan: Plan) -> None:
        with grants.role_rows_reader(self.rt.engine) as self._role_rows:
            try:
                self._plan_all_groups(reader, plan)
            finally:
                self._role_rows = None
                self._prefetched = {}

    def _plan_all_groups(self, reader: LeanReader, plan: Plan) -> None:
        self.progress.phase("groups", len(self.roles))
        seen: set[str] = set()
        branch = names.branch_dn(self.layout, "groups")
        member = self.member_attr.lower()
        batch: list[tuple[Role, str, list[str]]] = []
        values = 0
        for dn, attrs in reader.search(branch, "(objectClass=*)", [self.member_request, self.stamps.attribute],
                                       scope="one", page_size=GROUPS_PAGE, missing_ok=True):
            self.seen(attrs.get(self.stamp_key, ()))
            role = self.role_by_group_key.get(names.normalise_dn(dn))
            if role is None or role.key in seen:
                continue
            seen.add(role.key)
            batch.append((role, dn, attrs.get(member, [])))
            values += len(batch[-1][2])
            if values >= GROUP_BATCH_VALUES or len(batch) >= GROUP_BATCH:
                self._plan_batch(batch, plan)
                batch, values = [], 0
        self._plan_batch(batch, plan)
        for role in self.roles:
            if role.key not in seen:
                self.plan_one_group(role, None, [], plan)
                self.progress.advance(1)

    def _plan_batch(self, batch: list[tuple[Role, str, list[str]]], plan: Plan) -> None:
        """Groups read from LDAP, planned with their roles' rows read now, in one statement."""
        if not batch:
            return
        assert self._role_rows is not None
        self._prefetched = self._role_rows.ids_many([role.key for role, _, _ in batch])
        for role, dn, values in batch:
            self.plan_one_group(role, dn, values, plan)
            self.progress.advance(1)
        batch.clear()
        self._prefetched = {}

    def plan_one_group(self, role: Role, dn: str | None, values: list[str], plan: Plan) -> GroupDrift | None:
        if dn is not None and self._group_unchanged(role, values, plan):
            return None
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

    def _group_unchanged(self, role: Role, values: list[str], plan: Plan) -> bool:
        """Whether the group holds exactly its desired members, compared as strings.

        The server returns member values as they were written, and syncd writes ``keys.dn``:
        when the two sets of strings are equal no value needs parsing. Any difference (a value
        written by another tool, in another case or spacing, a member to add or remove, a
        shared group's foreign members) goes to the keyed comparison of ``_plan_one_group``.
        """
        wanted, _ = self._member_rows(role.key)
        have = set(values)
        have.discard(self.placeholder_value)
        if len(have) != len(wanted) or len(values) - len(have) > 1:
            return False
        if not self.keys.all_plain(wanted):
            return False
        prefix, suffix = self.keys.dn_parts
        # dn(id) for each id, built and looked up without a Python-level loop (C's map).
        if not have.issuperset(map(str.__add__, map(prefix.__add__, wanted), repeat(suffix))):
            return False
        plan.groups_checked += 1
        plan.member_values += len(have)
        plan.desired_memberships += len(wanted)
        return True

    def _member_rows(self, role_key: str) -> tuple[list[str], list[str]]:
        """Account ids of the role's desired members, and of those syncd granted then revoked
        (a revoked row, or an account no longer active), as in ``desired_members``."""
        inactive = self._inactive_accounts()
        # No join with accounts: it triples the cost on SQLite (measured); the few accounts
        # that are not active are looked up in a set instead. One role's rows at once (the
        # biggest role bounds memory), read from the covering index of 0009.
        ids = self._prefetched.pop(role_key, None)
        if ids is not None:
            held, revoked = ids
        elif self._role_rows is not None:
            held, revoked = self._role_rows.ids(role_key)
        else:
            with transaction(self.rt.engine, readonly=True) as conn:
                held, revoked = grants.role_ids(conn, role_key)
        if inactive and not inactive.isdisjoint(held):
            desired = [a for a in held if a not in inactive]
            other = revoked + [a for a in held if a in inactive]
        else:
            desired, other = held, revoked
        self._member_cache = (role_key, desired, other)
        return desired, other

    def desired_members(self, role_key: str) -> tuple[dict[str, str], set[str]]:
        """(key -> account id) of the role's desired members, and keys syncd granted then revoked.

        Desired: a membership row not revoked, of an active account. Granted-then-revoked:
        a revoked row, or a row of an account that is no longer active.
        """
        cached, self._member_cache = self._member_cache, None
        if cached is not None and cached[0] == role_key:
            wanted, other = cached[1], cached[2]
        else:
            wanted, other = self._member_rows(role_key)
        of_id = self.keys.of_id
        desired = {of_id(account_id): account_id for account_id in wanted}
        granted = {of_id(account_id) for account_id in other}
        granted.difference_update(desired)
        return desired, granted

    def _inactive_accounts(self) -> frozenset[str]:
        if self._inactive is None:
            with transaction(self.rt.engine, readonly=True) as conn:
                self._inactive = accounts.inactive_ids(conn)
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
        self.plan_one_group(role, dn if attrs is not None else None,
                             (attrs or {}).get(self.member_attr.lower(), []), plan)
        plan.seconds["group"] = time.perf_counter() - t
        return plan

    def plan_account(self, id_or_email: str) -> Plan:
        t = time.perf_counter()
        with transaction(self.rt.engine, readonly=True) as conn:
            row = repo.find_account(conn, id_or_email)
        account_id = row.id if row else id_or_email
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
            row = accounts.by_ids(conn, [account_id]).get(account_id) if row is not None else None
            rows = grants.roles_of(conn, account_id)
        plan.people_in_ldap = 1 if attrs is not None else 0
        if row is None:
            assert attrs is not None
            disable = self.config.disable_extra_accounts and not self.comparer.is_disabled(attrs)
            mail = self.layout.people.attributes.get("email")
            plan.accounts.append(AccountDrift(account_id, "extra", dn,
                                              (attrs.get(mail.ldap.lower()) or [None])[0] if mail else None,
                                              action="disable" if disable else "none"))
            plan.extra_accounts_total = 1
        elif row["status"] in (AccountStatus.ACTIVE, AccountStatus.DISABLED):
            plan.accounts_in_db = 1
            if attrs is None:
                if row["status"] == AccountStatus.ACTIVE:
                    plan.accounts.append(AccountDrift(account_id, "missing", dn, row["email"], action="create"))
            else:
                drift = self.account_drift(dict(row), self.comparer.desired(row), attrs)
                if drift:
                    plan.accounts.append(drift)
        active = row is not None and row["status"] == AccountStatus.ACTIVE
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
