"""``syncd demo``: the whole daemon on the embedded default, on one machine, in a minute.

It starts a private slapd under ``./var`` (the project's schema and overlays), an SQLite
database, a local SMTP sink that writes every mail to ``var/mail/*.eml``, loads the sample
mappings and three people (a requester, a correspondent, a central administrator), then runs
the daemon. A scripted habilitation request goes through the queue table, is accepted, and
shows up in LDAP as group membership and ``memberOf``; the commands to do it again by hand are
printed.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path

import yaml

from syncd.devslapd import DevSlapd, free_port, source_dir

REQUESTER = ("a.charenne@lassuranceretraite.fr", "Aristide", "Charenne", "CARSAT-RA")
CORRESPONDENT = ("c.martin@lassuranceretraite.fr", "Claire", "Martin", "CARSAT-RA")
ADMIN = ("admin@ucanss.fr", "Alice", "Administratrice", "UCANSS")
DEMO_ROLE = "opim-organisme-local"          # managed locally: the correspondent decides


class MailSink:
    """A tiny SMTP server (aiosmtpd) that files every message it receives under a folder."""

    def __init__(self, folder: Path):
        from aiosmtpd.controller import Controller
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.count = 0
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                sink.count += 1
                path = folder / f"{sink.count:04d}.eml"
                path.write_bytes(envelope.original_content or envelope.content)
                subject = str(make_header(decode_header(message_from_bytes(path.read_bytes())["Subject"] or "")))
                print(f"  mail -> {', '.join(envelope.rcpt_tos)}: {subject}  ({path})")
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> int:
        self.controller.start()
        return self.port

    def stop(self) -> None:
        self.controller.stop()


def _write_config(var: Path, slapd: DevSlapd, smtp_port: int) -> Path:
    (var / "ldap-password").write_text(slapd.root_password)
    (var / "ldap-password").chmod(0o600)
    config = {
        "mappings": str(source_dir() / "mappings"),
        "database": {"url": "sqlite:///syncd.db"},
        "ldap": {"urls": [slapd.url], "bind_dn": slapd.root_dn},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "sender": "Habilitations <habilitations@example.org>"},
        "web": {"base_url": "http://127.0.0.1:8080"},
        "jobs": {"intake_seconds": 2, "apply_seconds": 2, "outbox_seconds": 2, "tacit_seconds": 30},
        "log": {"format": "console"},
    }
    path = var / "syncd.yaml"
    path.write_text("# Written by `syncd demo`. The LDAP password is read from SYNCD_LDAP__BIND_PASSWORD_FILE.\n"
                    + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return path


def _ldapsearch(slapd: DevSlapd, base: str, flt: str, *attrs: str) -> str:
    tool = shutil.which("ldapsearch")
    if tool is None:
        return "(ldapsearch is not installed: apt-get install ldap-utils)"
    done = subprocess.run([tool, "-x", "-LLL", "-o", "ldif-wrap=no", "-H", slapd.url, "-D", slapd.root_dn,
                           "-w", slapd.root_password, "-b", base, flt, *attrs],
                          capture_output=True, text=True, timeout=30)
    return (done.stdout or done.stderr).strip()


def run_demo(var: str = "var", exit_after_scenario: bool = False) -> int:
    import os

    from syncd import operator
    from syncd.core.model import Status, Verdict
    from syncd.daemon import Daemon
    from syncd.directory import names
    from syncd.jobs.decisions import decide_request
    from syncd.runtime import open_runtime
    from syncd.store import repo
    from syncd.store.db import transaction
    from syncd.store.migrate import upgrade

    root = Path(var).resolve()
    for stale in ("slapd", "mail", "syncd.db", "syncd.db-wal", "syncd.db-shm"):
        target = root / stale
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)

    print(f"Starting a private OpenLDAP slapd under {root / 'slapd'} ...")
    slapd = DevSlapd(root / "slapd").start()
    sink = MailSink(root / "mail")
    smtp_port = sink.start()
    config = _write_config(root, slapd, smtp_port)
    os.environ["SYNCD_CONFIG"] = str(config)
    os.environ["SYNCD_LDAP__BIND_PASSWORD_FILE"] = str(root / "ldap-password")

    try:
        from syncd.settings import load_settings
        upgrade(load_settings().database_url)
        rt = open_runtime(None)     # the config just written, through SYNCD_CONFIG
        daemon = Daemon(rt)
        daemon.run_job("provision")
        ids = {}
        for role, (email, given, family, org) in (("requester", REQUESTER), ("correspondent", CORRESPONDENT),
                                                   ("admin", ADMIN)):
            ids[role] = operator.add_account(rt, email, given, family, org)
        operator.add_decider(rt, CORRESPONDENT[0], "CARSAT-RA")
        operator.add_decider(rt, ADMIN[0], None)
        daemon.run_job("provision")
        layout = rt.mappings.directory
        person_dn = names.person_dn(layout, ids["requester"])
        groups_base = names.branch_dn(layout, "groups")
        env = f"SYNCD_CONFIG={config} SYNCD_LDAP__BIND_PASSWORD_FILE={root / 'ldap-password'}"
        print(f"""
