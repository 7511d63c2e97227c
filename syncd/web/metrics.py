"""Prometheus metrics of the web process, on ``/metrics``.

Two kinds:

* counted by this process: HTTP requests by route and status, their duration, decisions taken
  through the web (by verdict and channel), refused authentications;
* read from the database at each scrape, so that every process shows the same numbers: requests
  per status, the age of the oldest open request, tacit acceptances, accepted requests not yet in
  LDAP and those whose LDAP write is failing, the items parked (count and oldest, per kind), the
  outbox backlog, each job's consecutive failures, the oldest request nobody can decide and how
  many central administrators there are, the rights of the access review campaigns under way per
  organisation and answer, and how long a campaign has waited for a reviewer.
  LDAP write latency and errors belong to the daemon, which does the writes: the web process
  only shows what the database records of them (``syncd_requests_failing``, job failures).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from syncd.core.model import Status
from syncd.store import audit, health, outbox, parked, reviews
from syncd.store.db import Engine, transaction
from syncd.store.repo import aware
from syncd.store.tables import REQUEST_STATUSES, REVIEW_DECISIONS

log = structlog.get_logger(__name__)


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time (a handful of indexed or small queries)."""

    def __init__(self, engine_of: Callable[[], Engine], clock: Callable[[], datetime]):
        self.engine_of = engine_of
        self.clock = clock

    def describe(self) -> list[Metric]:
        return []   # not known without a query: collected on each scrape only

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("syncd_database_up", "1 if the web process could read the database at this scrape")
        try:
            families = list(self._read())
        except Exception as exc:   # a scrape must answer even when the database is down
            log.warning("metrics_database_unreadable", error=str(exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> Iterator[Metric]:
        now = self.clock()
        with transaction(self.engine_of(), readonly=True) as conn:
            counts = health.status_counts(conn)
            oldest = health.oldest_open_submitted_at(conn)       # parked ones: their own alert
            not_applied = health.unapplied_count(conn)
            failing = health.failing_count(conn)
            parked_items = parked.summary(conn)
            outbox_pending = outbox.pending_count(conn)
            outbox_failed = outbox.failed_count(conn)
            outbox_age = outbox.oldest_pending_age(conn, now) or 0.0
            unsealed = (audit.unsealed(conn), audit.oldest_unsealed_at(conn))
            jobs = [(j["job"], j["consecutive_failures"], j["last_ok_at"]) for j in health.job_health(conn)]
            waiting_since = health.awaiting_decider_oldest(conn)
            centrals = health.central_administrator_count(conn)
            campaigns = reviews.progress(conn)
            review_waiting_since = reviews.awaiting_reviewer_oldest(conn)

        per_status = GaugeMetricFamily("syncd_requests", "Requests in the queue table, by status",
                                       labels=["status"])
        for status in REQUEST_STATUSES:
            per_status.add_metric([status], counts.get(status, 0))
        yield per_status
        yield GaugeMetricFamily("syncd_oldest_pending_seconds",
                                "Age of the oldest request still new or pending, parked ones apart (0 when none)",
                                value=max((now - aware(oldest)).total_seconds(), 0.0) if oldest else 0.0)
        yield CounterMetricFamily("syncd_tacit_acceptances", "Requests accepted tacitly, ever (from the database)",
                                  value=counts.get(Status.ACCEPTED_TACITLY.value, 0))
        yield GaugeMetricFamily("syncd_requests_accepted_not_applied",
                                "Accepted requests whose account or membership is not in LDAP yet",
                                value=not_applied)
        yield GaugeMetricFamily("syncd_requests_failing",
                                "Accepted requests whose LDAP write failed and waits for a retry (parked ones apart)",
                                value=failing)
        count = GaugeMetricFamily("syncd_parked_items", "Items refused for good, waiting for an operator "
                                  "(syncd parked), by kind", labels=["kind"])
        age = GaugeMetricFamily("syncd_parked_oldest_age_seconds", "How long the oldest parked item of each kind "
                                "has waited (0 when none)", labels=["kind"])
        for kind, p in parked_items.items():
            count.add_metric([kind], p["count"])
            age.add_metric([kind], max((now - p["oldest_parked_at"]).total_seconds(), 0.0) if p["count"] else 0.0)
        yield count
        yield age
        yield GaugeMetricFamily("syncd_outbox_backlog", "Mails waiting to be sent", value=outbox_pending)
        yield GaugeMetricFamily("syncd_outbox_failed", "Mails given up on", value=outbox_failed)
        yield GaugeMetricFamily("syncd_outbox_oldest_pending_age_seconds",
                                "Age of the oldest mail waiting to be sent (0 when none)",
                                value=outbox_age)
        yield GaugeMetricFamily("syncd_audit_unsealed", "Audit rows written but not sealed into the hash chain yet",
                                value=unsealed[0])
        yield GaugeMetricFamily("syncd_audit_oldest_unsealed_age_seconds",
                                "Age of the oldest audit row waiting for the sealing job (0 when none)",
                                value=max((now - aware(unsealed[1])).total_seconds(), 0.0) if unsealed[1] else 0.0)
        # Requests nobody can decide (their count is syncd_requests{status="awaiting_decider"}).
        yield GaugeMetricFamily("syncd_awaiting_decider_oldest_seconds",
                                "Age of the oldest request that nobody can decide (0 when none)",
                                value=max((now - waiting_since).total_seconds(), 0.0) if waiting_since else 0.0)
        yield GaugeMetricFamily("syncd_central_administrators", "Active central administrators", value=centrals)
        review_items = GaugeMetricFamily("syncd_review_items", "Rights of the access review campaigns under way, "
                                         "per organisation and answer (undecided: not yet answered)",
                                         labels=["organisation", "answer"])
        for c in campaigns:
            for answer in (reviews.UNDECIDED, *REVIEW_DECISIONS):
                review_items.add_metric([c["organisation_code"], answer], c["items"].get(answer, 0))
        yield review_items
        yield GaugeMetricFamily("syncd_review_awaiting_reviewer_seconds",
                                "How long since the window ended of the oldest review campaign with rights nobody "
                                "can review (0 when none)",
                                value=max((now - review_waiting_since).total_seconds(), 0.0) if review_waiting_since
                                else 0.0)
        failures = GaugeMetricFamily("syncd_job_consecutive_failures", "Consecutive failed runs of each daemon job",
                                     labels=["job_name"])
        last_ok = GaugeMetricFamily("syncd_job_last_ok_timestamp_seconds",
                                    "When each daemon job last ran without error (Unix time)", labels=["job_name"])
        for job, count, ok_at in jobs:
            failures.add_metric([job], count)
            if ok_at is not None:
                last_ok.add_metric([job], aware(ok_at).timestamp())
        yield failures
        yield last_ok


class WebMetrics:
    """The metrics of one app, in a registry of its own (several apps can live in one process)."""

    def __init__(self, engine_of: Callable[[], Engine], clock: Callable[[], datetime]):
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter("syncd_web_http_requests", "HTTP requests answered, by route and status",
                                     ["method", "route", "status"], registry=self.registry)
        self.http_duration = Histogram("syncd_web_http_request_duration_seconds", "Time to answer, by route",
                                       ["route"], registry=self.registry,
                                       buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.decisions = Counter("syncd_decisions", "Decisions recorded through this web process",
                                 ["verdict", "channel"], registry=self.registry)
        self.decisions_refused = Counter("syncd_web_decisions_refused", "Decisions refused, by code",
                                         ["code", "channel"], registry=self.registry)
        self.auth_failures = Counter("syncd_web_auth_failures", "API requests refused authentication, by reason",
                                     ["reason"], registry=self.registry)
        self.rate_limited = Counter("syncd_web_rate_limited", "API requests refused by the rate limit",
                                    ["client"], registry=self.registry)
        self.registry.register(DatabaseCollector(engine_of, clock))
