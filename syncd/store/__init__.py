"""The SQL adapter, and all of syncd's SQL: engines and transactions (``db``), the schema
(``tables``), claiming work (``queue``), schema migrations (``migrate``), and named queries in a
module per subject (``repo``, ``accounts``, ``grants``, ``outbox``, ``tokens``, ``queries``…). No
``sqlalchemy`` exception escapes it: errors come out as ``StoreUnavailable`` (retry later) or
``StoreRejected`` (permanent).
"""

from syncd.store.db import make_engine, transaction, translate_errors

__all__ = ["make_engine", "transaction", "translate_errors"]
