from hypothesis import given
from hypothesis import strategies as st

from syncd.core.backoff import backoff_seconds


def test_the_wait_starts_at_the_first_delay_and_doubles_up_to_the_ceiling():
    assert [backoff_seconds(n, 60) for n in range(0, 7)] == [5, 5, 10, 20, 40, 60, 60]
    assert [backoff_seconds(n, 300, first=2.0) for n in range(1, 5)] == [2, 4, 8, 16]


@given(st.integers(min_value=-5, max_value=10**6), st.floats(min_value=0.1, max_value=1e9),
       st.floats(min_value=0.01, max_value=1e4))
def test_the_wait_never_passes_the_ceiling_and_never_shrinks_with_more_failures(attempts, ceiling, first):
    wait = backoff_seconds(attempts, ceiling, first)
    assert 0 < wait <= ceiling
    assert backoff_seconds(attempts + 1, ceiling, first) >= wait
