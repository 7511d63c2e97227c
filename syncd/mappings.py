"""The operator's YAML mappings: directory layout, applications and roles, organisations, domains.

The models below are the validated, frozen form every other module uses. ``load_mappings``
reads every ``*.yaml`` file of the mappings folder, merges their top-level sections and
reports each problem with its file, line and a plain sentence (see ``syncd check-config``).
"""

from __future__ import annotations

import functools

import difflib
import os
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from syncd.core.model import Management
from syncd.errors import ConfigError

Ownership = Literal["syncd", "external"]
_KEY = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttributeMapping(_Frozen):
    """Where one account field lives in LDAP, and who owns its value."""

    ldap: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    owner: Ownership = "syncd"
    # Owned by an external referential for directors ("ADD") only: syncd writes it for others.
    external_for_directors: bool = False


class BranchLayout(_Frozen):
    branch: str                       # RDN sequence relative to base_dn, e.g. "ou=people"
    rdn_attribute: str
    object_classes: tuple[str, ...]


class PeopleLayout(BranchLayout):
    attributes: dict[str, AttributeMapping]
    disabled_attribute: str = "syncdAccountStatus"


class GroupLayout(BranchLayout):
    member_attribute: str = "member"
    # groupOfNames requires one member: this DN is always kept in every role group so a
    # role with no members left stays a valid entry. It names no person.
    placeholder_member: str


class DirectoryLayout(_Frozen):
    base_dn: str
    people: PeopleLayout
    organisations: BranchLayout
    groups: GroupLayout


class Role(_Frozen):
    key: str = Field(pattern=_KEY)
    label: str = Field(min_length=1, max_length=200)
    group: str = Field(min_length=1, max_length=200)   # value of the group's RDN attribute
    management: Management | None = None               # None: the application's
    tacit_delay_days: int | None = Field(default=None, ge=1, le=365)
    restriction: Literal["internal_only"] | None = None
    validity_months: int | None = Field(default=None, ge=1, le=120)
    ownership: Literal["exclusive", "shared"] = "exclusive"


class Application(_Frozen):
    key: str = Field(pattern=_KEY)
    label: str = Field(min_length=1, max_length=200)
    management: Management = Management.LOCAL
    roles: tuple[Role, ...] = Field(min_length=1)


class Organisation(_Frozen):
    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    branch: str = Field(min_length=1, max_length=64)


class Policy(_Frozen):
    """Workflow delays and defaults; per-role settings override these."""

    tacit_delay_days: int = Field(default=10, ge=1, le=365)
    account_tacit_delay_days: int = Field(default=10, ge=1, le=365)
    calendar: Literal["calendar_days", "business_days_fr"] = "calendar_days"
    reminder_days_before: tuple[int, ...] = (3, 1)
    terms_version: str = "1"


class Mappings(_Frozen):
    directory: DirectoryLayout
    applications: tuple[Application, ...]
    organisations: tuple[Organisation, ...]
    internal_email_domains: tuple[str, ...]
    policy: Policy = Policy()

    def role(self, key: str) -> Role | None:
        return self._roles.get(key)

    def application_of(self, role_key: str) -> Application | None:
        return self._applications_by_role.get(role_key)

    def management_of(self, role_key: str) -> Management:
        role = self.role(role_key)
        app = self.application_of(role_key)
        if role is None or app is None:
            raise KeyError(role_key)
        return role.management or app.management

    def tacit_delay_of(self, role_key: str) -> int:
        role = self.role(role_key)
        if role is None:
            raise KeyError(role_key)
        return role.tacit_delay_days or self.policy.tacit_delay_days

    def organisation(self, code: str) -> Organisation | None:
        return self._organisations.get(code)

    # Indexes built once per (immutable) Mappings: jobs look roles up for every request of a
    # batch, and rebuilding the index each time showed in apply's profile.
    @functools.cached_property
    def _roles(self) -> dict[str, Role]:
        return {r.key: r for app in self.applications for r in app.roles}

    @functools.cached_property
    def _applications_by_role(self) -> dict[str, Application]:
        found: dict[str, Application] = {}
        for app in self.applications:
            for r in app.roles:
                found.setdefault(r.key, app)     # the first, as the linear search it replaces
        return found

    @functools.cached_property
    def _organisations(self) -> dict[str, Organisation]:
        found: dict[str, Organisation] = {}
        for o in self.organisations:
            found.setdefault(o.code, o)
        return found


