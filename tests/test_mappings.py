"""Loading the operator's YAML mappings: the shipped samples, and every problem reported well.

Each problem must read ``<file>:<line>: <plain sentence>`` with the line the operator has to
fix; all problems come back together in one ``ConfigError``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.core.model import Management
from syncd.errors import ConfigError
from syncd.mappings import (
    ACCOUNT_FIELDS,
    BRANCHES,
    SECTIONS,
    Application,
    AttributeMapping,
    DirectoryLayout,
    GroupLayout,
    Mappings,
    Organisation,
    PeopleLayout,
    Policy,
    Role,
    load_mappings,
)

SAMPLES = Path(__file__).resolve().parent.parent / "mappings"
SAMPLE_FILES = sorted(p.name for p in SAMPLES.glob("*.yaml"))

# Every application and role the seed user guide names, with the labels users read.
SEED_APPLICATIONS = {
    "Accords locaux": ["Accords locaux - Accès organisme"],
    "Guides juridiques (Gap, Paie, Jurisprudence)": [
        "Egap - Guides d'administration du personnel",
        "EGAP_ Guide Paie Accès Lecteur",
    ],
    "Annuaire des organismes": ["Annuaire Organisme - Rédacteur"],
    "Grève": ["Grève - Déclaration des mouvements"],
    "Droit syndical": ["DROIT SYNDICAL - Organismes pour la remontée des informations"],
    "OPIM": ["OPIM - Organisme Local"],
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the samples in ``<tmp>/mappings``, the working folder being ``<tmp>``."""
    target = tmp_path / "mappings"
    shutil.copytree(SAMPLES, target)
    monkeypatch.chdir(tmp_path)
    return target


def edit(folder: Path, name: str, old: str, new: str) -> int:
    """Replace the one occurrence of ``old`` in a file; return the line ``new`` starts on."""
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not unique in {name}"
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new), encoding="utf-8")
    return line


def edit_line(folder: Path, name: str, containing: str, old: str, new: str) -> int:
    """Replace ``old`` by ``new`` on the one line holding ``containing``; return that line."""
    path = folder / name
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    found = [i for i, text in enumerate(lines) if containing in text]
    assert len(found) == 1, f"{containing!r} is not on one line of {name}"
    assert lines[found[0]].count(old) == 1
    lines[found[0]] = lines[found[0]].replace(old, new)
    path.write_text("".join(lines), encoding="utf-8")
    return found[0] + 1


def line_of(folder: Path, name: str, needle: str) -> int:
    text = (folder / name).read_text(encoding="utf-8")
    assert text.count(needle) == 1, f"{needle!r} is not unique in {name}"
    return text[: text.index(needle)].count("\n") + 1


def problems_of(folder: Path | str = "mappings") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_mappings(folder)
    assert caught.value.problems, "a ConfigError must list its problems"
    return caught.value.problems


def only_problem(folder: Path | str = "mappings") -> str:
    problems = problems_of(folder)
    assert len(problems) == 1, problems
    return problems[0]


# --- the shipped samples ---------------------------------------------------------------------


def test_the_shipped_samples_load_without_a_problem():
    mappings = load_mappings(SAMPLES)
    assert isinstance(mappings, Mappings)
    assert mappings.directory.base_dn == "dc=example,dc=org"
    assert mappings.policy == Policy(terms_version="2026-01",
                                     directors_referential=mappings.policy.directors_referential)


def test_the_samples_are_split_into_the_files_an_operator_expects():
    assert SAMPLE_FILES == ["applications.yaml", "directory.yaml", "domains.yaml", "organisations.yaml"]
    assert (SAMPLES / "README.md").is_file()


def test_the_samples_hold_every_application_and_role_of_the_seed_guide_with_its_exact_label():
    mappings = load_mappings(SAMPLES)
    labels = {app.label: [role.label for role in app.roles] for app in mappings.applications}
    for app_label, role_labels in SEED_APPLICATIONS.items():
        assert app_label in labels
        assert set(role_labels) <= set(labels[app_label]), app_label


def test_the_samples_show_each_role_setting_an_operator_may_need():
    mappings = load_mappings(SAMPLES)
    roles = [role for app in mappings.applications for role in app.roles]
    assert {mappings.management_of(r.key) for r in roles} == {Management.LOCAL, Management.CENTRAL}
    assert any(r.restriction == "internal_only" for r in roles)
    assert any(r.tacit_delay_days not in (None, mappings.policy.tacit_delay_days) for r in roles)
    assert any(r.validity_months == 12 for r in roles)
    assert all(r.group.isascii() and r.group == r.group.lower() for r in roles)


def test_the_samples_leave_directors_identity_to_the_directors_referential():
    attributes = load_mappings(SAMPLES).directory.people.attributes
    assert set(attributes) == set(ACCOUNT_FIELDS)
    directors_own = {name for name, m in attributes.items() if m.external_for_directors}
    assert directors_own == {"given_name", "family_name", "birth_name", "phone", "primary_organisation"}
    assert all(m.owner == "syncd" for m in attributes.values())


def test_the_sample_organisations_and_domains_are_realistic():
    mappings = load_mappings(SAMPLES)
    assert 10 <= len(mappings.organisations) <= 15
    assert mappings.organisation("CARSAT-RA").name == "CARSAT Rhône-Alpes"
    assert mappings.organisation("UCANSS") is not None
    assert {o.branch for o in mappings.organisations} <= set(BRANCHES)
    # The guide's own examples of professional addresses are internal.
    assert {"urssaf.fr", "assurance-maladie.fr", "lassuranceretraite.fr"} <= set(mappings.internal_email_domains)


