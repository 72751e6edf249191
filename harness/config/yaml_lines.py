"""Safe YAML loading that remembers the line of every key, so errors read ``FILE:LINE: message``.

Built on ``yaml.SafeLoader`` (a ``!!python/...`` tag is a ConstructorError, never executed). Mappings
become ``LineDict``: a dict that also knows its own line and each key's line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError


class LineDict(dict):
    """A dict with ``line`` (1-based, where the mapping starts) and ``key_lines`` (key -> 1-based line)."""

    line: int = 0
    key_lines: dict[str, int]
    file: str = ""
    key_files: dict[str, str]  # only where a key came from another file (an include)


class LineList(list):
    """A list with ``line`` and ``item_lines``."""

    line: int = 0
    item_lines: list[int]
    file: str = ""


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line, out.key_lines, out.file, out.key_files = node.start_mark.line + 1, {}, loader.name, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise ConfigError(loader.name, key_node.start_mark.line + 1, f"mapping key {key!r} must be a string")
        if key in out:
            raise ConfigError(loader.name, key_node.start_mark.line + 1, f"duplicate key {key!r}")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[str(key)] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line, out.file = node.start_mark.line + 1, loader.name
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: Path, display: str | None = None) -> Any:
    """Parse one YAML file safely; any syntax or tag problem becomes a ConfigError with its line."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(name, None, "file not found") from None
    except OSError as exc:
        raise ConfigError(name, None, f"cannot read file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(name, line, "not UTF-8 text: save the suite as UTF-8") from None
    loader = None
    try:
        loader = _Loader(text)  # the reader rejects control characters (e.g. NUL) here already
        loader.name = name
        return loader.get_single_data()
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError(name, None, "YAML nested too deeply to be a suite") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        if "python/" in str(exc) or "could not determine a constructor" in problem:
            problem = f"{problem.strip()} (python tags are not allowed: suites are data, never code)"
        raise ConfigError(name, line, f"YAML error: {problem.strip()}") from None
    except yaml.YAMLError as exc:  # e.g. a ReaderError: a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc, yaml.reader.ReaderError) else None
        problem = exc.reason if isinstance(exc, yaml.reader.ReaderError) else str(exc)
        raise ConfigError(name, line, f"YAML error: {problem}") from None
    finally:
        if loader is not None:
            loader.dispose()


def line_of(node: Any, path: tuple[Any, ...]) -> tuple[str, int | None]:
    """The file and line of the deepest key reachable along ``path`` (a pydantic error ``loc``)."""
    file, line = getattr(node, "file", ""), getattr(node, "line", None)
    for key in path:
        if isinstance(node, LineDict) and key in node:
            file = node.key_files.get(str(key), node.file) or file
            line = node.key_lines.get(str(key), line)
            node = node[key]
        elif isinstance(node, LineList) and isinstance(key, int) and 0 <= key < len(node):
            file, line = node.file or file, node.item_lines[key]
            node = node[key]
        else:
            break
    return file, line


def merged(base: LineDict, local: LineDict) -> LineDict:
    """Deep merge for ``include:``: local keys win; each key keeps the file and line it came from."""
    out = LineDict()
    out.line, out.file, out.key_lines, out.key_files = local.line, local.file, {}, {}
    for src in (base, local):
        for key, value in src.items():
            if src is local and isinstance(value, LineDict) and isinstance(out.get(key), LineDict):
                value = merged(out[key], value)
            out[key] = value
            out.key_lines[str(key)] = src.key_lines.get(str(key), src.line)
            out.key_files[str(key)] = src.key_files.get(str(key), src.file)
    return out
