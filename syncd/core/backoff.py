"""How long a job, an item or a mail waits before its next try: doubling, up to a ceiling."""


def backoff_seconds(attempts: int, ceiling: float, first: float = 5.0) -> float:
    """After ``attempts`` failures in a row: ``first`` seconds, doubling with each one, at most ``ceiling``."""
    return min(ceiling, first * 2.0 ** min(max(attempts - 1, 0), 40))    # 40: no float overflow, whatever the count