syncd demo is up.
  LDAP     {slapd.url}  (bind {slapd.root_dn}, password in {root / 'ldap-password'})
  database {root / 'syncd.db'}
  mails    {root / 'mail'}/*.eml
  people   requester {REQUESTER[0]}, correspondent {CORRESPONDENT[0]} (CARSAT-RA), central admin {ADMIN[0]}
""")

        def scenario() -> None:
            try:
                play()
            except Exception as exc:  # show it, and do not leave the daemon running for nothing
                print(f"[scenario] failed: {type(exc).__name__}: {exc}")
                failures.append(exc)
                daemon.stop()

        failures: list[Exception] = []

        def play() -> None:
            time.sleep(1)
            print(f"[scenario] the portal writes a habilitation request for {DEMO_ROLE!r} into the queue table")
            request_id = operator.submit_habilitation(rt, REQUESTER[0], DEMO_ROLE)
            for _ in range(100):
                with transaction(rt.engine) as conn:
                    if repo.get_request(conn, request_id).status is Status.PENDING:
                        break
                time.sleep(0.2)
            print(f"[scenario] request {request_id} is pending; the correspondent accepts it")
            decide_request(rt, request_id, CORRESPONDENT[0], Verdict.ACCEPT, channel="demo")
            daemon.wake_up()
            started = time.monotonic()
            for _ in range(100):
                with transaction(rt.engine) as conn:
                    if repo.get_request(conn, request_id).applied_at is not None:
                        break
                time.sleep(0.1)
            else:
                raise RuntimeError(f"request {request_id} did not reach LDAP within 10 s: see `syncd status`")
            print(f"[scenario] in LDAP {time.monotonic() - started:.2f} s after the decision:")
            print(_ldapsearch(slapd, groups_base, f"(member={person_dn})", "cn"))
            print(_ldapsearch(slapd, person_dn, "(objectClass=*)", "memberOf"))
            print(f"""
Try it yourself, in another terminal (the daemon keeps running here; Ctrl-C stops it):
  export {env}
  .venv/bin/syncd submit habilitation {REQUESTER[0]} accords-locaux-acces-organisme   # prints the request id
  .venv/bin/syncd status
  .venv/bin/syncd decide <id> --accept --as {CORRESPONDENT[0]}
  ldapsearch -x -LLL -H {slapd.url} -D {slapd.root_dn} -y {root / 'ldap-password'} -b {groups_base} "(member={person_dn})" cn
Or leave a request undecided: it is accepted tacitly after 10 days (see docs/workflow.md).
The portal's way in is an INSERT into the `requests` table: see docs/queue.md.
""")
            if exit_after_scenario:
                daemon.stop()

        threading.Thread(target=scenario, name="demo-scenario", daemon=True).start()
        daemon.run_forever()
        rt.close()
        return 1 if failures else 0
    finally:
        sink.stop()
        slapd.stop()
        print("slapd stopped; the demo's files stay under", root)
