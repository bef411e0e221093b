"""baselines.yaml as YAML text: the safe reader (one parse, plain values only, alias bombs refused) for every
command, and the round-trip writer (comments, order and quoting kept) for the commands that change the file."""

from __future__ import annotations

import io
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, ScalarNode

from .errors import BaselinesError, clipped

# A catalogue has a few thousand YAML nodes; aliases that expand beyond this are refused before anything is built.
MAX_EXPANDED_NODES = 100_000


def read_yaml(path: Path, text: str):
    """The plain values of a YAML document (dicts, lists, scalars), parsed once; BaselinesError, one line naming the
    file and line, for a syntax error, a duplicate key, a tag or an alias bomb."""
    # The safe loader builds plain types only: a tag such as !!python/object is refused, never constructed.
    yaml = YAML(typ="safe", pure=True)
    try:
        node = yaml.compose(text)  # an alias is its anchor's node again: nothing is expanded yet
        if node is None:
            return None
        _check_alias_expansion(path, node, {}, set())
        return yaml.constructor.construct_document(node)
    except BaselinesError:
        raise
    except Exception as exc:  # ruamel raises many parser error types
        raise _yaml_error(path, exc) from None


def _check_alias_expansion(path: Path, node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """The number of values `node` expands to, aliases followed; BaselinesError when it passes MAX_EXPANDED_NODES (a
    "billion laughs" bomb) or when an alias refers to a collection that contains it (a cycle no check could walk).
    Each node is counted once (`sizes`), so the check takes time in the document's size."""
    if id(node) in sizes:
        return sizes[id(node)]
    if isinstance(node, ScalarNode):
        return 1
    if id(node) in open_nodes:
        raise BaselinesError(f"{path}, line {node.start_mark.line + 1}: a YAML alias refers to a collection that "
                             "contains it (a cycle); refused")
    open_nodes.add(id(node))
    children = [part for pair in node.value for part in pair] if isinstance(node, MappingNode) else node.value
    size = 1 + sum(_check_alias_expansion(path, child, sizes, open_nodes) for child in children)
    open_nodes.discard(id(node))
    if size > MAX_EXPANDED_NODES:
        raise BaselinesError(f"{path}, line {node.start_mark.line + 1}: YAML aliases expand to more than "
                             f"{MAX_EXPANDED_NODES:,} values; refused (an alias bomb?)")
    sizes[id(node)] = size
    return size


def _yaml_error(path: Path, exc: Exception) -> BaselinesError:
    """One line naming the file, the line and the parser's problem (e.g. a duplicate key or an unsafe tag)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
    if "constructor for the tag" in problem:
        problem += " (only plain YAML values are accepted; tags such as !!python/object are refused)"
    return BaselinesError(f"{where}: not valid YAML: {clipped(problem, 300)}")


def round_trip_yaml() -> YAML:
    """The YAML reader/writer that keeps comments, order and quoting (for writing the catalogue only)."""
    yaml = YAML(typ="rt")  # round-trip, safe: only plain YAML types are constructed
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def dump(data) -> str:
    """The text of a round-trip document."""
    buffer = io.StringIO()
    round_trip_yaml().dump(data, buffer)
    return buffer.getvalue()