def test_the_readme_describes_every_key_of_the_models():
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    models = (Mappings, DirectoryLayout, PeopleLayout, GroupLayout, AttributeMapping,
              Application, Role, Organisation, Policy)
    for model in models:
        for name in model.model_fields:
            assert f"`{name}`" in readme, f"{model.__name__}.{name} is not described"
    for branch in BRANCHES:
        assert f"`{branch}`" in readme


def test_problems_name_the_file_relative_to_the_working_folder(folder: Path):
    line = edit(folder, "applications.yaml", "        group: app-opim-organisme-local\n",
                "        group: app-opim-organisme-local\n        tacit_dealy_days: 4\n")
    # The folder is passed absolute, as ``Settings.resolve`` does: shown relative to the cwd.
    assert only_problem(folder.resolve()) == (
        f"mappings/applications.yaml:{line + 1}: applications[5].roles[0]: "
        "unknown key 'tacit_dealy_days' (did you mean 'tacit_delay_days'?)"
    )


# --- problems in the structure, one kind per test --------------------------------------------


def test_a_typo_in_a_role_key_is_reported_with_file_and_line(folder: Path):
    line = edit(folder, "applications.yaml", "        validity_months: 12 ",
                "        validty_months: 12 ")
    assert only_problem() == (
        f"mappings/applications.yaml:{line}: applications[2].roles[0]: "
        "unknown key 'validty_months' (did you mean 'validity_months'?)"
    )


def test_an_unknown_key_with_nothing_close_gets_no_suggestion(folder: Path):
    line = edit(folder, "domains.yaml", "  calendar: calendar_days\n",
                "  calendar: calendar_days\n  colour: blue\n")
    assert only_problem() == f"mappings/domains.yaml:{line + 1}: policy: unknown key 'colour'"


def test_a_missing_required_key_is_reported_on_the_line_of_its_parent(folder: Path):
    edit(folder, "applications.yaml", "        group: app-opim-organisme-local\n", "")
    line = line_of(folder, "applications.yaml", "- key: opim-organisme-local")
    assert only_problem() == (
        f"mappings/applications.yaml:{line}: applications[5].roles[0]: missing required key 'group'"
    )


def test_a_value_of_the_wrong_kind_is_reported_in_plain_words(folder: Path):
    line = edit(folder, "applications.yaml", "tacit_delay_days: 5 ", "tacit_delay_days: five ")
    assert only_problem() == (
        f"mappings/applications.yaml:{line}: applications[3].roles[0].tacit_delay_days: "
        "expected a whole number, found text 'five'"
    )


def test_a_number_where_text_is_expected_asks_for_quotes(folder: Path):
    line = edit(folder, "domains.yaml", 'terms_version: "2026-01"', "terms_version: 2026")
    assert only_problem() == (
        f"mappings/domains.yaml:{line}: policy.terms_version: expected text, found a number 2026; "
        "put it in quotes"
    )


def test_a_misspelt_choice_gets_a_suggestion(folder: Path):
    line = edit(folder, "applications.yaml", "    label: \"OPIM\"\n    management: local",
                "    label: \"OPIM\"\n    management: locale")
    assert only_problem() == (
        f"mappings/applications.yaml:{line + 1}: applications[5].management: 'locale' is not "
        "allowed (did you mean 'local'?); expected 'local' or 'central'"
    )


def test_a_value_out_of_range_is_reported(folder: Path):
    line = edit(folder, "applications.yaml", "validity_months: 12 ", "validity_months: 0 ")
    assert only_problem() == (
        f"mappings/applications.yaml:{line}: applications[2].roles[0].validity_months: "
        "0 is too small: it must be at least 1"
    )


def test_an_application_without_roles_is_reported(folder: Path):
    edit(folder, "applications.yaml",
         "    roles:\n      - key: opim-organisme-local\n        label: \"OPIM - Organisme Local\"\n"
         "        group: app-opim-organisme-local\n", "    roles: []\n")
    line = line_of(folder, "applications.yaml", "roles: []")
    assert only_problem() == (
        f"mappings/applications.yaml:{line}: applications[5].roles: must list at least 1 item"
    )


def test_a_key_that_breaks_the_key_rules_is_explained(folder: Path):
    line = edit(folder, "applications.yaml", "- key: opim\n", "- key: OPIM Local\n")
    assert only_problem() == (
        f"mappings/applications.yaml:{line}: applications[5].key: 'OPIM Local' is not valid: use "
        "lowercase letters, digits, '_', '.' and '-', starting with a letter or digit, at most 64 characters"
    )


# --- problems across files and in the YAML itself ---------------------------------------------


def test_an_unknown_section_is_reported_with_a_suggestion(folder: Path):
    edit(folder, "domains.yaml", "internal_email_domains:\n", "internal_email_domain:\n")
    line = line_of(folder, "domains.yaml", "internal_email_domain:")
    problems = problems_of()
    assert f"mappings/domains.yaml:{line}: unknown section 'internal_email_domain' (did you mean " \
           "'internal_email_domains'?); the sections are directory, applications, organisations, " \
           "internal_email_domains, policy" in problems
    # ... and the section it should have been is then missing.
    assert "mappings: no file defines the required section 'internal_email_domains'" in problems


def test_a_section_defined_in_two_files_is_reported(folder: Path):
    (folder / "zz-more.yaml").write_text("# more\npolicy:\n  tacit_delay_days: 12\n", encoding="utf-8")
    first = line_of(folder, "domains.yaml", "policy:")
    assert only_problem() == (
        f"mappings/zz-more.yaml:2: section 'policy' is already defined in "
        f"mappings/domains.yaml:{first}; a section lives in one file only"
    )


