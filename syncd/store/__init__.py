"""The SQL adapter: engines and transactions (``db``), the schema (``tables``), claiming work
(``queue``) and schema migrations (``migrate``). No ``sqlalchemy`` exception escapes it: errors
come out as ``StoreUnavailable`` (retry later) or ``StoreRejected`` (permanent).
"""

from syncd.store.db import make_engine, transaction, translate_errors

__all__ = ["make_engine", "transaction", "translate_errors"]
