"""The mappings syncd ships (``mappings/``), as an operator would edit them, for scenarios.

``shipped_mappings(folder, base_dn, policy={...}, attributes={...})`` copies ``mappings/`` into
``folder``, moves the directory under the test's own LDAP base, rewrites the given lines of the
``policy`` section (``domains.yaml``) and of ``directory.people.attributes`` (``directory.yaml``)
as YAML text, and loads the result with the same loader as ``syncd check-config`` and the daemon.
``use_mappings(rt, mappings)`` puts them in a runtime and provisions the directory.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from syncd.daemon import Daemon
from syncd.mappings import Mappings, load_mappings

SHIPPED = Path(__file__).resolve().parents[2] / "mappings"
SHIPPED_BASE = "dc=example,dc=org"


def _rewrite(path: Path, indent: str, key: str, value: str) -> None:
    text = path.read_text(encoding="utf-8")
    text, count = re.subn(rf"^({indent}{re.escape(key)}:)[ \t]+.*$", lambda m: f"{m.group(1)} {value}", text,
                          flags=re.M)
    assert count == 1, f"{path.name}: expected one '{key}:' line to edit, found {count}"
    path.write_text(text, encoding="utf-8")


def shipped_mappings(folder: Path, base_dn: str, *, policy: dict[str, str] | None = None,
                     attributes: dict[str, str] | None = None) -> Mappings:
    target = Path(folder) / "mappings"
    shutil.copytree(SHIPPED, target)
    directory = target / "directory.yaml"
    directory.write_text(directory.read_text(encoding="utf-8").replace(SHIPPED_BASE, base_dn), encoding="utf-8")
    for key, value in (policy or {}).items():
        _rewrite(target / "domains.yaml", "  ", key, value)
    for field, value in (attributes or {}).items():
        _rewrite(directory, " " * 6, field, value)
    return load_mappings(target)


def use_mappings(rt, mappings: Mappings) -> Daemon:
    """``rt`` with these mappings (before it first talks to LDAP), and a daemon that provisioned them."""
    assert rt._directory is None, "set the mappings before the runtime first uses the directory"
    rt.mappings = mappings
    daemon = Daemon(rt)
    daemon.run_job("provision")
    return daemon
