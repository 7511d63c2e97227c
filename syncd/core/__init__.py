"""The pure core: rules, state machine, routing, tacit clock and the directory planner.

Nothing in this package does I/O or reads the clock: callers pass ``now`` in.
"""
