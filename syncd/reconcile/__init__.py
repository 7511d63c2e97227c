"""Reconciliation: compare the directory with the database (the desired state), report the
drift, repair it within guards; replay one request; adopt an existing directory.

Modules:
  ``ldapread``  lean paged reads (ldap3 for connecting and encoding, a purpose-built decoder
                for search result entries) and compares;
  ``compare``   comparison keys for DNs, desired attributes and digests of accounts;
  ``planning``  the plan from two streams (full, one account, one group);
  ``guards``    when a plan is too big to apply without ``--force``, or at all;
  ``applying``  writing a plan, re-validated against the database;
  ``service``   one run: plan, guards, apply, ``reconcile_runs``;
  ``job``       the daemon's periodic runs (full and incremental);
  ``replay``, ``adopt``, ``render``, ``config``; the commands are ``syncd.commands.reconcile``.

See ``docs/reconcile.md``.
"""
