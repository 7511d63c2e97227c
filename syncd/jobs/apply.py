"""Apply: write accepted requests to LDAP, batched per group, then mark them applied.

Accounts are written first (a member must exist before it joins a group); memberships go in one
batched modify per group, the groups shared between ``ldap.write_connections`` connections (a
group's modify waits on the server's disk most of its time: another's overlaps it). A big pass
marks its requests applied by chunks in a thread of its own (``_Recorder``) while the next
groups are written: only requests whose group modify has succeeded are handed over, so
"applied" still follows LDAP, and a crash in between leaves written, unmarked requests that the
next pass writes again (a member already there is success). On PostgreSQL the recorder also
writes the claim's lease, in another thread while the first groups go out
(``queue.hold_request_rows``: the rows are locked meanwhile); a lease that fails stops the pass,
recording nothing. A request whose write fails keeps its status and gains ``attempts`` and
``last_error``: after a temporary failure it backs off (``next_attempt_at``), after a refusal it
is parked (``syncd.jobs.parking``), out of every later pass until an operator acts; both show in
``syncd status``. A directory outage stops the pass: everything left is retried later.
"""

from __future__ import annotations

import contextvars
import threading
from collections import defaultdict
from datetime import datetime

import structlog

from syncd.core.entries import account_attributes
from syncd.core.model import AccountStatus, RequestKind, RequestView, Status
from syncd.directory import names
from syncd.errors import DirectoryUnavailable, PermanentError
from syncd.jobs import mobility, notify, parking, passwords
from syncd.runtime import Runtime
from syncd.mail.outbox import enqueue_many
from syncd.directory.stamps import layout_fingerprint
from syncd.store import accounts, applied as applied_store, audit, repo
from syncd.store import stamps as ldap_stamps
from syncd.store.queue import HeldClaim
from syncd.store.db import RowMapping, threads_share_database, transaction

log = structlog.get_logger(__name__)

# Requests applied by writing the account's entry (a mobility: its new organisation), not a group.
ACCOUNT_KINDS = (RequestKind.ACCOUNT.value, RequestKind.MOBILITY.value)


def apply_accepted(rt: Runtime) -> int:
    """Write one batch of accepted, unapplied requests to LDAP; return how many were applied."""
    now = rt.clock()
    # On PostgreSQL the lease is written by the recorder while the first writes go out (_Recorder).
    claimed, held = repo.hold_with_accounts(rt.engine, statuses=repo.GRANTED_STATUSES, worker_id=rt.worker_id,
                                            now=now, lease_seconds=rt.settings.database.lease_seconds,
                                            limit=rt.settings.jobs.apply_batch_size, unapplied_only=True)
    if not claimed:
        return 0
    recorder = _Recorder(rt, held)
    rows = [view for view, _ in claimed]
    existing = {view.account_id for view, written in claimed if written is not None}
    # The whole rows of the accounts LDAP never had, and of those the request itself writes.
    wanted = {view.account_id for view, written in claimed
              if written is False or (written and view.kind in ACCOUNT_KINDS)}
    to_write = {}
    applied: list[RequestView] = []
    failed: dict[int, Exception] = {}   # request id -> why its write failed
    try:
        if wanted:
            with transaction(rt.engine, readonly=True) as conn:
                to_write = accounts.by_ids(conn, wanted)
        _write_accounts(rt, rows, existing, to_write, applied, failed)
        recorder.add(applied)
        _write_memberships(rt, [r for r in rows if r.kind not in ACCOUNT_KINDS and r.id not in failed],
                           applied, failed, recorder)
    except DirectoryUnavailable as exc:
        done = {r.id for r in applied} | set(failed)
        for r in rows:
            if r.id not in done:
                failed[r.id] = exc
        log.warning("ldap_unavailable", error=str(exc), pending=len(rows) - len(applied))
    except BaseException:
        recorder.stop()     # what it marked applied is in LDAP; the rest waits for its lease
        raise
    recorder.finish(failed, {r.id: r for r in rows})
    return len(applied)


# A pass hands its written requests to a thread of its own by chunks of at least this many (a
# transaction each); smaller passes, the daemon's usual ones, are recorded at the end as a whole.
_OVERLAP_MIN = 200


