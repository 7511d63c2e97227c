"""The code blocks docs/applications.md marks as tested, so the doc cannot drift from the tests.

A block is the first fenced block after a line ``<!-- tested: NAME ... -->``. ``substitute``
replaces the doc's example values with the test's, and fails when one is not in the block:
a doc edit that removes a value the tests rely on is caught, not silently ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "applications.md"


def doc_block(name: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(rf"^<!-- tested: {re.escape(name)}\b.*?-->\n```[a-z]*\n(.*?)^```$", text, re.M | re.S)
    assert found, f"{DOC.name} has no block marked '<!-- tested: {name} -->'"
    return found.group(1)


def substitute(text: str, values: dict[str, str]) -> str:
    for old, new in values.items():
        assert old in text, f"the example no longer holds {old!r}: update the test with the doc"
        text = text.replace(old, new)
    return text
