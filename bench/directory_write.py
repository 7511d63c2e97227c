"""The directory's write cost, three ways: what the memberof overlay costs syncd's apply, and what
reading a person's memberOf costs without it.

    python -m bench.directory_write [--size 10000] [--apply 2000] [--reads 1000]

For each configuration of slapd, a throwaway server is rendered from ``deploy/openldap``
(``DevSlapd``) and changed as named, bulk-loaded with the bench's data set (``bench.data``), then:

* **member adds**: ldap3 ``modify``, 500 values per request, naming real people, into one new
  group (the shape of apply's writes): values per second;
* **apply**: ``syncd.jobs.apply.apply_accepted`` over accepted requests in a SQLite database
  loaded with the same data set, until none is left: requests per second;
* **person read**: a base search of one person for every mapped attribute and ``memberOf``,
  one at a time over ``--reads`` people: milliseconds per person (the client's own cost, the
  same in every configuration, included).

The configurations: ``memberof`` (as shipped: memberOf stored by the overlay, each change
committed with its fsync), ``memberof+nometasync`` (the same with ``olcDbEnvFlags: nometasync``:
LMDB writes its meta page without waiting for the disk, so an OS crash or power loss may lose the
last transactions, never the database's consistency), ``dynlist`` (no stored memberOf: the
dynlist overlay computes it from the groups at each read that asks for it).
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

from bench import sql as bsql
from bench.data import generate, write_ldif
from bench.raw import Ldap, batched_member_adds, connect, people_attributes

VARIANTS = ("memberof", "memberof+nometasync", "dynlist")


def transform(config: str, variant: str) -> str:
    """The rendered ``slapd.ldif.in`` changed for ``variant``."""
    if variant in ("memberof+nometasync",):
        config = _replace_once(config, "olcDbCheckpoint: 1024 5\n", "olcDbCheckpoint: 1024 5\nolcDbEnvFlags: nometasync\n")
    if variant == "dynlist":
        # The memberof module stays loaded for its schema (the memberOf attribute type), without
        # its overlay; dynlist computes the values; groupOfURLs comes with the dyngroup schema.
        config = _replace_once(config, "olcModuleLoad: {1}memberof\n",
                               "olcModuleLoad: {1}memberof\nolcModuleLoad: {9}dynlist\n")
        nis = next(line for line in config.splitlines() if line.startswith("include: ") and line.endswith("/nis.ldif"))
        config = _replace_once(config, nis + "\n", nis + "\n" + nis.replace("/nis.ldif", "/dyngroup.ldif") + "\n")
        config = _replace_once(config, "olcDbIndex: memberOf eq\n", "")
        start = config.index("dn: olcOverlay={0}memberof,")
        end = config.index("\n\n", start)
        config = config[:start] + (
            "dn: olcOverlay={0}dynlist,olcDatabase={1}mdb,cn=config\nobjectClass: olcOverlayConfig\n"
            "objectClass: olcDynListConfig\nolcOverlay: {0}dynlist\n"
            "olcDynListAttrSet: {0}groupOfURLs memberURL member+memberOf@groupOfNames") + config[end:]
    return config


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise RuntimeError(f"expected one {old!r} in the rendered configuration")
    return text.replace(old, new)


def _server(workdir: Path, variant: str) -> Any:
    from syncd.devslapd import DevSlapd

    class VariantSlapd(DevSlapd):
        def render_config(self) -> str:
            return transform(super().render_config(), variant)

    return VariantSlapd(workdir)


def person_reads(ldap: Ldap, dns: list[str], attributes: list[str]) -> float:
    """Milliseconds per person read (base search) with ``attributes`` and memberOf."""
    from ldap3 import BASE
    conn = connect(ldap)
    try:
        conn.search(dns[0], "(objectClass=*)", BASE, attributes=attributes + ["memberOf"])   # warm
        t = time.perf_counter()
        for dn in dns:
            _, result, response, _ = conn.search(dn, "(objectClass=*)", BASE, attributes=attributes + ["memberOf"])
            if result["result"] != 0 or not response or not response[0]["attributes"].get("memberOf"):
                raise RuntimeError(f"no memberOf read back for {dn}: {result}")
        return (time.perf_counter() - t) * 1000 / len(dns)
    finally:
        conn.unbind()


def measure(variant: str, data: Any, ldif: Path, workdir: Path, args: Any) -> dict[str, float]:
    from bench.run import measure_apply
    from syncd.directory import names
    from syncd.store.db import make_engine
    from syncd.store.migrate import upgrade
    slapd = _server(workdir / f"slapd-{variant.replace('+', '-')}", variant)
    slapd.bulk_load(ldif)
    slapd.start()
    try:
        ldap = Ldap(slapd.url, slapd.root_dn, slapd.root_password)
        m = data.mappings
        ids = [a["id"] for a in data.accounts]
        rng = random.Random(5)
        # People who hold a role: the read must come back with memberOf values.
        holders = sorted({i for i, _, revoked in data.memberships if not revoked})
        sample = [names.person_dn(m.directory, ids[i]) for i in rng.sample(holders, min(args.reads, len(holders)))]
        out: dict[str, float] = {}
        out["read_ms"] = person_reads(ldap, sample, people_attributes(m))
        out["adds_per_s"], _ = batched_member_adds(ldap, m, [names.person_dn(m.directory, i) for i in ids[:args.adds]],
                                                    f"bench-{variant.replace('+', '-')}")
        url = f"sqlite:///{workdir / (variant.replace('+', '-') + '.db')}"
        upgrade(url)
        eng = make_engine(url)
        bsql.load(eng, data)
        eng.dispose()
        out["apply_per_s"] = measure_apply(url, slapd, data, min(args.apply, len(ids)))["per_s"]
        return out
    finally:
        slapd.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.directory_write", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=10_000, help="accounts (default: %(default)s)")
    p.add_argument("--apply", type=int, default=2000, help="accepted requests applied per configuration")
    p.add_argument("--adds", type=int, default=5000, help="member values added for the raw rate")
    p.add_argument("--reads", type=int, default=1000, help="people read one at a time")
    p.add_argument("--variants", default=",".join(VARIANTS))
    args = p.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="syncd-bench-write-"))
    try:
        data = generate(args.size)
        ldif = write_ldif(data, workdir / "data.ldif")
        stored_free = workdir / "data-no-memberof.ldif"
        with open(ldif, encoding="utf-8") as src, open(stored_free, "w", encoding="utf-8") as dst:
            dst.writelines(line for line in src if not line.startswith("memberOf: "))
        rows = []
        for variant in args.variants.split(","):
            t = time.perf_counter()
            res = measure(variant, data, stored_free if variant == "dynlist" else ldif, workdir, args)
            print(f"[{time.strftime('%H:%M:%S')}] {variant}: {res} ({time.perf_counter() - t:.0f} s)",
                  file=sys.stderr, flush=True)
            rows.append((variant, res))
        base = dict(rows).get("memberof")
        print(f"\n{args.size:,} accounts; apply {args.apply:,} requests (SQLite); {args.reads:,} person reads\n")
        print("| slapd configuration | member adds, values/s | apply, req/s | person read with memberOf, ms |"
              + (" × as shipped: adds / apply / read |" if base else ""))
        print("|---|---|---|---|" + ("---|" if base else ""))
        for variant, res in rows:
            ratio = (f" {res['adds_per_s'] / base['adds_per_s']:.2f} / {res['apply_per_s'] / base['apply_per_s']:.2f}"
                     f" / {res['read_ms'] / base['read_ms']:.2f} |") if base else ""
            print(f"| {variant} | {res['adds_per_s']:,.0f} | {res['apply_per_s']:,.0f} | {res['read_ms']:.2f} |" + ratio)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
