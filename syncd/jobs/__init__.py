"""The use-cases the daemon runs, one module each: intake, decisions, tacit sweep, apply, delivery.

Each job reads through the store, decides through the core and writes through the adapters.
A job takes a ``Runtime`` (everything it may touch, the clock included) and returns a count.
"""