# ---------------------------------------------------------------------------------------------
# Loading: read the folder, merge the sections, validate, cross-check, report every problem.
# ---------------------------------------------------------------------------------------------

SECTIONS: tuple[str, ...] = tuple(Mappings.model_fields)

# The account fields a ``directory.people.attributes`` entry may map (columns of ``accounts``).
ACCOUNT_FIELDS: tuple[str, ...] = (
    "civility", "given_name", "family_name", "birth_name", "email", "contact_email", "phone",
    "primary_organisation", "secondary_organisation", "internal", "director",
    "terms_version", "terms_accepted_at", "status",
)
REQUIRED_ATTRIBUTES: tuple[str, ...] = ("given_name", "family_name", "email")

# The branches ("branches") of the French general social-security scheme an organisation
# belongs to; ``inter-branches`` is for bodies that serve several (UCANSS, the CGSS overseas).
BRANCHES: tuple[str, ...] = (
    "maladie", "at-mp", "retraite", "famille", "recouvrement", "autonomie", "inter-branches",
)

# A file whose aliases expand to more values than this is refused (an "alias bomb").
MAX_EXPANDED_VALUES = 200_000
_MAX_TERMS_VERSION = 20          # accounts.terms_version is a String(20)

_LDAP_NAME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)$")   # descr or numericoid
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
_MERGE_TAG = "tag:yaml.org,2002:merge"

_PATTERN_HINTS = {
    "key": "use lowercase letters, digits, '_', '.' and '-', starting with a letter or digit, "
           "at most 64 characters",
    "code": "use letters, digits, '_', '.' and '-', starting with a letter or digit, "
            "at most 64 characters",
    "ldap": "an LDAP attribute name is a letter followed by letters, digits or '-'",
}

Loc = tuple[Any, ...]


class _SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads dates as text and turns constructor crashes into errors.

    No mappings field is a date, and a date-like value (``terms_version: 2026-01-15``) is
    meant as text. PyYAML's own constructors raise ``ValueError`` or ``AttributeError`` on some
    inputs (``0x_``, ``!!timestamp x``): those become a ``ConstructorError`` with the line.
    """

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception as exc:  # noqa: BLE001 - a PyYAML constructor crashed on this node
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read the value {_short(node.value)} as {_tag_name(node.tag)} ({exc})",
                node.start_mark,
            ) from None


def _yaml_reason(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's error as one sentence, without its quote of the source."""
    reason = exc.problem or "unreadable"
    if "expected <block end>" in reason:
        reason += "; check the indentation"
    if exc.context:
        where = ""
        if exc.context_mark is not None and exc.context_mark is not exc.problem_mark:
            where = f" at line {exc.context_mark.line + 1}"
        reason += f" ({exc.context}{where})"
    return reason


def _tag_name(tag: str) -> str:
    return tag.rsplit(":", 1)[-1] if tag.startswith("tag:yaml.org,2002:") else tag


@dataclass(frozen=True)
class _Section:
    file: str            # as shown in problems
    line: int            # 1-based line of the section's key
    node: yaml.Node      # the section's value


@dataclass(frozen=True)
class _Problem:
    file: str
    line: int | None
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}" if self.line else f"{self.file}: {self.text}"


def load_mappings(folder: str | os.PathLike[str]) -> Mappings:
    """Read every ``*.yaml`` / ``*.yml`` file of ``folder`` (sorted by name) into ``Mappings``.

    Each file holds top-level sections (``directory``, ``applications``, ``organisations``,
    ``internal_email_domains``, ``policy``); a section lives in one file only. Every problem
    found is collected and raised together as ``ConfigError``, each reading
    ``"<file>:<line>: <where>: <plain sentence>"``.
    """
    return _MappingsLoader(Path(folder)).load()