def test_files_are_read_in_name_order_and_yml_counts_too(folder: Path):
    (folder / "domains.yaml").rename(folder / "00-domains.yml")
    (folder / "zz.yml").write_text("policy: {}\n", encoding="utf-8")
    first = line_of(folder, "00-domains.yml", "policy:")
    assert only_problem() == (
        f"mappings/zz.yml:1: section 'policy' is already defined in mappings/00-domains.yml:{first}; "
        "a section lives in one file only"
    )


def test_a_missing_section_is_reported(folder: Path):
    (folder / "organisations.yaml").unlink()
    assert only_problem() == "mappings: no file defines the required section 'organisations'"


def test_the_policy_section_may_be_left_out_for_its_defaults(folder: Path):
    start = line_of(folder, "domains.yaml", "policy:")
    path = folder / "domains.yaml"
    path.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[: start - 1]) + "\n",
                    encoding="utf-8")
    assert load_mappings("mappings").policy == Policy()


def test_a_yaml_syntax_error_is_reported_with_its_line(folder: Path):
    line = edit_line(folder, "organisations.yaml", "CAF-69", "branch: famille }", "branch: famille ")
    problem = only_problem()
    assert problem.startswith(f"mappings/organisations.yaml:{line + 1}: not valid YAML: ")
    assert "flow mapping" in problem


def test_a_bad_indentation_is_reported_with_its_line(folder: Path):
    line = edit(folder, "directory.yaml", "    rdn_attribute: o\n", "      rdn_attribute: o\n")
    assert only_problem().startswith(f"mappings/directory.yaml:{line}: not valid YAML: ")


def test_a_file_that_is_not_a_mapping_is_reported(folder: Path):
    (folder / "extra.yaml").write_text("# a list by mistake\n- urssaf.fr\n- caf.fr\n", encoding="utf-8")
    assert only_problem() == (
        "mappings/extra.yaml:2: the file must be a mapping of sections (directory, applications, "
        "organisations, internal_email_domains, policy), not a list"
    )


def test_an_empty_or_comment_only_file_defines_nothing(folder: Path):
    (folder / "empty.yaml").write_text("", encoding="utf-8")
    (folder / "notes.yaml").write_text("# nothing here yet\n", encoding="utf-8")
    assert isinstance(load_mappings("mappings"), Mappings)


def test_editor_backups_and_other_files_are_ignored(folder: Path):
    (folder / ".#applications.yaml").write_text("{{{{", encoding="utf-8")
    (folder / "applications.yaml.orig").write_text("{{{{", encoding="utf-8")
    assert isinstance(load_mappings("mappings"), Mappings)


def test_a_duplicate_key_in_one_mapping_is_reported_though_yaml_keeps_the_last(folder: Path):
    first = line_of(folder, "domains.yaml", "  tacit_delay_days: 10")
    line = edit(folder, "domains.yaml", "  calendar: calendar_days\n",
                "  calendar: calendar_days\n  tacit_delay_days: 20\n")
    assert only_problem() == (
        f"mappings/domains.yaml:{line + 1}: policy: key 'tacit_delay_days' appears twice in this "
        f"mapping (first at line {first}); YAML would silently keep only the last one"
    )


def test_a_duplicate_section_in_one_file_is_reported(folder: Path):
    (folder / "domains.yaml").write_text(
        (folder / "domains.yaml").read_text(encoding="utf-8") + "policy:\n  terms_version: '2'\n",
        encoding="utf-8")
    first = line_of(folder, "domains.yaml", "policy:\n  #")
    last = line_of(folder, "domains.yaml", "policy:\n  terms")
    assert only_problem() == (
        f"mappings/domains.yaml:{last}: key 'policy' appears twice in this mapping (first at line "
        f"{first}); YAML would silently keep only the last one"
    )


def test_anchors_aliases_and_merge_keys_are_allowed(folder: Path):
    edit(folder, "organisations.yaml", "  - { code: CPAM-75,    name: \"CPAM de Paris\",",
         "  - &cpam { code: CPAM-75,    name: \"CPAM de Paris\",")
    edit(folder, "organisations.yaml", "  - { code: CPAM-69,    name: \"CPAM du Rhône\",                                             branch: maladie }",
         "  - { <<: *cpam, code: CPAM-69, name: \"CPAM du Rhône\" }")
    mappings = load_mappings("mappings")
    assert mappings.organisation("CPAM-69").branch == "maladie"


def test_a_problem_inside_a_merged_mapping_points_at_the_overriding_key(folder: Path):
    edit(folder, "organisations.yaml", "  - { code: CPAM-75,    name: \"CPAM de Paris\",",
         "  - &cpam { code: CPAM-75,    name: \"CPAM de Paris\",")
    line = edit(folder, "organisations.yaml",
                "  - { code: CPAM-69,    name: \"CPAM du Rhône\",                                             branch: maladie }",
                "  - { <<: *cpam, code: CPAM-69, name: \"CPAM du Rhône\", branch: santé }")
    assert only_problem() == (
        f"mappings/organisations.yaml:{line}: organisations[3].branch: unknown branch 'santé'; the "
        "branches are maladie, at-mp, retraite, famille, recouvrement, autonomie, inter-branches"
    )


def test_an_alias_loop_is_reported(folder: Path):
    (folder / "loop.yaml").write_text("x: &a\n  - *a\n", encoding="utf-8")
    problems = problems_of()
    assert problems[0].startswith("mappings/loop.yaml:1: this value contains an alias to itself")


