"""Reading one YAML file safely, keeping the node tree so every value has its line.

A ``yaml.SafeLoader`` that reads dates as text and reports PyYAML's own crashes as errors,
PyYAML's errors as plain sentences, the step down the node tree that finds the line of a
location (``applications[3].roles[0]``), and the size check that refuses an alias bomb
before it is expanded.
"""

from __future__ import annotations

from typing import Any

import yaml

from syncd.mappings.problems import _short

# A file whose aliases expand to more values than this is refused (an "alias bomb").
MAX_EXPANDED_VALUES = 200_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


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
