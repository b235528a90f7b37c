"""A workflow's DAG: its nodes, their typed configs, its edges, and how it is checked.

A definition is `{nodes: [{id, type, config}], edges: [{from, to, when?}]}`. It is
checked whole on every save, and every way it is wrong is reported at once as a 422
entry naming the node or edge (`definition.nodes.2.config.tool`, with `node: "fetch"`).

Expressions are JMESPath over a run's context, `{input, nodes: {<id>: {status, output,
action_status, error}}}`: an edge's `when`, a `transform`'s `expression`, a `wait`'s
`seconds_expression`, and every `{{ ... }}` placeholder in an `action`'s args, an
`approval`'s title and details and an `llm`'s prompt. A string that is one placeholder
and nothing else becomes the value itself (a number stays a number); placeholders inside
longer text are written in as text (JSON for anything but a string).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

import jmespath
import jmespath.exceptions
from pydantic import (
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agentplane.actions.models import MAX_TTL_SECONDS, ToolName
from agentplane.errors import ValidationProblemError
from agentplane.models import InputModel
from agentplane.tools.service import known_tool

NodeId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
NodeType = Literal["action", "approval", "llm", "transform", "wait"]
Expression = Annotated[str, StringConstraints(min_length=1, max_length=2000)]

MAX_NODES = 200
MAX_EDGES = 1000
PLACEHOLDER = re.compile(r"\{\{\s*(.+?)\s*\}\}", re.DOTALL)


@lru_cache(maxsize=1024)
def compile_expression(expression: str) -> Any:
    """The compiled JMESPath expression (ValueError naming the problem otherwise)."""
    try:
        return jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        raise ValueError(f"{expression!r} is not a JMESPath expression: {exc}") from None


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """`expression` over `context` (a JMESPath error is a ValueError with its reason)."""
    try:
        return compile_expression(expression).search(dict(context))
    except jmespath.exceptions.JMESPathError as exc:
        raise ValueError(f"{expression!r} failed: {exc}") from None


def placeholders(value: Any) -> Iterator[str]:
    """Every `{{ expression }}` inside a (nested) JSON value."""
    if isinstance(value, str):
        for match in PLACEHOLDER.finditer(value):
            yield match.group(1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from placeholders(item)
    elif isinstance(value, list):
        for item in value:
            yield from placeholders(item)


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """`value` with every placeholder replaced by its expression's value over `context`."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole and value.strip() == value:
            return evaluate(whole.group(1), context)

        def text(match: re.Match[str]) -> str:
            found = evaluate(match.group(1), context)
            if isinstance(found, str):
                return found
            return json.dumps(found, separators=(",", ":"), ensure_ascii=False)

        return PLACEHOLDER.sub(text, value)
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value


def _expression(value: str) -> str:
    try:
        compile_expression(value)
    except ValueError as exc:
        raise PydanticCustomError("jmespath", "{reason}", {"reason": str(exc)}) from None
    return value


def _templated(value: Any) -> Any:
    for expression in placeholders(value):
        _expression(expression)
    return value


class NodeConfig(InputModel):
    """What every node's config may say: how often to try it, and how long to wait
    between tries (doubling from `backoff_seconds`)."""

    max_attempts: Annotated[int, Field(ge=1, le=10)] = 1
    backoff_seconds: Annotated[int, Field(ge=0, le=3600)] = 5


class ActionConfig(NodeConfig):
    """Propose `{tool, args}` for an agent and wait until it is final; the node's output
    is the runner's result."""

    agent_id: UUID
    tool: ToolName
    args: dict[str, JsonValue] = Field(default_factory=dict)
    ttl_seconds: Annotated[int, Field(ge=10, le=MAX_TTL_SECONDS)] = 3600

    _tool = field_validator("tool")(lambda cls, value: known_tool(value))
    _args = field_validator("args")(lambda cls, value: _templated(value))


class ApprovalConfig(NodeConfig):
    """A human gate in the approval inbox (decided by the actions routes; no runner)."""

    agent_id: UUID
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    details: Annotated[str, Field(max_length=4000)] = ""
    ttl_seconds: Annotated[int, Field(ge=10, le=MAX_TTL_SECONDS)] = 3600

    _text = field_validator("title", "details")(lambda cls, value: _templated(value))