def test_an_alias_bomb_is_refused_before_it_is_expanded(folder: Path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    (folder / "bomb.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    problem = only_problem()
    assert problem.startswith("mappings/bomb.yaml:1: the file's aliases expand to more than")


def test_unsafe_python_tags_are_refused(folder: Path, tmp_path: Path):
    marker = tmp_path / "pwned"
    (folder / "evil.yaml").write_text(
        f"policy: !!python/object/apply:os.system ['touch {marker}']\n", encoding="utf-8")
    problems = problems_of()
    assert problems[0].startswith("mappings/evil.yaml:1: not valid YAML: could not determine a constructor")
    assert not marker.exists()


def test_dates_are_read_as_text(folder: Path):
    edit(folder, "domains.yaml", 'terms_version: "2026-01"', "terms_version: 2026-01-15")
    assert load_mappings("mappings").policy.terms_version == "2026-01-15"


def test_a_value_pyyaml_itself_cannot_build_is_reported_not_raised(folder: Path):
    line = edit(folder, "domains.yaml", "  tacit_delay_days: 10\n", "  tacit_delay_days: 0x_\n")
    problem = only_problem()
    assert problem.startswith(f"mappings/domains.yaml:{line}: not valid YAML: cannot read the value '0x_' as int")


def test_a_file_that_is_not_utf8_is_reported(folder: Path):
    (folder / "latin1.yaml").write_bytes("# organismes\npolicy:\n  terms_version: 'été'\n".encode("latin-1"))
    assert only_problem() == "mappings/latin1.yaml:3: the file is not UTF-8 text"


def test_a_missing_or_empty_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert only_problem("nowhere") == "nowhere: the mappings folder does not exist"
    (tmp_path / "empty").mkdir()
    assert only_problem("empty") == "empty: the mappings folder holds no *.yaml or *.yml file"


# --- the cross-checks ---------------------------------------------------------------------


def test_duplicate_application_keys_are_reported(folder: Path):
    first = line_of(folder, "applications.yaml", "- key: greve\n")
    line = edit(folder, "applications.yaml", "- key: opim\n", "- key: greve\n")
    assert only_problem() == (
        f"mappings/applications.yaml:{line}: applications[5].key: duplicate application key 'greve': "
        f"applications[3].key (line {first}) already uses it"
    )


def test_a_role_key_used_in_two_applications_is_reported(folder: Path):
    first = line_of(folder, "applications.yaml", "- key: greve-declaration-mouvements")
    line = edit(folder, "applications.yaml", "- key: opim-organisme-local", "- key: greve-declaration-mouvements\n")
    assert only_problem() == (
        f"mappings/applications.yaml:{line}: applications[5].roles[0].key: duplicate role key "
        f"'greve-declaration-mouvements': applications[3].roles[0].key (line {first}) already uses it"
    )


def test_two_roles_on_one_ldap_group_are_reported_ignoring_case(folder: Path):
    first = line_of(folder, "applications.yaml", "group: app-egap-guides-administration")
    line = edit(folder, "applications.yaml", "group: app-egap-guide-paie-lecteur",
                "group: App-EGAP-Guides-Administration")
    assert only_problem() == (
        f"mappings/applications.yaml:{line}: applications[1].roles[1].group: duplicate LDAP group "
        f"'App-EGAP-Guides-Administration': applications[1].roles[0].group (line {first}) already "
        "uses it; each role needs its own group (names are compared ignoring case, as LDAP does)"
    )


def test_duplicate_organisation_codes_are_reported_ignoring_case(folder: Path):
    first = line_of(folder, "organisations.yaml", "code: CPAM-75,")
    line = edit(folder, "organisations.yaml", "code: CPAM-69,", "code: cpam-75,")
    assert only_problem() == (
        f"mappings/organisations.yaml:{line}: organisations[3].code: duplicate organisation code "
        f"'cpam-75': organisations[2].code (line {first}) already uses it (codes are compared "
        "ignoring case, as LDAP does)"
    )


def test_an_unknown_organisation_branch_is_reported_with_a_suggestion(folder: Path):
    line = edit_line(folder, "organisations.yaml", "CAF-69", "branch: famille }", "branch: familles }")
    assert only_problem() == (
        f"mappings/organisations.yaml:{line}: organisations[8].branch: unknown branch 'familles' "
        "(did you mean 'famille'?); the branches are maladie, at-mp, retraite, famille, "
        "recouvrement, autonomie, inter-branches"
    )


def test_duplicate_domains_are_reported_ignoring_case(folder: Path):
    first = line_of(folder, "domains.yaml", "  - urssaf.fr")
    line = edit(folder, "domains.yaml", "  - caf.fr\n", "  - caf.fr\n  - URSSAF.fr\n")
    assert only_problem() == (
        f"mappings/domains.yaml:{line + 1}: internal_email_domains[4]: duplicate domain 'URSSAF.fr': "
        f"internal_email_domains[0] (line {first}) already uses it (domains are compared ignoring case)"
    )


@pytest.mark.parametrize(("domain", "reason"), [
    ("'@msa.fr'", "write the domain 'msa.fr' without the '@'"),
    ("'*.urssaf.fr'", "'*.urssaf.fr': wildcards are not supported; a domain already covers its "
                      "subdomains (urssaf.fr covers idf.urssaf.fr)"),
    ("urssaf", "'urssaf' is not a domain name such as 'urssaf.fr'"),
    ("urssaf..fr", "'urssaf..fr' is not a domain name such as 'urssaf.fr'"),
    ("-urssaf.fr", "'-urssaf.fr' is not a domain name such as 'urssaf.fr'"),
    ("urssaf.fr.", "'urssaf.fr.' is not a domain name such as 'urssaf.fr'"),
    ("'urs saf.fr'", "'urs saf.fr' is not a domain name such as 'urssaf.fr'"),
    ("urssaf.123", "'urssaf.123' is not a domain name such as 'urssaf.fr'"),
])
def test_a_domain_that_is_not_a_domain_name_is_reported(folder: Path, domain: str, reason: str):
    line = edit(folder, "domains.yaml", "  - caf.fr\n", f"  - {domain}\n")
    assert only_problem() == f"mappings/domains.yaml:{line}: internal_email_domains[3]: {reason}"


def test_an_internationalised_domain_in_its_ascii_form_is_accepted(folder: Path):
    edit(folder, "domains.yaml", "  - caf.fr\n", "  - caf.fr\n  - xn--scurit-sociale-gnbc.fr\n")
    assert "xn--scurit-sociale-gnbc.fr" in load_mappings("mappings").internal_email_domains


@pytest.mark.parametrize(("old", "new", "where", "kind"), [
    ('base_dn: "dc=example,dc=org"', 'base_dn: "dc=example;dc=org"', "directory.base_dn",
     "a DN such as 'dc=example,dc=org'"),
    ('base_dn: "dc=example,dc=org"', 'base_dn: "example.org"', "directory.base_dn",
     "a DN such as 'dc=example,dc=org'"),
    ('branch: "ou=people"', 'branch: "people"', "directory.people.branch",
     "a relative DN such as 'ou=people'"),
    ('branch: "ou=groups"', 'branch: ""', "directory.groups.branch",
     "a relative DN such as 'ou=people'"),
    ('placeholder_member: "cn=syncd-placeholder,ou=groups,dc=example,dc=org"',
     'placeholder_member: "cn=syncd-placeholder,,dc=org"', "directory.groups.placeholder_member",
     "a DN such as 'dc=example,dc=org'"),
])
def test_an_invalid_dn_is_reported(folder: Path, old: str, new: str, where: str, kind: str):
    line = edit(folder, "directory.yaml", old, new)
    problem = only_problem()
    value = new.split(": ", 1)[1].strip('"')
    assert problem.startswith(f"mappings/directory.yaml:{line}: {where}: {value!r} is not a valid DN (")
    assert problem.endswith(f"); write {kind}")


def test_two_directory_branches_in_the_same_place_are_reported(folder: Path):
    line = edit(folder, "directory.yaml", 'branch: "ou=groups"', 'branch: "OU=People"')
    assert only_problem() == (
        f"mappings/directory.yaml:{line}: directory.groups.branch: 'OU=People' is already the "
        "branch of directory.people; people, organisations and groups need a branch each"
    )


def test_a_field_that_is_not_an_account_field_is_reported_with_a_suggestion(folder: Path):
    line = edit(folder, "directory.yaml", "      contact_email:  ", "      contact_mail:   ")
    assert only_problem() == (
        f"mappings/directory.yaml:{line}: directory.people.attributes: 'contact_mail' is not an "
        "account field (did you mean 'contact_email'?); the account fields are "
        + ", ".join(ACCOUNT_FIELDS)
    )


@pytest.mark.parametrize("field", ["given_name", "family_name", "email"])
def test_a_missing_required_attribute_mapping_is_reported(folder: Path, field: str):
    path = folder / "directory.yaml"
    kept = [ln for ln in path.read_text(encoding="utf-8").splitlines(keepends=True)
            if not ln.startswith(f"      {field}: ")]
    path.write_text("".join(kept), encoding="utf-8")
    line = line_of(folder, "directory.yaml", "    attributes:")
    assert only_problem() == (
        f"mappings/directory.yaml:{line}: directory.people.attributes: missing the mapping of "
        f"required account field '{field}'"
    )


def test_one_ldap_attribute_for_two_account_fields_is_reported(folder: Path):
    line = edit(folder, "directory.yaml", "{ ldap: syncdContactMail }", "{ ldap: Mail }")
    assert only_problem() == (
        f"mappings/directory.yaml:{line}: directory.people.attributes.contact_email.ldap: LDAP "
        "attribute 'Mail' is already mapped to 'email'; map each account field to its own attribute"
    )


@pytest.mark.parametrize("name", ["syncd_RoleGroup", "2group", "group Of Names", "-x"])
def test_an_invalid_object_class_name_is_reported(folder: Path, name: str):
    line = edit(folder, "directory.yaml", "[groupOfNames, syncdRoleGroup]", f"[groupOfNames, '{name}']")
    assert only_problem() == (
        f"mappings/directory.yaml:{line}: directory.groups.object_classes[1]: {name!r} is not a "
        "valid object class name: a letter followed by letters, digits or '-' (or a numeric OID)"
    )


def test_an_object_class_given_by_oid_is_accepted(folder: Path):
    edit(folder, "directory.yaml", "[groupOfNames, syncdRoleGroup]", "[groupOfNames, 1.3.6.1.4.1.99999.2.1]")
    assert "1.3.6.1.4.1.99999.2.1" in load_mappings("mappings").directory.groups.object_classes


def test_an_invalid_rdn_attribute_is_reported(folder: Path):
    line = edit(folder, "directory.yaml", "rdn_attribute: uid", "rdn_attribute: u_id")
    assert only_problem() == (
        f"mappings/directory.yaml:{line}: directory.people.rdn_attribute: 'u_id' is not a valid "
        "LDAP attribute name: a letter followed by letters, digits or '-' (or a numeric OID)"
    )


def test_reminder_days_out_of_range_are_reported(folder: Path):
    line = edit(folder, "domains.yaml", "reminder_days_before: [3, 1]", "reminder_days_before: [3, 0]")
    assert only_problem() == (
        f"mappings/domains.yaml:{line}: policy.reminder_days_before[1]: 0 is out of range: a "
        "reminder is sent 1 to 365 days before the tacit deadline"
    )


def test_a_terms_version_longer_than_the_database_column_is_reported(folder: Path):
    line = edit(folder, "domains.yaml", 'terms_version: "2026-01"', 'terms_version: "2026-01-final-version-b"')
    assert only_problem() == (
        f"mappings/domains.yaml:{line}: policy.terms_version: must be 1 to 20 characters long"
    )


# --- everything at once -------------------------------------------------------------------


def test_several_problems_are_all_reported_at_once_in_file_and_line_order(folder: Path):
    typo = edit(folder, "applications.yaml", "validity_months: 12 ", "validty_months: 12 ")
    app = edit(folder, "applications.yaml", "- key: opim\n", "- key: greve\n")
    dn = edit(folder, "directory.yaml", 'base_dn: "dc=example,dc=org"', 'base_dn: "dc=example;dc=org"')
    branch = edit_line(folder, "organisations.yaml", "CAF-69", "branch: famille }", "branch: familles }")
    domain = edit(folder, "domains.yaml", "  - caf.fr\n", "  - '@caf.fr'\n")
    (folder / "zz-broken.yaml").write_text("policy: [\n", encoding="utf-8")
    problems = problems_of()
    located = [re.match(r"^mappings/([^:]+):(\d+): ", p).groups() for p in problems]
    assert located == [
        ("applications.yaml", str(typo)),
        ("applications.yaml", str(app)),
        ("directory.yaml", str(dn)),
        ("domains.yaml", str(domain)),
        ("organisations.yaml", str(branch)),
        ("zz-broken.yaml", "2"),
    ]


def test_a_section_refused_by_the_models_is_still_cross_checked(folder: Path):
    # A role with a wrong type AND a duplicate group elsewhere: both problems come back.
    edit(folder, "applications.yaml", "tacit_delay_days: 5 ", "tacit_delay_days: five ")
    edit(folder, "applications.yaml", "group: app-opim-organisme-local", "group: app-greve-declaration-mouvements")
    problems = problems_of()
    assert len(problems) == 2
    assert "expected a whole number" in problems[0]
    assert "duplicate LDAP group 'app-greve-declaration-mouvements'" in problems[1]


# --- hypothesis: nothing but ConfigError, ever ------------------------------------------------

_PROBLEM = re.compile(r"^(?P<file>.+?\.ya?ml)(?::(?P<line>\d+))?: \S")

_scalars = (st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False)
            | st.text(max_size=12) | st.sampled_from(["local", "central", "ou=x", "dc=a,dc=b", "caf.fr",
                                                     "internal_only", "maladie", "uid", "x"]))
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=10,
)
_known_names = frozenset(
    [*SECTIONS, *ACCOUNT_FIELDS]
    + [name for model in (Mappings, DirectoryLayout, PeopleLayout, GroupLayout, AttributeMapping,
                          Application, Role, Organisation, Policy)
       for name in model.model_fields]
)
_unknown_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_ABCXYZ", min_size=1, max_size=16).filter(
    lambda k: k not in _known_names and k != "<<"
)


