"""Loading the mappings folder: read each file, merge the sections, validate, report every problem.

``load_mappings`` reads every ``*.yaml`` file of the folder, checks it with the models and
with the cross-checks the models cannot make, and raises one ``ConfigError`` listing every
problem with its file and line (see ``syncd check-config``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from syncd.core import syntax
from syncd.core.model import DirectoryKind
from syncd.errors import ConfigError
from syncd.mappings.checks import (
    _LDAP_NAME,
    _MAX_TERMS_VERSION,
    ACCOUNT_FIELDS,
    BRANCHES,
    REQUIRED_ATTRIBUTES,
    SECTIONS,
    _domain_problem,
    _norm,
    _parse_dn,
)
from syncd.core.mappings import Mappings
from syncd.mappings.problems import (
    Loc,
    _allowed_keys,
    _did_you_mean,
    _display,
    _kind,
    _path,
    _Problem,
    _short,
    _sentence,
)
from syncd.mappings.yaml_source import (
    _MERGE_TAG,
    MAX_EXPANDED_VALUES,
    _AliasLoop,
    _child,
    _expanded_size,
    _SafeLoader,
    _yaml_reason,
)


# The attributes each branch's layout names (``directory.people.rdn_attribute``…).
_LAYOUT_ATTRIBUTES = {"people": ("rdn_attribute", "disabled_attribute"), "organisations": ("rdn_attribute",),
                      "groups": ("rdn_attribute", "member_attribute")}


@dataclass(frozen=True)
class _Section:
    file: str            # as shown in problems
    line: int            # 1-based line of the section's key
    node: yaml.Node      # the section's value


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
            raise ConfigError([f"{shown}: cannot list the mappings folder: {exc.strerror or exc}"]) from exc
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
        self._check_written_values()

    def _check_directory(self, directory: Any) -> None:
        if not isinstance(directory, dict):
            return
        base = directory.get("base_dn")
        if isinstance(base, str):
            self._check_dn(("directory", "base_dn"), base)
        branches: dict[str, Loc] = {}
        for name, attributes in _LAYOUT_ATTRIBUTES.items():
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
        self._check_syntaxes(directory)
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

    def _kind(self) -> DirectoryKind | None:
        directory = self.data.get("directory")
        try:
            return DirectoryKind(directory.get("kind", DirectoryKind.OPENLDAP.value)
                                 if isinstance(directory, dict) else DirectoryKind.OPENLDAP.value)
        except ValueError:
            return None

    def _check_syntaxes(self, directory: dict[Any, Any]) -> None:
        """Every attribute syncd writes is one the syntax profile of ``directory.kind`` knows, of a
        syntax that can hold what syncd writes there (syncd/core/syntax.py)."""
        kind = self._kind()
        if kind is None:
            return                       # the model reports the unknown kind
        for name, keys in _LAYOUT_ATTRIBUTES.items():
            layout = directory.get(name)
            for key in keys if isinstance(layout, dict) else ():
                attribute = layout.get(key)
                if isinstance(attribute, str) and _LDAP_NAME.match(attribute):
                    problem = syntax.mapping_problem(kind, attribute, syntax.LAYOUT_SYNTAXES[key],
                                                     "what syncd writes there")
                    if problem:
                        self._report(("directory", name, key), problem)
            self._check_required_layout(kind, name, layout)
        people = directory.get("people")
        attributes = people.get("attributes") if isinstance(people, dict) else None
        for field, mapping in attributes.items() if isinstance(attributes, dict) else ():
            attribute = mapping.get("ldap") if isinstance(mapping, dict) else None
            if field in ACCOUNT_FIELDS and isinstance(attribute, str) and _LDAP_NAME.match(attribute):
                problem = syntax.mapping_problem(kind, attribute, syntax.FIELD_SYNTAXES.get(field),
                                                 f"the values of {field!r}")
                if problem:
                    self._report(("directory", "people", "attributes", field, "ldap"), problem)

    def _check_required_layout(self, kind: DirectoryKind, name: str, layout: Any) -> None:
        """The naming attribute and object class the server requires in branch ``name``."""
        required = syntax.profile(kind).required_layout.get(name)
        if required is None or not isinstance(layout, dict):
            return
        rdn, cls = required
        if isinstance(layout.get("rdn_attribute"), str) and layout["rdn_attribute"].lower() != rdn.lower():
            self._report(("directory", name, "rdn_attribute"),
                         f"directory.kind {kind.value} names these entries by {rdn}, not {layout['rdn_attribute']!r}")
        classes = layout.get("object_classes")
        if isinstance(classes, list | tuple) and cls.lower() not in [c.lower() for c in classes if isinstance(c, str)]:
            self._report(("directory", name, "object_classes"),
                         f"directory.kind {kind.value} needs the object class {cls!r} here")

    def _check_written_values(self) -> None:
        """The names and labels syncd writes to LDAP pass the syntax profile (a control character
        written as an escape in a double-quoted YAML string would not)."""
        kind = self._kind()
        if kind is None:
            return
        prof = syntax.profile(kind)
        written: list[tuple[Loc, str, Any]] = []

        def items(value: Any) -> list[tuple[int, dict]]:
            return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)] \
                if isinstance(value, list | tuple) else []
        for i, org in items(self.data.get("organisations")):
            written.append((("organisations", i, "name"), "description", org.get("name")))
        for i, app in items(self.data.get("applications")):
            written.append((("applications", i, "label"), "syncdApplicationLabel", app.get("label")))
            for j, role in items(app.get("roles")):
                written += [(("applications", i, "roles", j, "label"), "description", role.get("label")),
                            (("applications", i, "roles", j, "group"), "cn", role.get("group"))]
        for loc, attribute, value in written:
            refusal = prof.check(attribute, value) if isinstance(value, str) and value else None
            if refusal is not None and refusal.code != "too_long":     # lengths: the models say
                self._report(loc, f"{_short(value)} cannot be written to the directory's {attribute} "
                                  f"({refusal.code.replace('_', ' ')})")

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
                if role.get("review") is True and role.get("validity_months") is not None:
                    self._report((*rloc, "review"), "a reviewed role is renewed by its access review "
                                 "campaigns, not by a validity: remove validity_months or review")
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
        elif isinstance(version, str) and not syntax.TERMS_VERSION.match(version):
            self._report(("policy", "terms_version"),
                         f"{version!r} is not valid: use letters, digits and . _ : / + - (spaces inside), "
                         "starting with a letter or digit")

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
