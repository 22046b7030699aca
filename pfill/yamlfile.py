"""YAML loading that remembers where each value came from, so errors can name file and line.

Every source file the kit reads (pfill.yaml, query metadata, dashboard specs, query templates) goes
through `read_source`: a regular file of at most MAX_BYTES, strict UTF-8. `load_located` then parses
it with bounds, so that no input can hang or exhaust a command: at most MAX_DEPTH levels of nesting
and MAX_NODES values once aliases are expanded (a "billion laughs" file stops at its first alias
over the limit), no key twice in one mapping, and a mapping at the top. Each refusal is a
ConfigError naming the file and, where there is one, the line.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

KeyPath = tuple[Any, ...]

MAX_BYTES = 512 * 1024  # the largest packaged file is under 10 KB; parsing this much takes < 1 s
MAX_DEPTH = 64  # nesting levels, counted through aliases
MAX_NODES = 100_000  # values in a document once aliases are expanded


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


# -- reading --------------------------------------------------------------------------------------
def read_source(path: Path, *, max_bytes: int = MAX_BYTES) -> str:
    """The text of a source file: a regular file (a FIFO or device would block), at most `max_bytes`,
    valid UTF-8 (a leading BOM is dropped). Anything else is a ConfigError naming the file."""
    try:  # opened without blocking: a FIFO would wait for a writer before fstat could refuse it
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        with os.fdopen(os.open(path, flags), "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"{path}: not a regular file")
            data = handle.read(max_bytes + 1)
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        size = max(info.st_size, len(data))
        raise ConfigError(f"{path}: too large ({size:,} bytes; at most {max_bytes:,})")
    return decode_utf8(path, data)


def decode_utf8(path: Path | str, data: bytes) -> str:
    """`data` as UTF-8, or a ConfigError naming the file, line, first bad byte and its offset."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            hint="save the file as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


# -- bounded parsing ------------------------------------------------------------------------------
class _Refused(yaml.YAMLError):
    """A document the loader will not build: too deep, too big, a duplicate key, a bad value."""

    def __init__(self, mark: yaml.Mark | None, message: str) -> None:
        super().__init__(message)
        self.mark, self.message = mark, message


try:  # libyaml scans and parses (no recursion, 3x faster); the composer below stays in Python
    from yaml._yaml import CParser as _EventSource
except ImportError:  # pragma: no cover - PyYAML without libyaml
    class _EventSource(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


class _BoundedLoader(yaml.composer.Composer, _EventSource, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """A safe loader (events, then PyYAML's own composer, safe constructor and resolver) counting
    depth and expanded size while it composes (children are done before their parent, and an anchor
    before its aliases, so each node's totals are known when it is finished), and refusing duplicate
    keys while it constructs."""

    def __init__(self, stream: str) -> None:
        _EventSource.__init__(self, stream)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._depth = 0
        self._expanded = 0
        self._totals: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, expanded depth)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        alias = self.check_event(yaml.AliasEvent)
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(mark, f"nested deeper than {MAX_DEPTH} levels")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        totals = self._totals.get(id(node))
        if totals is None:
            if alias:
                raise _Refused(mark, "an alias inside its own anchor (a recursive structure)")
            totals = self._count(node)
            self._totals[id(node)] = totals
        size, depth = totals
        self._expanded += size if alias else 1  # the document so far, every alias at its full size
        if self._expanded > MAX_NODES:
            raise _Refused(mark, f"more than {MAX_NODES:,} values once aliases are expanded")
        if depth + self._depth > MAX_DEPTH:
            raise _Refused(mark, f"nested deeper than {MAX_DEPTH} levels (through aliases)")
        return node

    def _count(self, node: yaml.Node) -> tuple[int, int]:
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            return 1, 1
        totals = [self._totals.get(id(child), (1, 1)) for child in children]
        return 1 + sum(t[0] for t in totals), 1 + max((t[1] for t in totals), default=0)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. 2024-02-30, a 5000-digit integer
            reason = str(exc).split(";")[0]
            raise _Refused(node.start_mark, f"cannot read the value: {reason}") from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` then an explicit key is an override, not a duplicate
                key = self.construct_object(key_node, deep=True)
                try:
                    line = first.get(key)
                except TypeError:
                    continue  # unhashable: SafeConstructor says so with its own mark
                if line is not None:
                    raise _Refused(key_node.start_mark, f"duplicate key {key!r} (first at line {line})")
                first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


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


_KINDS = {dict: "a mapping", list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def load_located(path: Path, text: str | None = None, *, mapping: bool = True) -> LocatedYaml:
    """Load one YAML document (read with `read_source` unless `text` is given) within the bounds
    above. With `mapping` (the default), an empty document or any other top level is refused too.
    Every problem is a ConfigError naming the file and line."""
    text = read_source(path) if text is None else text
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{path}: too large ({len(text):,} characters; at most {MAX_BYTES:,})")
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        line = f":{exc.mark.line + 1}" if exc.mark else ""
        raise ConfigError(f"{path}{line}: {exc.message}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {exc.problem or exc.context or 'unreadable'}") from None
    except yaml.reader.ReaderError as exc:  # a control character: position, not line
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(f"{path}:{line}: invalid YAML: {exc.reason} (character #x{exc.character:04x})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    if mapping and node is None:
        raise ConfigError(f"{path}: the file is empty (expected a mapping of fields)")
    if mapping and not isinstance(data, dict):
        kind = _KINDS.get(type(data), type(data).__name__)
        raise ConfigError(f"{path}:{node.start_mark.line + 1}: expected a mapping of fields at the top, found {kind}")
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return LocatedYaml(path=path, data=data, lines=lines)
