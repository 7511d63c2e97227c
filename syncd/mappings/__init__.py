"""The operator's YAML mappings: directory layout, applications and roles, organisations, domains.

The models are the validated, frozen form every other module uses. ``load_mappings`` reads
every ``*.yaml`` file of the mappings folder, merges their top-level sections and reports each
problem with its file, line and a plain sentence (see ``syncd check-config``).

- ``syncd.core.mappings``: the frozen models (``Mappings`` and its parts), in the core, which reads them;
- ``loader``: ``load_mappings``: read the folder, validate, cross-check, collect the problems;
- ``yaml_source``: the safe, line-keeping YAML loader and the alias-bomb check;
- ``checks``: what the models cannot check (account fields, branches, DNs, domains);
- ``problems``: each problem as ``<file>:<line>: <where>: <plain sentence>``.
"""

from syncd.mappings.checks import ACCOUNT_FIELDS, BRANCHES, REQUIRED_ATTRIBUTES, SECTIONS
from syncd.mappings.loader import load_mappings
from syncd.core.mappings import (
    Application,
    AttributeMapping,
    BranchLayout,
    DirectoryLayout,
    GroupLayout,
    Mappings,
    Organisation,
    Ownership,
    PeopleLayout,
    Policy,
    Role,
)
from syncd.mappings.yaml_source import MAX_EXPANDED_VALUES

__all__ = [
    "ACCOUNT_FIELDS",
    "BRANCHES",
    "MAX_EXPANDED_VALUES",
    "REQUIRED_ATTRIBUTES",
    "SECTIONS",
    "Application",
    "AttributeMapping",
    "BranchLayout",
    "DirectoryLayout",
    "GroupLayout",
    "Mappings",
    "Organisation",
    "Ownership",
    "PeopleLayout",
    "Policy",
    "Role",
    "load_mappings",
]
