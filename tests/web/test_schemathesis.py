"""Property-based tests of the API against its own OpenAPI document (schemathesis, in-process ASGI).

Every call is signed as the registered client does it (a ``requests`` auth hook signs the final
bytes), so generated cases reach the endpoints; the checks then demand no 5xx, documented status
codes and content types, and bodies that match the response schemas. Bounded: 50 examples per
operation, no shrinking beyond Hypothesis' default, well under a minute in all.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks
from sqlalchemy import insert

from syncd.runtime import Runtime
from syncd.settings import Settings
from syncd.store.db import make_engine, transaction
from syncd.store.tables import (accounts, deciders, memberships, organisations, request_deciders,
                                requests as requests_table)
from syncd.web import create_app
from syncd.web.auth import signed_headers
from tests.factories import T0, mappings
from tests.scenarios.conftest import Clock
from tests.web.conftest import CLIENT, CLIENTS, SECRET, SIGNING_KEY


class Sign(requests.auth.AuthBase):
    """Sign the prepared request (its final body and target), as a client of the API does."""

    def __init__(self, clock):
        self.clock = clock

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(r.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        r.headers.update(signed_headers(CLIENT, SECRET, r.method, target, body, now=self.clock(),
                                        nonce=secrets.token_urlsafe(18)))
        return r


def seed(engine) -> None:
    """A requester, a correspondent and an administrator, and one pending request routed to the correspondent."""
    with transaction(engine) as conn:
        conn.execute(insert(organisations).values(code="CARSAT-RA", name="CARSAT Rhône-Alpes", branch="retraite",
                                                  updated_at=T0))
        for account_id, email in (("u-req", "a.charenne@lassuranceretraite.fr"),
                                  ("u-cor", "c.martin@lassuranceretraite.fr"), ("u-adm", "admin@ucanss.fr")):
            conn.execute(insert(accounts).values(id=account_id, email=email, given_name="Prénom", family_name="Nom",
                                                 primary_organisation="CARSAT-RA", internal=True, status="active",
                                                 created_at=T0, updated_at=T0))
        conn.execute(insert(deciders).values(account_id="u-cor", scope="correspondent", organisation_code="CARSAT-RA",
                                             created_at=T0))
        conn.execute(insert(deciders).values(account_id="u-adm", scope="central", organisation_code=None,
                                             created_at=T0))
        for _ in range(3):
            request_id = conn.execute(insert(requests_table).values(
                kind="habilitation", submitted_at=T0, email="a.charenne@lassuranceretraite.fr", account_id="u-req",
                organisation_code="CARSAT-RA", role_key="accords-locaux-acces", status="pending",
                deadline_at=T0 + timedelta(days=10))).inserted_primary_key[0]
            conn.execute(insert(request_deciders).values(request_id=request_id, account_id="u-cor"))
        # A right the requester holds, for the withdrawal's examples to withdraw.
        conn.execute(insert(memberships).values(account_id="u-req", role_key="accords-locaux-acces", granted_at=T0))


OPENAPI = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text(encoding="utf-8"))
# Path parameters naming the seeded data, so that generated calls also reach existing rows.
KNOWN = {"account": "u-req", "decider": "u-cor", "request_id": 1, "role_key": "accords-locaux-acces"}
CASES = [(method.upper(), path, mode, known)
         for path, ops in sorted(OPENAPI["paths"].items()) for method, op in sorted(ops.items())
         for mode, known in ((GenerationMode.POSITIVE, False), (GenerationMode.NEGATIVE, False),
                             (GenerationMode.POSITIVE, True))
         if (mode is GenerationMode.POSITIVE or op.get("parameters") or op.get("requestBody"))
         and (not known or "{" in path)]
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance, checks.response_headers_conformance]


@pytest.fixture
def web_schema(sqlite_engine):
    url = str(sqlite_engine.url)
    seed(sqlite_engine)
    clock = Clock()
    settings_ = Settings(database={"url": url}, web={"base_url": "https://habilitations.example.org",
                                                     "signing_key": SIGNING_KEY},
                         ldap={"urls": ["ldap://127.0.0.1:9"], "timeout_seconds": 1})
    rt = Runtime(settings_, mappings(), make_engine(url), clock=clock, worker_id="schemathesis")
    app = create_app(rt, clients=CLIENTS, rate_per_second=None)
    yield schemathesis.openapi.from_asgi("/openapi.json", app), Sign(clock)
    rt.close()


# schemathesis' own pytest integration (``from_fixture``) does not run on this pytest, so each
# operation is its own test here, with Hypothesis driving schemathesis' strategies.
@pytest.mark.parametrize("method, path, mode, known", CASES,
                         ids=[f"{m} {p} {mode.value}{' known' if k else ''}" for m, p, mode, k in CASES])
def test_the_api_answers_every_generated_call_as_its_schema_says(web_schema, method, path, mode, known):
    schema, sign = web_schema
    operation = schema[path][method]
    fixed = {name: value for name, value in KNOWN.items() if known and "{" + name + "}" in path}
    # /readyz answers 503 by contract here: this test's LDAP is unreachable on purpose.
    run_checks = [c for c in CHECKS if path != "/readyz" or c is not checks.not_a_server_error]

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed or None))
    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=True)
    def call(case):
        case.call_and_validate(auth=sign, checks=run_checks)

    call()


def test_the_committed_openapi_document_is_the_one_the_app_serves(sqlite_engine):
    from syncd.web.app import build_openapi
    app = create_app(Runtime(Settings(database={"url": str(sqlite_engine.url)}), mappings(), sqlite_engine),
                     clients=CLIENTS)
    committed = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
    generated = json.dumps(build_openapi(app), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    assert committed.read_text(encoding="utf-8") == generated, (
        "docs/openapi.json is stale: regenerate it with `python -m syncd.web.openapi > docs/openapi.json`")


def _body_refs(operation: dict) -> list[str]:
    """The component schemas a request body names (directly, or as one of a union)."""
    text = json.dumps(operation.get("requestBody", {}))
    return sorted({part.split('"', 1)[0] for part in text.split("#/components/schemas/")[1:]})


WITH_EXAMPLES = [(method.upper(), path) for path, ops in sorted(OPENAPI["paths"].items())
                 for method, op in sorted(ops.items())
                 if any("examples" in OPENAPI["components"]["schemas"][name] for name in _body_refs(op))]


@pytest.mark.parametrize("method, path", WITH_EXAMPLES, ids=[f"{m} {p}" for m, p in WITH_EXAMPLES])
def test_the_examples_of_the_document_reach_a_successful_answer(web_schema, method, path):
    """The fuzzer starts from the documented examples: each operation that has some gets at least
    one 2xx from them, so the success path is exercised and checked against the schema too."""
    schema, sign = web_schema
    operation = schema[path][method]
    fixed = {name: value for name, value in KNOWN.items() if "{" + name + "}" in path}
    headers = {"If-Match": '"1"'} if method == "PATCH" else None
    statuses = []
    for strategy in operation.get_strategies_from_examples(path_parameters=fixed or None, headers=headers):
        @given(case=strategy)
        @settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=True)
        def call(case):
            statuses.append(case.call_and_validate(auth=sign, checks=CHECKS).status_code)

        call()
    assert any(200 <= status < 300 for status in statuses), statuses