class _Recorder:
    """Records requests applied while the pass goes on writing the next groups.

    ``add`` takes requests whose write LDAP has confirmed; once ``_OVERLAP_MIN`` of them wait, a
    thread records them (``record_outcomes``, one transaction per chunk). ``finish`` records what
    is left and the failures in the caller's thread, and raises the thread's error if it had one
    (the pass then fails as it did when its one bookkeeping transaction failed: what is not
    marked applied is written again after the lease). Never used with an in-memory SQLite
    database, which another thread would not see.

    It first writes the pass's lease, where the claim left it to be written (PostgreSQL:
    ``queue.hold_request_rows``), in a thread of its own while the first groups are written:
    nothing is recorded before it is committed, and if it fails the pass stops at its next group
    and raises, recording nothing (the rows' locks are gone, another worker may hold them now;
    the members written meanwhile are there for it to find).
    """

    def __init__(self, rt: Runtime, held: HeldClaim):
        self.rt = rt
        self.error: BaseException | None = None
        self._waiting: list[RequestView] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._overlap = threads_share_database(rt.engine)
        self._lease: threading.Thread | None = None
        if not held.leased:
            run = contextvars.copy_context().run
            self._lease = threading.Thread(target=run, args=(self._write_lease, held), name="apply-lease", daemon=True)
            self._lease.start()

    def _write_lease(self, held: HeldClaim) -> None:
        try:
            held.lease()
        except BaseException as exc:  # noqa: BLE001 — handed to the pass, which raises it
            self.error = exc

    def _leased(self) -> bool:
        """Wait for the lease; whether the rows are ours to record."""
        if self._lease is not None:
            self._lease.join()
        return self.error is None

    def add(self, rows: list[RequestView]) -> None:
        with self._cond:
            self._waiting.extend(rows)
            if not self._overlap or len(self._waiting) < _OVERLAP_MIN:
                return
            if self._thread is None:
                run = contextvars.copy_context().run     # the job's log context, in the thread too
                self._thread = threading.Thread(target=run, args=(self._run,), name="apply-recorder", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or len(self._waiting) >= _OVERLAP_MIN)
                if self._closed:
                    return
                rows, self._waiting = self._waiting, []
            if not self._leased():
                return
            try:
                record_outcomes(self.rt, rows, {}, {})
            except BaseException as exc:  # noqa: BLE001 — handed to the pass, which raises it
                self.error = exc
                return

    def stop(self) -> None:
        """Let the thread finish the chunk it is recording, and end it."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        self._leased()

    def finish(self, failed: dict[int, Exception], by_id: dict[int, RequestView]) -> None:
        self.stop()
        if self.error is not None:
            raise self.error
        record_outcomes(self.rt, self._waiting, failed, by_id)


def _write_accounts(rt: Runtime, rows: list[RequestView], existing: set[str], to_write: dict[str, RowMapping],
                    applied: list, failed: dict) -> None:
    """Create or refresh the LDAP entry of every account these requests need (``to_write``: the
    accounts LDAP never had, and those an account or mobility request writes)."""
    for row in rows:
        writes_entry = row.kind in ACCOUNT_KINDS
        if row.account_id not in existing:
            failed[row.id] = PermanentError("the request's account does not exist")
            continue
        account = to_write.get(row.account_id)
        if account is None or (account["ldap_version"] is not None and not writes_entry):
            continue
        try:
            push_account(rt, account)
        except PermanentError as exc:
            failed[row.id] = exc
            continue
        if writes_entry:
            applied.append(row)


def push_account(rt: Runtime, account: RowMapping) -> None:
    """Write one account's owned attributes to its LDAP entry (creating it if needed)."""
    layout = rt.mappings.directory
    values = dict(account)
    if values["status"] == AccountStatus.PENDING:
        values["status"] = AccountStatus.ACTIVE.value
    attrs = account_attributes(values, layout.people, first_write=account["ldap_version"] is None,
                               organisation_dn=lambda code: names.organisation_dn(layout, code))
    _, stamp = rt.directory.write_account(account["id"], attrs, layout.people.object_classes)
    now = rt.clock()
    with transaction(rt.engine) as conn:
        accounts.mark_written(conn, account, now)
        record_stamp(conn, rt, account, stamp)
        audit.record(conn, at=now, actor="syncd", action="ldap_account_written",
                     target=names.person_dn(layout, account["id"]),
                     detail={"attributes": sorted(attrs), "version": account["version"]})
    log.info("account_written", account_id=account["id"])


def record_stamp(conn, rt: Runtime, account: RowMapping, stamp: str | None) -> None:
    """Record the entry's change stamp beside the digest of the fields written (or forget a stale
    one): the reconciliation then trusts the entry while neither moves (docs/reconcile.md)."""
    if stamp:
        layout = rt.mappings.directory
        digest = ldap_stamps.row_digest(account, ldap_stamps.source_columns(layout.people))
        ldap_stamps.record(conn, [(account["id"], digest, stamp)], layout_fingerprint(layout))
    else:
        ldap_stamps.forget(conn, [account["id"]])