class _MappingsLoader:
    def __init__(self, folder: Path):
        self.folder = folder
        self.sections: dict[str, _Section] = {}
        self.data: dict[str, Any] = {}
        self.problems: list[_Problem] = []
        self.unreadable = False      # a file could not be read: its sections are unknown

    # -- entry point ------------------------------------------------------------------------

    def load(self) -> Mappings:
        shown = _display(self.folder)
        if not self.folder.is_dir():
            what = "does not exist" if not self.folder.exists() else "is not a folder"
            raise ConfigError([f"{shown}: the mappings folder {what}"])
        try:
            files = sorted(
                p for p in self.folder.iterdir()
                if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and not p.is_dir()
            )
        except OSError as exc:
            raise ConfigError([f"{shown}: cannot list the mappings folder: {exc.strerror or exc}"])
        if not files:
            raise ConfigError([f"{shown}: the mappings folder holds no *.yaml or *.yml file"])
        for path in files:
            self._read_file(path)
        mappings = self._validate()
        self._cross_check()
        if self.problems or mappings is None:
            raise ConfigError(self._sorted_problems() or [f"{shown}: the mappings are not valid"])
        return mappings

    def _sorted_problems(self) -> list[str]:
        folder = _display(self.folder)
        ranked = sorted(enumerate(self.problems),
                        key=lambda ip: (ip[1].file != folder, ip[1].file, ip[1].line or 0, ip[0]))
        return list(dict.fromkeys(str(p) for _, p in ranked))

    def _add(self, file: str, line: int | None, text: str) -> None:
        self.problems.append(_Problem(file, line, text))

    # -- reading one file -------------------------------------------------------------------

    def _read_file(self, path: Path) -> None:
        shown = _display(path)
        parsed = self._parse(path, shown)
        if parsed is None:
            self.unreadable = True
            return
        root, data = parsed
        if root is None:
            return                           # an empty (or comment-only) file defines nothing
        if not isinstance(data, dict):
            self._add(shown, root.start_mark.line + 1,
                      "the file must be a mapping of sections (" + ", ".join(SECTIONS)
                      + f"), not {_kind(data)}")
            return
        for name, value in data.items():
            line, node = _child(root, name) or (root.start_mark.line + 1, root)
            if not isinstance(name, str):
                self._add(shown, line, f"a section name must be text, not {_kind(name)} {name!r}")
            elif name not in SECTIONS:
                self._add(shown, line, f"unknown section {name!r}{_did_you_mean(name, SECTIONS)}; "
                                       "the sections are " + ", ".join(SECTIONS))
            elif name in self.sections:
                first = self.sections[name]
                self._add(shown, line, f"section {name!r} is already defined in "
                                       f"{first.file}:{first.line}; a section lives in one file only")
            else:
                self.sections[name] = _Section(shown, line, node)
                self.data[name] = value

    def _parse(self, path: Path, shown: str) -> tuple[yaml.Node | None, Any] | None:
        """The file's node tree and data; None (with the problem reported) when unreadable."""
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except OSError as exc:
            self._add(shown, None, f"cannot read the file: {exc.strerror or exc}")
            return None
        except UnicodeDecodeError as exc:
            line = exc.object[: exc.start].count(b"\n") + 1
            self._add(shown, line, "the file is not UTF-8 text")
            return None
        loader: _SafeLoader | None = None
        try:
            loader = _SafeLoader(text)       # may already refuse a character YAML does not allow
            root = loader.get_single_node()
            if root is None:
                return None, None
            if not self._check_node_tree(shown, root):
                return None
            return root, loader.construct_document(root)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            self._add(shown, mark.line + 1 if mark else 1, f"not valid YAML: {_yaml_reason(exc)}")
        except yaml.reader.ReaderError as exc:
            char = exc.character if isinstance(exc.character, int) else ord(exc.character or "\0")
            self._add(shown, text[: exc.position].count("\n") + 1,
                      f"not valid YAML: the control character U+{char:04X} is not allowed")
        except yaml.YAMLError as exc:
            self._add(shown, 1, f"not valid YAML: {exc}")
        except RecursionError:
            self._add(shown, 1, "not valid YAML: the values are nested too deeply")
        finally:
            if loader is not None:
                loader.dispose()
        return None

    def _check_node_tree(self, file: str, root: yaml.Node) -> bool:
        """Report duplicate keys, alias loops and alias bombs; False if the file is unusable."""
        seen: set[int] = set()
        stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
        while stack:
            node, loc = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, yaml.MappingNode):
                first_line: dict[tuple[str, str], int] = {}
                for key, value in node.value:
                    if key.tag == _MERGE_TAG:
                        stack.append((value, loc))
                        continue
                    if isinstance(key, yaml.ScalarNode):
                        ident = (key.tag, key.value)
                        line = key.start_mark.line + 1
                        if ident in first_line:
                            where = f"{_path(loc)}: " if loc else ""
                            self._add(file, line, f"{where}key {key.value!r} appears twice in this "
                                      f"mapping (first at line {first_line[ident]}); YAML would "
                                      "silently keep only the last one")
                        else:
                            first_line[ident] = line
                        stack.append((value, (*loc, key.value)))
                    else:
                        stack.append((value, loc))
            elif isinstance(node, yaml.SequenceNode):
                stack.extend((item, (*loc, i)) for i, item in enumerate(node.value))
        try:
            size = _expanded_size(root)
        except _AliasLoop as loop:
            self._add(file, loop.node.start_mark.line + 1,
                      "this value contains an alias to itself; such loops are not allowed")
            return False
        if size > MAX_EXPANDED_VALUES:
            self._add(file, 1, f"the file's aliases expand to more than {MAX_EXPANDED_VALUES} "
                               "values; write the values out instead")
            return False
        return True

    # -- validation with the models ---------------------------------------------------------

    def _validate(self) -> Mappings | None:
        try:
            return Mappings.model_validate(self.data)
        except ValidationError as exc:
            errors = exc.errors()
            for err in errors:
                # A list whose only items were refused is also "too short after validation":
                # that echo of the item's own problem would only mislead.
                if err["type"] == "too_short" and any(
                    len(o["loc"]) > len(err["loc"]) and o["loc"][: len(err["loc"])] == err["loc"]
                    for o in errors
                ):
                    continue
                self._report_pydantic(err)
        except RecursionError:
            self._add(_display(self.folder), None, "the mappings are nested too deeply to validate")
        return None

    def _report_pydantic(self, err: Any) -> None:
        loc: Loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "missing" and len(loc) == 1:
            if self.unreadable:
                return               # the section may well be in the file that could not be read
            self._add(_display(self.folder), None,
                      f"no file defines the required section {loc[0]!r}")
            return
        if kind in ("extra_forbidden", "missing", "invalid_key"):
            where, field = loc[:-1], loc[-1]
            if kind == "extra_forbidden":
                text = f"unknown key {field!r}{_did_you_mean(field, _allowed_keys(where))}"
                self._report(loc, text, at=where)
            elif kind == "missing":
                self._report(where, f"missing required key {field!r}", at=where)
            else:
                self._report(loc, f"key {err['input']!r} must be text, not {_kind(err['input'])}",
                             at=where)
            return
        if loc and loc[-1] == "[key]":
            loc = loc[:-1]
            self._report(loc, f"key {loc[-1]!r} must be text", at=loc[:-1])
            return
        self._report(loc, _sentence(err, loc))

    # -- cross-checks on the raw data (run even when the models refused some of it) ---------

    def _cross_check(self) -> None:
        self._check_directory(self.data.get("directory"))
        self._check_applications(self.data.get("applications"))
        self._check_organisations(self.data.get("organisations"))
        self._check_domains(self.data.get("internal_email_domains"))
        self._check_policy(self.data.get("policy"))

    def _check_directory(self, directory: Any) -> None:
        if not isinstance(directory, dict):
            return
        base = directory.get("base_dn")
        if isinstance(base, str):
            self._check_dn(("directory", "base_dn"), base)
        branches: dict[str, Loc] = {}
        names = {"people": ("rdn_attribute", "disabled_attribute"),
                 "organisations": ("rdn_attribute",),
                 "groups": ("rdn_attribute", "member_attribute")}
        for name, attributes in names.items():
            layout = directory.get(name)
            if not isinstance(layout, dict):
                continue
            loc = ("directory", name)
            branch = layout.get("branch")
            if isinstance(branch, str) and self._check_dn((*loc, "branch"), branch, relative=True):
                norm = _norm(branch)
                if norm in branches:
                    self._report((*loc, "branch"), f"{branch!r} is already the branch of "
                                 f"{_path(branches[norm])}; people, organisations and groups "
                                 "need a branch each")
                branches[norm] = loc
            for attr in attributes:
                if isinstance(layout.get(attr), str):
                    self._check_ldap_name((*loc, attr), layout[attr], "LDAP attribute name")
            classes = layout.get("object_classes")
            if isinstance(classes, list | tuple):
                if not classes:
                    self._report((*loc, "object_classes"), "list at least one object class")
                seen: dict[str, int] = {}
                for i, cls in enumerate(classes):
                    if not isinstance(cls, str):
                        continue
                    if self._check_ldap_name((*loc, "object_classes", i), cls, "object class name"):
                        if cls.lower() in seen:
                            self._report((*loc, "object_classes", i),
                                         f"object class {cls!r} is listed twice")
                        seen[cls.lower()] = i
        people = directory.get("people")
        if isinstance(people, dict) and isinstance(people.get("attributes"), dict):
            self._check_attributes(("directory", "people", "attributes"), people["attributes"])
        groups = directory.get("groups")
        if isinstance(groups, dict) and isinstance(groups.get("placeholder_member"), str):
            self._check_dn(("directory", "groups", "placeholder_member"), groups["placeholder_member"])

    def _check_attributes(self, loc: Loc, attributes: dict[Any, Any]) -> None:
        ldap_names: dict[str, str] = {}
        for field, mapping in attributes.items():
            if isinstance(field, str) and field not in ACCOUNT_FIELDS:
                self._report((*loc, field), f"{field!r} is not an account field"
                             f"{_did_you_mean(field, ACCOUNT_FIELDS)}; the account fields are "
                             + ", ".join(ACCOUNT_FIELDS), at=loc)
            if isinstance(mapping, dict) and isinstance(mapping.get("ldap"), str):
                name = mapping["ldap"].lower()
                if name in ldap_names:
                    self._report((*loc, field, "ldap"), f"LDAP attribute {mapping['ldap']!r} is "
                                 f"already mapped to {ldap_names[name]!r}; map each account field "
                                 "to its own attribute")
                else:
                    ldap_names[name] = str(field)
        missing = [f for f in REQUIRED_ATTRIBUTES if f not in attributes]
        if missing:
            self._report(loc, "missing the mapping of required account field"
                         + ("s " if len(missing) > 1 else " ") + ", ".join(map(repr, missing)), at=loc)

    def _check_applications(self, applications: Any) -> None:
        if not isinstance(applications, list | tuple):
            return
        app_keys: dict[str, Loc] = {}
        role_keys: dict[str, Loc] = {}
        groups: dict[str, Loc] = {}
        for i, app in enumerate(applications):
            if not isinstance(app, dict):
                continue
            loc = ("applications", i)
            self._check_unique(app.get("key"), (*loc, "key"), app_keys, "application key")
            roles = app.get("roles")
            if not isinstance(roles, list | tuple):
                continue
            for j, role in enumerate(roles):
                if not isinstance(role, dict):
                    continue
                rloc = (*loc, "roles", j)
                self._check_unique(role.get("key"), (*rloc, "key"), role_keys, "role key")
                group = role.get("group")
                if isinstance(group, str):
                    self._check_unique(" ".join(group.split()).casefold(), (*rloc, "group"), groups,
                                       "LDAP group", shown=group, note="; each role needs its own "
                                       "group (names are compared ignoring case, as LDAP does)")

    def _check_organisations(self, organisations: Any) -> None:
        if not isinstance(organisations, list | tuple):
            return
        codes: dict[str, Loc] = {}
        for i, org in enumerate(organisations):
            if not isinstance(org, dict):
                continue
            loc = ("organisations", i)
            code = org.get("code")
            if isinstance(code, str):
                self._check_unique(code.casefold(), (*loc, "code"), codes, "organisation code",
                                   shown=code, note=" (codes are compared ignoring case, as LDAP does)")
            branch = org.get("branch")
            if isinstance(branch, str) and branch not in BRANCHES:
                self._report((*loc, "branch"), f"unknown branch {branch!r}"
                             f"{_did_you_mean(branch, BRANCHES)}; the branches are "
                             + ", ".join(BRANCHES))

    def _check_domains(self, domains: Any) -> None:
        if not isinstance(domains, list | tuple):
            return
        seen: dict[str, Loc] = {}
        for i, domain in enumerate(domains):
            if not isinstance(domain, str):
                continue
            loc = ("internal_email_domains", i)
            reason = _domain_problem(domain)
            if reason:
                self._report(loc, reason)
                continue
            self._check_unique(domain.casefold(), loc, seen, "domain", shown=domain,
                               note=" (domains are compared ignoring case)")

    def _check_policy(self, policy: Any) -> None:
        if not isinstance(policy, dict):
            return
        days = policy.get("reminder_days_before")
        if isinstance(days, list | tuple):
            for i, day in enumerate(days):
                if isinstance(day, int) and not isinstance(day, bool) and not 1 <= day <= 365:
                    self._report(("policy", "reminder_days_before", i),
                                 f"{day} is out of range: a reminder is sent 1 to 365 days "
                                 "before the tacit deadline")
        version = policy.get("terms_version")
        if isinstance(version, str) and not 1 <= len(version) <= _MAX_TERMS_VERSION:
            self._report(("policy", "terms_version"),
                         f"must be 1 to {_MAX_TERMS_VERSION} characters long")

    # -- helpers ----------------------------------------------------------------------------

    def _check_unique(self, value: Any, loc: Loc, seen: dict[str, Loc], what: str,
                      shown: str | None = None, note: str = "") -> None:
        if not isinstance(value, str):
            return
        if value in seen:
            first = seen[value]
            self._report(loc, f"duplicate {what} {shown or value!r}: {_path(first)} (line "
                              f"{self._line(first)}) already uses it{note}")
        else:
            seen[value] = loc

    def _check_dn(self, loc: Loc, dn: str, relative: bool = False) -> bool:
        try:
            _parse_dn(dn)
            return True
        except Exception as exc:  # noqa: BLE001 - ldap3 may raise more than LDAPInvalidDnError
            what = "a relative DN such as 'ou=people'" if relative else "a DN such as 'dc=example,dc=org'"
            reason = exc.args[0] if exc.args and isinstance(exc.args[0], str) else type(exc).__name__
            self._report(loc, f"{dn!r} is not a valid DN ({reason}); write {what}")
            return False

    def _check_ldap_name(self, loc: Loc, name: str, what: str) -> bool:
        if _LDAP_NAME.match(name):
            return True
        self._report(loc, f"{name!r} is not a valid {what}: "
                          "a letter followed by letters, digits or '-' (or a numeric OID)")
        return False

    def _report(self, loc: Loc, text: str, at: Loc | None = None) -> None:
        """Add a problem about ``loc``; its line is that of ``loc`` (or the nearest parent's)."""
        where = loc if at is None else at
        prefix = f"{_path(where)}: " if where else ""
        section = self.sections.get(loc[0]) if loc and isinstance(loc[0], str) else None
        if section is None:
            self._add(_display(self.folder), None, prefix + text)
            return
        self._add(section.file, self._line(loc), prefix + text)

    def _line(self, loc: Loc) -> int:
        section = self.sections[loc[0]]
        line, node = section.line, section.node
        for part in loc[1:]:
            step = _child(node, part)
            if step is None:
                break
            line, node = step
        return line


