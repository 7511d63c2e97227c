"""A pytest plugin that lists every whole-table read the tests' SQLite statements make.

    .venv/bin/pytest -p tests.plan_survey --plan-survey=reads.txt tests/web tests/scenarios

Each distinct statement sent to an SQLite database while the tests run is asked of the planner
(``tests.plans``); those that read a growing table whole are written to the file with the syncd
functions that sent them, once each. This is how the lookups that migration 0017 indexes were
found; tests/scenarios/test_frequent_queries_read_no_table_whole.py then keeps the frequent
ones from coming back. syncd's statements are listed first, then the migrations' and
the tests' own; each with its call site. With pytest-xdist (``-n 2``) the workers hand their
findings to the controller, which writes the one file.
"""

from __future__ import annotations

import threading
import traceback
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

import syncd
from tests import plans

_SYNCD = Path(syncd.__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--plan-survey", metavar="FILE", default="plan-survey.txt",
                     help="where the plan survey writes the whole-table reads it saw")


class _Survey:
    def __init__(self, path: Path):
        self.path = path
        self.seen: set[str] = set()
        self.found: dict[str, tuple[list[str], str]] = {}    # statement -> (plan lines, call site)
        self.lock = threading.Lock()

    def before_cursor_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if conn.dialect.name != "sqlite" or not plans.reads_statements(statement):
            return
        key = plans.one_line(statement)
        with self.lock:
            if key in self.seen:
                return
            self.seen.add(key)
        try:
            lines = plans.whole_reads(cursor.connection.cursor(), statement, parameters)
        except Exception:       # noqa: BLE001 — a statement the planner cannot take alone: not ours to judge
            return
        if lines:
            frames = [(Path(f.filename).resolve(), f) for f in reversed(traceback.extract_stack())]
            site = " <- ".join(f"syncd/{path.relative_to(_SYNCD)}:{f.lineno} {f.name}"
                               for path, f in frames if path.is_relative_to(_SYNCD))
            with self.lock:
                self.found[key] = (lines, site)

    def write(self) -> None:
        with self.path.open("w") as out:
            # syncd's own statements first, then the migrations', then the tests' own.
            def order(item):
                site = item[1][1]
                return (2 if not site else 1 if "/migrations/" in site else 0, site)
            for key, (lines, site) in sorted(self.found.items(), key=order):
                out.write(f"{'; '.join(lines)}\n    from: {site or '(the tests)'}\n    {key[:400]}\n")


_KEY = pytest.StashKey[_Survey]()


def pytest_configure(config: pytest.Config) -> None:
    survey = _Survey(Path(config.getoption("--plan-survey")))
    config.stash[_KEY] = survey
    event.listen(Engine, "before_cursor_execute", survey.before_cursor_execute)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # In a pytest-xdist worker: hand what it found to the process that writes the file.
    output = getattr(session.config, "workeroutput", None)
    survey = session.config.stash.get(_KEY, None)
    if output is not None and survey is not None:
        output["plan_survey"] = [[key, lines, site] for key, (lines, site) in survey.found.items()]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    survey = node.config.stash.get(_KEY, None)
    for key, lines, site in getattr(node, "workeroutput", {}).get("plan_survey", []):
        survey.found.setdefault(key, (lines, site))


def pytest_unconfigure(config: pytest.Config) -> None:
    survey = config.stash.get(_KEY, None)
    if survey is not None:
        event.remove(Engine, "before_cursor_execute", survey.before_cursor_execute)
        if not hasattr(config, "workerinput"):      # a worker's findings are written by the controller
            survey.write()
