"""What the application tests do through syncd, the way production does it.

People are created with ``syncd account add``'s code, choose their password from the link of
the « mot de passe oublié » mail, get a role from a portal request that a correspondent accepts
and the ``apply`` job writes; ``revoke``, ``disable`` and the ``accounts`` job take it away.
E-mails carry a random tag: tests share one directory base, and a login must find one entry.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from syncd import operator
from syncd.core.model import Verdict
from syncd.jobs import habilitations, passwords
from syncd.jobs.decisions import decide_request

ROLE = "accords-locaux-acces-organisme"     # the role whose group docs/applications.md guards
ORGANISATION = "CARSAT-RA"


@dataclass
class Person:
    email: str
    account_id: str
    password: str


@dataclass
class Steps:
    rt: object
    daemon: object
    smtp_server: object
    correspondent: str = field(init=False)

    def __post_init__(self) -> None:
        self.correspondent = self._email("correspondant")
        operator.add_account(self.rt, self.correspondent, "Claire", "Martin", ORGANISATION)
        operator.add_decider(self.rt, self.correspondent, ORGANISATION)

    @staticmethod
    def _email(name: str) -> str:
        return f"{name}.{uuid.uuid4().hex[:10]}@lassuranceretraite.fr"

    def run(self, job: str) -> None:
        assert self.daemon.run_job(job) is not None, f"the {job} job failed (see the log)"

    def person(self, name: str = "agent") -> Person:
        """An active account whose owner chose a password from the mailed link."""
        email = self._email(name)
        account_id = operator.add_account(self.rt, email, name.title(), "Test", ORGANISATION)
        passwords.request_reset(self.rt, email)
        self.run("deliver")
        mail = [m for m in self.smtp_server.messages if email in m["To"]][-1]
        token = re.search(r"token=([A-Za-z0-9_\-]+)", mail.get_body(("plain",)).get_content()).group(1)
        password = f"Mot de passe {uuid.uuid4().hex[:8]} solide"
        passwords.reset_password(self.rt, token, password)
        return Person(email, account_id, password)

    def grant(self, person: Person, role: str = ROLE) -> None:
        """The portal's request, accepted by the correspondent, applied to LDAP."""
        request_id = operator.submit_habilitation(self.rt, person.email, role)
        self.run("intake")
        decide_request(self.rt, request_id, self.correspondent, Verdict.ACCEPT)
        self.run("apply")

    def revoke(self, person: Person, role: str = ROLE) -> None:
        habilitations.revoke(self.rt, person.email, role, by=self.correspondent, reason="fin de mission")
        self.run("accounts")

    def disable(self, person: Person) -> None:
        habilitations.set_account_status(self.rt, person.email, "disabled")
        self.run("accounts")
