"""A deterministic, realistic data set: organisations, role groups, accounts and memberships.

The same generator feeds both sides, so a freshly seeded pair (LDIF bulk-loaded with
``slapadd``, rows copied into SQL) has **no drift**: every LDAP person entry is exactly what
``syncd.core.entries.account_attributes`` asks for, every group holds the placeholder plus the
desired members, and every person carries the ``memberOf`` values the overlay would have
written (``slapadd`` runs no overlay).

Shape (per the issue): ~300 organisations, 200 roles in 40 applications, ~6.3 memberships per
account, the four biggest roles held by two thirds of everybody (100k members at 150k), a few
roles ``shared``, 1% of membership rows revoked (already out of LDAP), 1% directors.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from syncd.core.entries import account_attributes
from syncd.directory import names
from syncd.mappings import Mappings

SEED = 20261102
NOW = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)
BRANCHES = ("maladie", "at-mp", "retraite", "famille", "recouvrement", "autonomie", "inter-branches")
DOMAINS = ("assurance-maladie.fr", "urssaf.fr", "lassuranceretraite.fr", "caf.fr", "ucanss.fr")
GIVEN = ("Jean", "Marie", "Pierre", "Sophie", "Luc", "Claire", "Paul", "Anne", "Hugo", "Léa", "Chloé", "Noé",
         "Éric", "Inès", "Zoé", "Yann", "Lucas", "Emma", "Louis", "Jade")
FAMILY = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
          "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier")

N_ORGS = 300
N_APPS = 40
ROLES_PER_APP = 5
BIG_ROLES = 4            # held by BIG_SHARE of everybody
BIG_SHARE = 2 / 3
SMALL_PER_ACCOUNT = (3, 4, 4, 4, 3)   # drawn among the 196 other roles: mean 3.6 (+ 2.67 = 6.3)
SHARED_EVERY = 25        # every 25th role is "shared"
REVOKED_SHARE = 0.01


def bench_mappings(base_dn: str = "dc=example,dc=org") -> Mappings:
    """The shipped people layout (every mapped attribute), 300 organisations, 200 roles."""
    orgs = [{"code": f"ORG-{i:03d}", "name": f"Organisme {i:03d}", "branch": BRANCHES[i % len(BRANCHES)]}
            for i in range(N_ORGS)]
    apps = []
    for a in range(N_APPS):
        roles = []
        for r in range(ROLES_PER_APP):
            n = a * ROLES_PER_APP + r
            roles.append({"key": f"role-{n:03d}", "label": f"Application {a:02d} - rôle {r}",
                          "group": f"app-role-{n:03d}",
                          "ownership": "shared" if n % SHARED_EVERY == SHARED_EVERY - 1 else "exclusive"})
        apps.append({"key": f"app-{a:02d}", "label": f"Application {a:02d}",
                     "management": "local" if a % 2 else "central", "roles": roles})
    attr = lambda ldap, **kw: {"ldap": ldap, **kw}  # noqa: E731
    return Mappings.model_validate({
        "directory": {
            "base_dn": base_dn,
            "people": {
                "branch": "ou=people", "rdn_attribute": "uid",
                "object_classes": ["inetOrgPerson", "syncdAccount"],
                "attributes": {
                    "civility": attr("syncdCivility"),
                    "given_name": attr("givenName", external_for_directors=True),
                    "family_name": attr("sn", external_for_directors=True),
                    "birth_name": attr("syncdBirthName", external_for_directors=True),
                    "email": attr("mail"),
                    "contact_email": attr("syncdContactMail"),
                    "phone": attr("telephoneNumber", external_for_directors=True),
                    "primary_organisation": attr("syncdPrimaryOrganisation", external_for_directors=True),
                    "secondary_organisation": attr("syncdSecondaryOrganisation"),
                    "internal": attr("syncdInternal"),
                    "director": attr("syncdDirector"),
                    "terms_version": attr("syncdTermsVersion"),
                    "terms_accepted_at": attr("syncdTermsAcceptedAt"),
                    "status": attr("syncdAccountStatus"),
                },
            },
            "organisations": {"branch": "ou=organisations", "rdn_attribute": "o",
                              "object_classes": ["organization", "syncdOrganisation"]},
            "groups": {"branch": "ou=groups", "rdn_attribute": "cn",
                       "object_classes": ["groupOfNames", "syncdRoleGroup"],
                       "placeholder_member": f"cn=syncd-placeholder,ou=groups,{base_dn}"},
        },
        "applications": apps,
        "organisations": orgs,
        "internal_email_domains": list(DOMAINS),
        "policy": {},
    })


@dataclass
class DataSet:
    size: int
    mappings: Mappings
    accounts: list[dict[str, Any]]
    # (account index, role index, revoked)
    memberships: list[tuple[int, int, bool]]

    @property
    def roles(self) -> list:
        return [r for app in self.mappings.applications for r in app.roles]

    def account_id(self, i: int) -> str:
        return self.accounts[i]["id"]

    def active_memberships(self) -> int:
        return sum(1 for _, _, revoked in self.memberships if not revoked)


def generate(size: int, base_dn: str = "dc=example,dc=org", seed: int = SEED) -> DataSet:
    rng = random.Random(seed + size)
    m = bench_mappings(base_dn)
    n_roles = N_APPS * ROLES_PER_APP
    accounts: list[dict[str, Any]] = []
    for i in range(size):
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        domain = rng.choice(DOMAINS)
        director = rng.random() < 0.01
        accounts.append({
            "id": f"{rng.getrandbits(128):032x}",
            "email": f"{given.lower().replace('é', 'e').replace('è', 'e').replace('ï', 'i')}."
                     f"{family.lower().replace('è', 'e')}.{i}@{domain}",
            "civility": rng.choice(("M.", "Mme")),
            "given_name": given,
            "family_name": family,
            "birth_name": rng.choice(FAMILY) if rng.random() < 0.2 else None,
            "contact_email": f"contact.{i}@example.org" if rng.random() < 0.1 else None,
            "phone": f"+33 1 {rng.randrange(10, 99)} {rng.randrange(10, 99)} {rng.randrange(10, 99)} "
                     f"{rng.randrange(10, 99)}" if rng.random() < 0.5 else None,
            "primary_organisation": f"ORG-{rng.randrange(N_ORGS):03d}",
            "secondary_organisation": f"ORG-{rng.randrange(N_ORGS):03d}" if rng.random() < 0.05 else None,
            "internal": rng.random() < 0.9,
            "director": director,
            "terms_version": "2026-01",
            "terms_accepted_at": NOW - timedelta(days=rng.randrange(1, 900), seconds=rng.randrange(86400)),
            "status": "active",
            "created_at": NOW - timedelta(days=1000),
            "updated_at": NOW - timedelta(days=1),
            "ldap_synced_at": NOW - timedelta(days=1),
            "version": 1,
            "ldap_version": 1,              # LDAP holds this version: in step
        })
    # Small roles: weights falling with rank, so sizes range from a few hundred to ~10k at 150k.
    small = list(range(BIG_ROLES, n_roles))
    weights = [1.0 / (1 + k) ** 0.7 for k in range(len(small))]
    cum = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    memberships: list[tuple[int, int, bool]] = []
    for i in range(size):
        roles = {r for r in range(BIG_ROLES) if rng.random() < BIG_SHARE}
        want = len(roles) + rng.choice(SMALL_PER_ACCOUNT)
        while len(roles) < want:
            roles.add(small[_bisect(cum, rng.random() * total)])
        for r in sorted(roles):
            memberships.append((i, r, rng.random() < REVOKED_SHARE))
    return DataSet(size, m, accounts, memberships)


def _bisect(cum: list[float], x: float) -> int:
    lo, hi = 0, len(cum)
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return min(lo, len(cum) - 1)


# ---------------------------------------------------------------------------------------------
# LDIF


def _ldif_line(attr: str, value: str) -> str:
    if value and (value[0] in " :<" or value[-1] == " " or not value.isascii() or "\n" in value):
        import base64
        return f"{attr}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}\n"
    return f"{attr}: {value}\n"


def write_ldif(data: DataSet, path: Path) -> Path:
    """The whole tree as LDIF for ``slapadd``: base, branches, organisations, people, groups."""
    m = data.mappings
    layout = m.directory
    base = layout.base_dn
    people_dn = names.branch_dn(layout, "people")
    placeholder = names.placeholder_dn(layout)
    roles = data.roles
    group_dns = [names.group_dn(layout, r.group) for r in roles]
    members_of: list[list[int]] = [[] for _ in range(data.size)]
    group_members: list[list[int]] = [[] for _ in roles]
    for i, r, revoked in data.memberships:
        if not revoked:
            members_of[i].append(r)
            group_members[r].append(i)
    org_dn = lambda code: names.organisation_dn(layout, code)  # noqa: E731
    with open(path, "w", encoding="utf-8") as f:
        out = io.StringIO()
        rdn_attr, rdn_value = base.split(",")[0].split("=")
        out.write(f"dn: {base}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n"
                  f"{rdn_attr}: {rdn_value}\no: bench\n\n")
        for which in ("people", "organisations", "groups"):
            dn = names.branch_dn(layout, which)
            out.write(f"dn: {dn}\nobjectClass: organizationalUnit\nou: {dn.split(',')[0].split('=')[1]}\n\n")
        for org in m.organisations:
            out.write(f"dn: {org_dn(org.code)}\nobjectClass: organization\nobjectClass: syncdOrganisation\n"
                      f"o: {org.code}\nsyncdOrganisationCode: {org.code}\n"
                      + _ldif_line("description", org.name) + f"syncdBranch: {org.branch}\n\n")
        f.write(out.getvalue())
        for i, account in enumerate(data.accounts):
            attrs = account_attributes(account, layout.people, first_write=True, organisation_dn=org_dn)
            lines = [f"dn: uid={account['id']},{people_dn}\n", "objectClass: inetOrgPerson\n",
                     "objectClass: syncdAccount\n", f"uid: {account['id']}\n"]
            for attr, values in attrs.items():
                for v in values:
                    lines.append(_ldif_line(attr, v))
            for r in members_of[i]:
                lines.append(f"memberOf: {group_dns[r]}\n")
            lines.append("\n")
            f.write("".join(lines))
        for r, role in enumerate(roles):
            app = m.application_of(role.key)
            lines = [f"dn: {group_dns[r]}\n", "objectClass: groupOfNames\n", "objectClass: syncdRoleGroup\n",
                     f"cn: {role.group}\n", f"syncdRoleKey: {role.key}\n", f"syncdApplicationKey: {app.key}\n",
                     _ldif_line("description", role.label), f"member: {placeholder}\n"]
            lines.extend(f"member: uid={data.accounts[i]['id']},{people_dn}\n" for i in group_members[r])
            lines.append("\n")
            f.write("".join(lines))
    return path


# ---------------------------------------------------------------------------------------------
# SQL


def account_rows(data: DataSet) -> Iterator[dict[str, Any]]:
    yield from data.accounts


def membership_rows(data: DataSet) -> Iterator[dict[str, Any]]:
    roles = data.roles
    granted = NOW - timedelta(days=30)
    for i, r, revoked in data.memberships:
        yield {"account_id": data.accounts[i]["id"], "role_key": roles[r].key, "granted_by_request": None,
               "granted_at": granted, "expires_at": None,
               "revoked_at": NOW - timedelta(days=2) if revoked else None, "applied_at": granted}