class LlmConfig(NodeConfig):
    """One turn of an agent's model with the run's starter's key; output is the reply's
    text, or its JSON validated against `output_schema`."""

    agent_id: UUID
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
    system: Annotated[str, Field(max_length=100_000)] | None = None
    output_schema: dict[str, JsonValue] | None = None

    _prompt = field_validator("prompt", "system")(lambda cls, value: _templated(value))

    @field_validator("output_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            # Imported here: only a definition with a schema pays for jsonschema (~40 ms).
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(value)
            except SchemaError as exc:
                raise PydanticCustomError(
                    "json_schema", "not a JSON Schema: {reason}", {"reason": exc.message}
                ) from None
        return value


class TransformConfig(NodeConfig):
    """A JMESPath projection of the run's input and earlier outputs."""

    expression: Expression

    _expression = field_validator("expression")(lambda cls, value: _expression(value))


class WaitConfig(NodeConfig):
    """A timer: `seconds`, or `seconds_expression` evaluated when the node is reached."""

    seconds: Annotated[int, Field(ge=0, le=MAX_TTL_SECONDS)] | None = None
    seconds_expression: Expression | None = None

    _expression = field_validator("seconds_expression")(
        lambda cls, value: None if value is None else _expression(value)
    )

    @model_validator(mode="after")
    def _one_of(self) -> WaitConfig:
        if (self.seconds is None) == (self.seconds_expression is None):
            raise ValueError("give exactly one of seconds and seconds_expression")
        return self


CONFIGS: dict[str, type[NodeConfig]] = {
    "action": ActionConfig,
    "approval": ApprovalConfig,
    "llm": LlmConfig,
    "transform": TransformConfig,
    "wait": WaitConfig,
}


class Node(InputModel):
    """One node of the DAG."""

    id: NodeId
    # Checked by `check` with the rest of the definition, so an unknown type is one more
    # entry naming its node rather than a parse error that hides every other problem.
    type: Annotated[str, Field(json_schema_extra={"enum": list(get_args(NodeType))})]
    config: dict[str, JsonValue] = Field(default_factory=dict)


class Edge(InputModel):
    """`from` → `to`; with `when`, taken only where the expression is truthy (and then
    also after `from` failed, which the edge handles)."""

    model_config = ConfigDict(populate_by_name=True)

    source: NodeId = Field(alias="from")
    to: NodeId
    when: Expression | None = None


class Definition(InputModel):
    """A workflow's DAG as saved."""

    nodes: Annotated[list[Node], Field(max_length=MAX_NODES)] = Field(default_factory=list)
    edges: Annotated[list[Edge], Field(max_length=MAX_EDGES)] = Field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The definition as stored (edges with `from`)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class Graph:
    """A checked definition: each node's typed config and its neighbours."""

    nodes: dict[str, Node]
    configs: dict[str, NodeConfig]
    incoming: dict[str, list[Edge]] = field(default_factory=dict)
    outgoing: dict[str, list[Edge]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)


def _error(path: str, rule: str, message: str, **names: str) -> dict[str, Any]:
    return {"field": path, "in": "body", "rule": rule, "message": message, **names}


def _cycle(ids: list[str], outgoing: dict[str, list[str]]) -> list[str] | None:
    """One cycle of the graph as a path (first node repeated at the end), or None."""
    colour = dict.fromkeys(ids, 0)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in outgoing[node]:
            if colour[nxt] == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if colour[nxt] == 0 and (found := visit(nxt)):
                return found
        stack.pop()
        colour[node] = 2
        return None

    for node in ids:
        if colour[node] == 0 and (found := visit(node)):
            return found
    return None


def check(definition: Definition, prefix: str = "definition") -> Graph:
    """The definition as a Graph, or a 422 listing every problem: duplicate ids, unknown
    types, configs that miss their type's model, edges naming unknown nodes, bad `when`,
    cycles."""
    errors: list[dict[str, Any]] = []
    nodes: dict[str, Node] = {}
    configs: dict[str, NodeConfig] = {}
    for i, node in enumerate(definition.nodes):
        where = f"{prefix}.nodes.{i}"
        if node.id in nodes:
            errors.append(
                _error(f"{where}.id", "unique", f"node id {node.id!r} is used twice", node=node.id)
            )
            continue
        nodes[node.id] = node
        if node.type not in CONFIGS:
            errors.append(
                _error(
                    f"{where}.type",
                    "known_type",
                    f"node {node.id!r}: {node.type!r} is not a node type; the types are"
                    f" {', '.join(CONFIGS)}",
                    node=node.id,
                )
            )
            continue
        try:
            configs[node.id] = CONFIGS[node.type].model_validate(node.config)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(part) for part in err["loc"])
                errors.append(
                    _error(
                        f"{where}.config" + (f".{loc}" if loc else ""),
                        err["type"],
                        f"node {node.id!r} ({node.type}): {err['msg']}",
                        node=node.id,
                    )
                )
    incoming: dict[str, list[Edge]] = {n: [] for n in nodes}
    outgoing: dict[str, list[Edge]] = {n: [] for n in nodes}
    seen: set[tuple[str, str]] = set()
    for j, edge in enumerate(definition.edges):
        where = f"{prefix}.edges.{j}"
        name = f"{edge.source}->{edge.to}"
        bad = False
        for end, node_id in (("from", edge.source), ("to", edge.to)):
            if node_id not in nodes:
                errors.append(
                    _error(
                        f"{where}.{end}",
                        "known_node",
                        f"edge {name}: there is no node {node_id!r}",
                        edge=name,
                    )
                )
                bad = True
        if edge.source == edge.to:
            errors.append(_error(where, "acyclic", f"edge {name} loops on itself", edge=name))
            bad = True
        if (edge.source, edge.to) in seen:
            errors.append(_error(where, "unique", f"edge {name} is given twice", edge=name))
            bad = True
        if edge.when is not None:
            try:
                compile_expression(edge.when)
            except ValueError as exc:
                errors.append(_error(f"{where}.when", "jmespath", str(exc), edge=name))
        if not bad:
            seen.add((edge.source, edge.to))
            incoming[edge.to].append(edge)
            outgoing[edge.source].append(edge)
    if not errors:
        ids = list(nodes)
        cycle = _cycle(ids, {n: [e.to for e in outgoing[n]] for n in ids})
        if cycle:
            path = " -> ".join(cycle)
            errors.append(
                _error(
                    f"{prefix}.edges",
                    "acyclic",
                    f"the edges make a cycle: {path}",
                    node=cycle[0],
                )
            )
    if errors:
        raise ValidationProblemError(errors, detail="the workflow definition is not valid")
    return Graph(nodes, configs, incoming, outgoing, _order(list(nodes), incoming))


def _order(ids: list[str], incoming: dict[str, list[Edge]]) -> list[str]:
    """The node ids in a topological order (definition order among equals)."""
    done: set[str] = set()
    order: list[str] = []
    while len(order) < len(ids):
        for node in ids:
            if node not in done and all(e.source in done for e in incoming[node]):
                done.add(node)
                order.append(node)
    return order


def graph_of(stored: Mapping[str, Any]) -> Graph:
    """The Graph of a stored definition (a run's copy, checked when it was saved)."""
    return check(Definition.model_validate(stored))