# -- node-tree helpers ------------------------------------------------------------------------


def _child(node: yaml.Node, part: Any) -> tuple[int, yaml.Node] | None:
    """One step down the node tree: the (1-based line, node) of key or index ``part``.

    Mapping entries give the line of their key; the last of duplicate keys wins, as in PyYAML
    (whose constructor has by now flattened ``<<`` merges into the node).
    """
    if isinstance(node, yaml.MappingNode):
        for key, value in reversed(node.value):
            if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG and (
                key.value == part or key.value == str(part)
            ):
                return key.start_mark.line + 1, value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and not isinstance(part, bool):
        if 0 <= part < len(node.value):
            item = node.value[part]
            return item.start_mark.line + 1, item
    return None


class _AliasLoop(Exception):
    def __init__(self, node: yaml.Node):
        self.node = node


def _expanded_size(root: yaml.Node) -> int:
    """How many values the tree holds once aliases are expanded; raises ``_AliasLoop``."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        children = _children(node)
        if done:
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            on_path.discard(id(node))
            if size[id(node)] > MAX_EXPANDED_VALUES:
                return size[id(node)]
            continue
        if id(node) in size:
            continue
        if id(node) in on_path:
            raise _AliasLoop(node)
        on_path.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children)
    return size[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


# -- wording helpers --------------------------------------------------------------------------


def _display(path: Path) -> str:
    """The path as shown in problems: relative to the working folder when it lies inside it."""
    if path.is_absolute():
        try:
            return path.relative_to(Path.cwd()).as_posix()
        except (ValueError, OSError):
            pass
    return path.as_posix()


def _path(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _did_you_mean(word: Any, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple | set):
        return "a list"
    return f"a {type(value).__name__} value"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_dn(dn: str) -> list[tuple[str, str, str]]:
    """ldap3's pure DN parser (imported here only: the core imports this module, not ldap3).

    Spaces around ``,`` ``+`` and ``=`` are tolerated, as ``syncd.directory.names`` does.
    """
    from ldap3.utils.dn import parse_dn

    return parse_dn(dn, escape=False, strip=True)


def _norm(dn: str) -> str:
    return ",".join(f"{a.lower()}={v.lower()}" for a, v, _ in _parse_dn(dn))


def _domain_problem(domain: str) -> str | None:
    if domain.startswith("@"):
        return f"write the domain {domain[1:]!r} without the '@'"
    if "*" in domain:
        return (f"{domain!r}: wildcards are not supported; a domain already covers its "
                "subdomains (urssaf.fr covers idf.urssaf.fr)")
    labels = domain.lower().split(".")
    if (len(domain) > 253 or len(labels) < 2 or not all(_LABEL.match(p) for p in labels)
            or not _TLD.match(labels[-1])):
        return f"{domain!r} is not a domain name such as 'urssaf.fr'"
    return None


def _unwrap(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _type_at(loc: Loc) -> Any:
    """The declared type at ``loc`` inside ``Mappings``, or None when the path leaves the models."""
    tp: Any = Mappings
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is tuple and isinstance(part, int):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return None
    return _unwrap(tp)


def _allowed_keys(loc: Loc) -> tuple[str, ...]:
    tp = _type_at(loc)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tuple(tp.model_fields)
    return ()


def _sentence(err: Any, loc: Loc) -> str:
    """A plain sentence for one pydantic error (the path is added by the caller)."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    field = loc[-1] if loc else None
    found = f"{_kind(value)} {_short(value)}" if value is not None else _kind(value)
    if kind == "string_type":
        hint = "; put it in quotes" if isinstance(value, bool | int | float) else ""
        return f"expected text, found {found}{hint}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, found {found}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, found {found}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping (key: value lines), found {found}"
    if kind in ("tuple_type", "list_type", "iterable_type"):
        return f"expected a list (one '- item' per line), found {found}"
    if kind == "greater_than_equal":
        return f"{_short(value)} is too small: it must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"{_short(value)} is too large: it must be at most {ctx.get('le')}"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must be at least {n} characters long"
    if kind == "string_too_long":
        return f"is too long: at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must list at least {n} item{'s' if n != 1 else ''}"
    if kind in ("literal_error", "enum"):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return (f"{_short(value)} is not allowed{_did_you_mean(value, choices)}; "
                f"expected {ctx.get('expected')}")
    if kind == "string_pattern_mismatch":
        hint = _PATTERN_HINTS.get(field, f"it must match {ctx.get('pattern')}") \
            if isinstance(field, str) else f"it must match {ctx.get('pattern')}"
        return f"{_short(value)} is not valid: {hint}"
    if kind == "recursion_loop":
        return "this value refers to itself"
    msg = str(err.get("msg", kind))
    return msg[:1].lower() + msg[1:]