def _sample_data() -> dict[str, Any]:
    return {name: yaml.safe_load((SAMPLES / name).read_text(encoding="utf-8")) for name in SAMPLE_FILES}


def _paths(value: Any, here: tuple = ()) -> list[tuple]:
    found = [here]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*here, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*here, i))
    return found


def _get(value: Any, path: tuple) -> Any:
    for part in path:
        value = value[part]
    return value


def _load_files(files: dict[str, str | bytes]) -> tuple[Mappings | None, list[str]]:
    """Load a folder holding ``files``; check every problem is well formed."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, content in files.items():
            data = content if isinstance(content, bytes) else content.encode("utf-8")
            (root / name).write_bytes(data)
        try:
            return load_mappings(root), []
        except ConfigError as exc:
            problems = exc.problems
            assert problems
            prefix = root.as_posix()
            for problem in problems:
                assert problem.startswith(prefix + ": ") or problem.startswith(prefix + "/"), problem
                match = _PROBLEM.match(problem[len(prefix) + 1:])
                if problem.startswith(prefix + "/"):
                    assert match, problem
                    name, line = match["file"], match["line"]
                    if line is not None and isinstance(files.get(name), str):
                        # Lines as YAML counts them (it also breaks lines on \r, NEL, U+2028/9).
                        breaks = len(re.findall("\r\n|[\r\n\x85\u2028\u2029]", files[name]))
                        assert 1 <= int(line) <= breaks + 2, problem
            return None, problems


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


_fuzz = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_fuzz
@given(st.sampled_from(SAMPLE_FILES), st.text(max_size=300))
def test_arbitrary_text_in_a_file_gives_a_config_error_never_a_crash(name: str, text: str):
    files: dict[str, str | bytes] = {n: (SAMPLES / n).read_text(encoding="utf-8") for n in SAMPLE_FILES}
    files[name] = text
    mappings, problems = _load_files(files)
    assert mappings is not None or problems


@_fuzz
@given(st.sampled_from(SAMPLE_FILES), st.data())
def test_text_spliced_into_a_sample_gives_a_config_error_never_a_crash(name: str, data: st.DataObject):
    files: dict[str, str | bytes] = {n: (SAMPLES / n).read_text(encoding="utf-8") for n in SAMPLE_FILES}
    original = files[name]
    at = data.draw(st.integers(0, len(original)))
    cut = data.draw(st.integers(0, 40))
    insert = data.draw(st.text(alphabet=st.sampled_from(list(":-[]{}&*!|>'\"#,? \n\tax1é")), max_size=12))
    files[name] = original[:at] + insert + original[at + cut:]
    _load_files(files)


@_fuzz
@given(st.dictionaries(st.text(max_size=25) | st.sampled_from(SECTIONS), _values, max_size=4))
def test_arbitrary_yaml_documents_give_a_config_error_never_a_crash(document: dict[str, Any]):
    mappings, problems = _load_files({"only.yaml": _dump(document)})
    assert mappings is None and problems   # required sections are always missing or wrong


@_fuzz
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_a_config_error_never_a_crash(raw: bytes):
    _load_files({"raw.yaml": raw})


@_fuzz
@given(st.data())
def test_an_unknown_key_added_anywhere_in_the_sample_is_always_reported(data: st.DataObject):
    samples = _sample_data()
    name = data.draw(st.sampled_from(SAMPLE_FILES))
    mappings_in_file = [p for p in _paths(samples[name]) if isinstance(_get(samples[name], p), dict)]
    path = data.draw(st.sampled_from(mappings_in_file))
    key = data.draw(_unknown_keys)
    _get(samples[name], path)[key] = data.draw(_values)
    mappings, problems = _load_files({n: _dump(v) for n, v in samples.items()})
    assert mappings is None, f"unknown key {key!r} at {path} was accepted"
    assert any(repr(key) in p for p in problems), problems


@_fuzz
@given(st.data())
def test_mutations_of_the_sample_give_mappings_or_a_config_error_never_a_crash(data: st.DataObject):
    samples = _sample_data()
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(st.sampled_from(SAMPLE_FILES))
        path = data.draw(st.sampled_from(_paths(samples[name])))
        if not path:
            samples[name] = data.draw(_values)
            continue
        parent, last = _get(samples[name], path[:-1]), path[-1]
        action = data.draw(st.sampled_from(["replace", "delete", "duplicate"]))
        if action == "replace":
            parent[last] = data.draw(_values)
        elif action == "delete":
            del parent[last]
        elif isinstance(parent, list):
            parent.insert(last, parent[last])
        else:
            parent[data.draw(_unknown_keys)] = parent[last]
    mappings, problems = _load_files({n: _dump(v) for n, v in samples.items()})
    if mappings is not None:
        # Whatever was accepted still satisfies the cross-checks.
        assert len({r.key for a in mappings.applications for r in a.roles}) == \
            sum(len(a.roles) for a in mappings.applications)
        assert {o.branch for o in mappings.organisations} <= set(BRANCHES)


# --- more wording and edge cases ----------------------------------------------------------


def test_a_control_character_is_reported_with_its_line(folder: Path):
    line = edit(folder, "domains.yaml", "  - caf.fr\n", "  - caf.fr\x07\n")
    assert only_problem() == (
        f"mappings/domains.yaml:{line}: not valid YAML: the control character U+0007 is not allowed"
    )


def test_a_key_that_is_not_text_is_reported(folder: Path):
    line = edit(folder, "domains.yaml", "  calendar: calendar_days\n", "  calendar: calendar_days\n  3: x\n")
    assert only_problem() == f"mappings/domains.yaml:{line + 1}: policy: key 3 must be text, not a number"


def test_an_empty_attribute_mapping_is_reported_in_plain_words(folder: Path):
    line = edit(folder, "directory.yaml", "{ ldap: syncdContactMail }", "")
    assert only_problem() == (
        f"mappings/directory.yaml:{line}: directory.people.attributes.contact_email: expected a "
        "mapping (key: value lines), found an empty value"
    )


def test_dns_with_spaces_after_commas_are_accepted(folder: Path):
    edit(folder, "directory.yaml", 'base_dn: "dc=example,dc=org"', 'base_dn: "dc=example, dc=org"')
    assert load_mappings("mappings").directory.base_dn == "dc=example, dc=org"


def test_a_file_that_cannot_be_read_is_reported(folder: Path):
    (folder / "gone.yaml").symlink_to(folder / "nowhere.yaml")
    assert only_problem() == "mappings/gone.yaml: cannot read the file: No such file or directory"


# --- the mapped attributes against the syntax profile of directory.kind ------------------------


@pytest.mark.parametrize("kind", ["openldap", "389ds"])
def test_the_shipped_mappings_write_only_attributes_the_profile_of_each_kind_knows(folder: Path, kind: str):
    edit(folder, "directory.yaml", "kind: openldap", f"kind: {kind}")
    assert load_mappings(folder).directory.kind.value == kind


def test_a_mapped_attribute_the_profile_does_not_know_is_reported_with_its_line(folder: Path):
    line = edit_line(folder, "directory.yaml", "phone:", "telephoneNumber", "telephonNumber")
    problem = only_problem()
    assert problem.startswith(f"mappings/directory.yaml:{line}: directory.people.attributes.phone.ldap: "
                              "'telephonNumber' is not an attribute syncd knows for directory.kind openldap")
    assert "telephoneNumber" in problem


def test_a_field_mapped_to_an_attribute_whose_syntax_cannot_hold_it_is_reported(folder: Path):
    line = edit_line(folder, "directory.yaml", "phone:", "telephoneNumber", "syncdInternal")
    edit_line(folder, "directory.yaml", "internal:", "syncdInternal", "syncdDirector")
    edit_line(folder, "directory.yaml", "  director:", "syncdDirector", "mobile")
    problems = problems_of()
    assert f"mappings/directory.yaml:{line}: directory.people.attributes.phone.ldap: 'syncdInternal' has the " \
           "syntax Boolean, which cannot hold the values of 'phone'; use an attribute of syntax DirectoryString " \
           "or PrintableString or TelephoneNumber" in problems
    assert any("attributes.director.ldap: 'mobile' has the syntax TelephoneNumber" in p for p in problems)


# --- Active Directory ---------------------------------------------------------------------------

AD_DIRECTORY = Path(__file__).resolve().parent.parent / "deploy" / "activedirectory" / "directory.yaml"


def test_the_active_directory_layout_of_deploy_passes_check_config(folder: Path):
    shutil.copy(AD_DIRECTORY, folder / "directory.yaml")
    directory = load_mappings(folder).directory
    assert directory.kind.value == "active_directory"
    assert directory.people.object_classes == ("user",)


def test_on_active_directory_people_named_by_uid_are_reported_with_their_line(folder: Path):
    shutil.copy(AD_DIRECTORY, folder / "directory.yaml")
    line = edit(folder, "directory.yaml", "rdn_attribute: cn                   # AD names users by cn",
                "rdn_attribute: uid")
    assert only_problem() == (f"mappings/directory.yaml:{line}: directory.people.rdn_attribute: "
                              "directory.kind active_directory names these entries by cn, not 'uid'")


def test_on_active_directory_a_group_without_the_group_class_is_reported(folder: Path):
    shutil.copy(AD_DIRECTORY, folder / "directory.yaml")
    line = edit(folder, "directory.yaml", "object_classes: [group]", "object_classes: [groupOfNames]")
    assert only_problem() == (f"mappings/directory.yaml:{line}: directory.groups.object_classes: "
                              "directory.kind active_directory needs the object class 'group' here")


def test_on_active_directory_a_syncd_schema_attribute_is_unknown(folder: Path):
    shutil.copy(AD_DIRECTORY, folder / "directory.yaml")
    line = edit_line(folder, "directory.yaml", "civility:", "personalTitle", "syncdCivility")
    assert only_problem().startswith(f"mappings/directory.yaml:{line}: directory.people.attributes.civility.ldap: "
                                     "'syncdCivility' is not an attribute syncd knows for directory.kind "
                                     "active_directory")



def test_the_389ds_lock_attribute_is_known_on_389ds_only(folder: Path):
    edit_line(folder, "directory.yaml", "disabled_attribute:", "syncdAccountStatus", "nsAccountLock")
    assert "directory.people.disabled_attribute: 'nsAccountLock' is not an attribute syncd knows for " \
           "directory.kind openldap" in only_problem()
    edit(folder, "directory.yaml", "kind: openldap", "kind: 389ds")
    assert load_mappings(folder).directory.people.disabled_attribute == "nsAccountLock"


def test_a_terms_version_with_filter_characters_is_reported(folder: Path):
    line = edit(folder, "domains.yaml", 'terms_version: "2026-01"', 'terms_version: "2026*)"')
    assert only_problem() == (f"mappings/domains.yaml:{line}: policy.terms_version: '2026*)' is not valid: use "
                              "letters, digits and . _ : / + - (spaces inside), starting with a letter or digit")


def test_an_organisation_name_with_a_control_character_is_reported_before_it_reaches_ldap(folder: Path):
    line = edit(folder, "organisations.yaml", 'name: "CPAM de Paris"', 'name: "CPAM\\u0007 de Paris"')
    assert only_problem() == (f"mappings/organisations.yaml:{line}: organisations[2].name: 'CPAM\\x07 de Paris' "
                              "cannot be written to the directory's description (control character)")


def test_a_directors_referential_page_that_is_not_a_web_address_is_reported_with_its_line(folder: Path):
    line = edit_line(folder, "domains.yaml", "profile_url:", "http://", "javascript:")
    problem = only_problem()
    assert problem.startswith(f"mappings/domains.yaml:{line}: policy.directors_referential.profile_url: ")


def test_the_sample_names_the_directors_referential_its_page_and_its_contact():
    ref = load_mappings(SAMPLES).policy.directors_referential
    assert (ref.name, ref.contact) == ("Référentiel des Agents de Direction", "labdd@ucanss.fr")
    assert ref.profile_url == "http://ucanss.fr/portail/auth/portal/default/Pcarriere"


# --- access reviews (review: true) -----------------------------------------------------------


def test_a_role_marked_for_review_is_listed_among_the_reviewed_roles(folder: Path):
    edit(folder, "applications.yaml", "        group: app-opim-organisme-local\n",
         "        group: app-opim-organisme-local\n        review: true\n")
    assert load_mappings("mappings").reviewed_roles() == ("opim-organisme-local",)


def test_a_reviewed_role_with_a_validity_is_refused_on_the_review_line(folder: Path):
    line = edit(folder, "applications.yaml", "        validity_months: 12 ",
                "        review: true\n        validity_months: 12 ")
    assert only_problem() == (
        f"mappings/applications.yaml:{line}: applications[2].roles[0].review: a reviewed role is renewed by "
        "its access review campaigns, not by a validity: remove validity_months or review")


def test_review_must_be_true_or_false(folder: Path):
    edit(folder, "applications.yaml", "        group: app-opim-organisme-local\n",
         "        group: app-opim-organisme-local\n        review: often\n")
    assert "applications[5].roles[0].review" in only_problem()
