"""What the fixture modules want said at the end of a run: why a server's tests were skipped, how
long the domain controller took to start.

The fixtures run in pytest-xdist's workers (``make test``), the summary is printed by the process
that started them: each worker hands its lines over when it ends (``workeroutput``), so a missing
server is still reported in a red section of its own, not only as one skip among many.
"""

from __future__ import annotations

import pytest

_skipped: dict[str, str] = {}   # the section's title -> the first reason given
_notes: dict[str, str] = {}     # a label -> its line


def tests_skipped(title: str, reason: str) -> None:
    """Say, at the end of the run, that a whole kind of tests was skipped and why (the first reason)."""
    _skipped.setdefault(title, reason)


def note(label: str, text: str) -> None:
    """A line ``label: text`` at the end of the run (the last one given for that label)."""
    _notes[label] = text


def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)     # set in an xdist worker only
    if output is not None:
        output["syncd_summary"] = {"skipped": dict(_skipped), "notes": dict(_notes)}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    carried = getattr(node, "workeroutput", {}).get("syncd_summary")
    if not carried:
        return
    for title, reason in carried["skipped"].items():
        tests_skipped(title, reason)
    for label, text in carried["notes"].items():
        note(f"{label} ({node.gateway.id})", text)     # each worker starts servers of its own


def pytest_terminal_summary(terminalreporter) -> None:
    for title, reason in _skipped.items():
        terminalreporter.section(title, sep="!", red=True, bold=True)
        terminalreporter.line(reason, red=True)
    for label, text in sorted(_notes.items()):
        terminalreporter.line(f"{label}: {text}")
