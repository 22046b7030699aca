"""YAML loading that remembers where each value came from, so errors can name file and line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

KeyPath = tuple[Any, ...]


@dataclass
class LocatedYaml:
    """Parsed YAML plus the 1-based line of every mapping key and sequence item, by key path."""

    path: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def where(self, *keys: Any) -> str:
        """`file:line` for the deepest known prefix of the key path (the file alone if none)."""
        for cut in range(len(keys), 0, -1):
            line = self.lines.get(tuple(keys[:cut]))
            if line:
                return f"{self.path}:{line}"
        return str(self.path)


def check_keys(mapping: dict[Any, Any], allowed: set[str], doc: LocatedYaml, *path: Any) -> None:
    """Refuse a key of `mapping` (found at `path` in `doc`) that is not `allowed`, naming file and line.

    For YAML validated by hand (pfill.yaml, query metadata); dashboard specs use pydantic instead."""
    for key in mapping:
        if key not in allowed:
            raise ConfigError(
                f"{doc.where(*path, key)}: unknown field {key!r}; expected one of {', '.join(sorted(allowed))}"
            )


def _walk(node: yaml.Node, prefix: KeyPath, lines: dict[KeyPath, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, key_node.value)
            lines[key] = key_node.start_mark.line + 1
            _walk(value_node, key, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = (*prefix, index)
            lines[key] = item.start_mark.line + 1
            _walk(item, key, lines)


def load_located(path: Path, text: str | None = None) -> LocatedYaml:
    """Load one YAML document; a syntax error becomes a ConfigError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8") if text is None else text
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {exc.problem or exc}") from exc
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return LocatedYaml(path=path, data=data, lines=lines)