def _write_memberships(rt: Runtime, rows: list[RequestView], applied: list, failed: dict,
                       recorder: _Recorder) -> None:
    """One batched modify per group, on ``ldap.write_connections`` connections at once (the
    groups are independent; ``Directory.share_work``). A refused group fails its requests only;
    a directory outage, or bookkeeping that failed, stops every connection before its next group
    and is raised once they all have: what was written and confirmed is still recorded."""
    layout = rt.mappings.directory
    by_group: dict[str, list[RequestView]] = defaultdict(list)
    for row in rows:
        role = rt.mappings.role(row.role_key)
        if role is None:
            failed[row.id] = PermanentError(f"role {row.role_key!r} is no longer in the mappings")
            continue
        by_group[role.group].append(row)
    # Biggest first: the connections end close together, not one on a big group while the others wait.
    groups = iter(sorted(by_group.items(), key=lambda item: (-len(item[1]), item[0])))
    lock = threading.Lock()
    stop = threading.Event()     # set by an error one connection met: the others stop too

    def next_group() -> tuple[str, list[RequestView]] | None:
        with lock:
            if stop.is_set() or recorder.error is not None:
                return None     # the bookkeeping failed: the pass fails (recorder.finish), write no more
            return next(groups, None)

    def write_groups() -> None:
        while (item := next_group()) is not None:
            group, group_rows = item
            dns = [names.person_dn(layout, r.account_id) for r in group_rows]
            try:
                rt.directory.add_members(group, dns)
            except PermanentError as exc:
                with lock:
                    failed.update((r.id, exc) for r in group_rows)
                log.error("group_write_failed", group=group, error=str(exc), requests=len(group_rows))
                continue
            except BaseException:
                stop.set()
                raise
            with lock:
                applied.extend(group_rows)
            log.info("members_added", group=group, count=len(dns))
            recorder.add(group_rows)

    if len(by_group) > 1:
        rt.directory.share_work(write_groups)
    else:
        write_groups()


def record_outcomes(rt: Runtime, applied: list[RequestView], failed: dict[int, Exception],
                    by_id: dict[int, RequestView]) -> None:
    """The bookkeeping of requests written to LDAP (events, memberships, mails) and of those that failed."""
    if not applied and not failed:
        return
    now = rt.clock()
    with transaction(rt.engine) as conn:
        for start in range(0, len(applied), _CHUNK):
            _record_applied(conn, rt, applied[start:start + _CHUNK], now)
        for request_id, error in failed.items():
            parking.request_failed(conn, rt, by_id[request_id], error, now)
    if applied:
        log.info("requests_applied", count=len(applied))


# Requests per bookkeeping statement: on PostgreSQL each chunk goes as one statement over JSON
# documents (planned once per chunk, not once per request), whose size this bounds.
_CHUNK = 1000


def _record_applied(conn, rt: Runtime, rows: list[RequestView], now: datetime) -> None:
    """Mark a batch applied: a handful of set-based statements, not a handful per request.

    Each request gets its "applied" event, each membership its ``applied_at``, each member
    added its audit row, and each requester the mail that says the request is granted.
    """
    layout = rt.mappings.directory
    habilitations = [r for r in rows if r.kind not in ACCOUNT_KINDS]
    group_dns = {key: names.group_dn(layout, rt.mappings.role(key).group)
                 for key in {r.role_key for r in habilitations}}
    applied_store.mark_applied(conn, [r.id for r in rows], [
        (r.id, r.account_id, r.role_key, group_dns[r.role_key], names.person_dn(layout, r.account_id))
        for r in habilitations], now)
    if habilitations:
        owners = accounts.mail_contacts(conn, {r.account_id for r in habilitations})
        language = notify.language_of(rt.settings)
        mails = [notify.requester_mail(r, owners.get(r.account_id), _accepted_template(r), rt.mappings,
                                       rt.settings.web.base_url, language=language) for r in habilitations]
        enqueue_many(conn, [m for m in mails if m is not None], now)
    for r in rows:
        if r.kind is RequestKind.ACCOUNT:
            passwords.issue_reset(conn, rt, r.account_id, now, template="account_created_set_password")
        elif r.kind is RequestKind.MOBILITY:
            notify.to_requester(conn, r, "mobility_accepted", rt.mappings, rt.settings.web.base_url, now,
                                language=notify.language_of(rt.settings), decided_at=r.decided_at,
                                tacit=r.status is Status.ACCEPTED_TACITLY,
                                withdrawn=mobility.withdrawn_labels(conn, rt, r.id))


def _accepted_template(row: RequestView) -> str:
    return "request_accepted_tacitly" if row.status is Status.ACCEPTED_TACITLY else "request_accepted"
