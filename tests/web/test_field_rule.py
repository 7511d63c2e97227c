"""One rule for characters: the API's schemas and the pages' check agree on every text.

The API refuses through the JSON schemas' ``pattern`` (pydantic, and the OpenAPI document); the
decision page through ``schemas.forbidden_character``. Hypothesis looks for a text on which the
two disagree, lone surrogates and every control and format character included.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from syncd.web.schemas import DecisionIn, forbidden_character

# Every code point (surrogates too), with the interesting ones drawn more often.
TEXTS = st.text(st.one_of(st.characters(min_codepoint=0, max_codepoint=0xA0),
                          st.characters(min_codepoint=0x2000, max_codepoint=0x206F),
                          st.characters(categories=["Cs"]), st.characters()), max_size=20)


def api_accepts(**fields) -> bool:
    try:
        DecisionIn(verdict="refuse", decider=fields.get("decider", "c.martin@example.org"),
                   comment=fields.get("comment", "motif"))
    except ValidationError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(TEXTS)
def test_a_refusal_reason_is_refused_by_the_api_exactly_when_the_page_refuses_it(text):
    assert api_accepts(comment=text) == (forbidden_character(text, multi_line=True) is None)


@settings(max_examples=500, deadline=None)
@given(TEXTS.filter(lambda t: 0 < len(t) <= 254))
def test_a_one_line_field_is_refused_by_the_api_exactly_when_the_rule_refuses_it(text):
    assert api_accepts(decider=text) == (forbidden_character(text) is None)


def test_line_breaks_are_allowed_in_a_comment_only():
    assert forbidden_character("a\r\n\tb", multi_line=True) is None
    assert forbidden_character("a\nb") == "\n"
