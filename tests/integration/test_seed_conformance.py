"""Every column, type, default and value the seed documents name is in the migrated schema.

The Mirari seed is SQL: its `create table` blocks are parsed from docs/seeds/ (values
named in a column's comment, like `-- 'hermes' | 'openrouter'`, count as values a client
writes). The Cencori seed is prose; the columns and values it names are listed below with
the sentence they come from. A client written against either seed must find its names
here and have its values accepted.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.support.database import ProvisionedDatabase

SEEDS = Path(__file__).resolve().parents[2] / "docs" / "seeds"
TYPES = {"timestamptz": "timestamp with time zone"}


@dataclass(frozen=True)
class SeedColumn:
    """One column as a seed names it; None where the seed does not say."""

    table: str
    name: str
    type: str | None = None
    not_null: bool | None = None
    default: str | None = None
    values: tuple[str, ...] = field(default=())
    # `references public.<table>(id) on delete <action>`: (table, action)
    references: tuple[str, str] | None = None

    def __str__(self) -> str:
        return f"{self.table}.{self.name}"


COLUMN = re.compile(
    r"^\s*(?P<name>\w+)\s+(?P<type>uuid|text|real|integer|jsonb|boolean|timestamptz)\b(?P<rest>.*)$"
)
REFERENCES = re.compile(
    r"references public\.(?P<table>\w+)\(id\) on delete (?P<action>set null|cascade)"
)
DEFAULT = re.compile(r"\bdefault\s+(?P<expr>'[^']*'|[\w.]+\(\)|[-\d.]+|true|false)", re.I)


def mirari_columns() -> list[SeedColumn]:
    """Every column of every `create table` of the Mirari seed."""
    text = (SEEDS / "mirari-data-model.md").read_text()
    columns = []
    for table, body in re.findall(r"create table public\.(\w+) \((.*?)\n\);", text, re.S):
        for line in body.splitlines():
            code, _, comment = line.partition("--")
            match = COLUMN.match(code)
            if match is None:
                continue
            rest = match["rest"].lower()
            default = DEFAULT.search(rest)
            references = REFERENCES.search(rest)
            columns.append(
                SeedColumn(
                    table=table,
                    name=match["name"],
                    type=TYPES.get(match["type"], match["type"]),
                    not_null="not null" in rest or "primary key" in rest,
                    default=default["expr"] if default else None,
                    values=tuple(re.findall(r"'([^']*)'", comment)),
                    references=(references["table"], references["action"]) if references else None,
                )
            )
    return columns


# The Cencori seed, sentence by sentence (docs/seeds/cencori-agents.md).
CENCORI = [
    # "This table acts as the core registry for an agent within a project."
    SeedColumn("agents", "id", "uuid"),
    # "JOIN public.projects p ON a.project_id = p.id"
    SeedColumn("agents", "project_id", "uuid"),
    # "WHERE organization_id = p.organization_id"
    SeedColumn("projects", "organization_id", "uuid"),
    # "SELECT user_id FROM public.organization_members WHERE organization_id = ..."
    SeedColumn("organization_members", "user_id", "uuid"),
    SeedColumn("organization_members", "organization_id", "uuid"),
    # agent_configs: "`model` ... `system_prompt` ... `temperature`", "1:1 with agents"
    SeedColumn("agent_configs", "agent_id", "uuid", not_null=True),
    SeedColumn("agent_configs", "model", "text"),
    SeedColumn("agent_configs", "system_prompt", "text"),
    SeedColumn("agent_configs", "temperature"),
    # agent_sessions: "`socket_id`", "`status`: `online`, `offline`, `busy`.",
    # "`last_heartbeat`", "`metadata`: OS, IP, version"
    SeedColumn("agent_sessions", "socket_id", "text"),
    SeedColumn("agent_sessions", "status", "text", values=("online", "offline", "busy")),
    SeedColumn("agent_sessions", "last_heartbeat", "timestamp with time zone"),
    SeedColumn("agent_sessions", "metadata", "jsonb"),
    # agent_actions: "written ... with a `status` of `pending`", "transition a `pending`
    # action to `approved` or `rejected`", "The `payload` JSONB column"
    SeedColumn(
        "agent_actions",
        "status",
        "text",
        default="'pending'",
        values=("pending", "approved", "rejected"),
    ),
    SeedColumn("agent_actions", "payload", "jsonb", not_null=True),
    # "Keys are encrypted (`key_ciphertext`)", "USING (auth.uid() = user_id)"
    SeedColumn("user_keys", "key_ciphertext", not_null=True),
    SeedColumn("user_keys", "user_id", "uuid", not_null=True),
    # "Workflows rely on a DAG ... engine"
    SeedColumn("workflows", "id", "uuid"),
]

SEED_COLUMNS = [*mirari_columns(), *CENCORI]


@dataclass(frozen=True)
class Migrated:
    """A column as the migrated catalog has it (a domain counts as its base type)."""

    type: str
    not_null: bool
    default: str | None


@pytest.fixture(scope="module")
def catalog(make_database: object) -> Iterator[psycopg.Connection]:
    db: ProvisionedDatabase = make_database()  # type: ignore[operator]
    with psycopg.connect(db.admin_url, autocommit=True) as conn:
        yield conn


def _migrated(conn: psycopg.Connection, column: SeedColumn) -> Migrated | None:
    row = conn.execute(
        """
        select format_type(case when t.typtype = 'd' then t.typbasetype else t.oid end,
                           case when t.typtype = 'd' then t.typtypmod else a.atttypmod end),
               a.attnotnull or t.typnotnull,
               pg_get_expr(d.adbin, d.adrelid)
          from pg_attribute a
          join pg_type t on t.oid = a.atttypid
          left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         where a.attrelid = to_regclass(%s) and a.attname = %s
           and a.attnum > 0 and not a.attisdropped
        """,
        (f"public.{column.table}", column.name),
    ).fetchone()
    return None if row is None else Migrated(*row)


def test_the_seeds_were_read() -> None:
    tables = {c.table for c in mirari_columns()}
    assert tables == {
        "agent_connections",
        "conversations",
        "messages",
        "memory_nodes",
        "skills",
        "mirror_reports",
        "tasks",
        "templates",
    }
    assert len(SEED_COLUMNS) >= 80
    assert {str(c) for c in SEED_COLUMNS if c.references} == {
        "conversations.agent_connection_id",
        "messages.conversation_id",
        "mirror_reports.agent_connection_id",
        "tasks.connection_id",
    }


@pytest.mark.parametrize("column", SEED_COLUMNS, ids=str)
def test_seed_column_exists_with_its_type(catalog: psycopg.Connection, column: SeedColumn) -> None:
    migrated = _migrated(catalog, column)
    assert migrated is not None, f"{column} is missing"
    if column.type is not None:
        assert migrated.type == column.type


@pytest.mark.parametrize("column", [c for c in SEED_COLUMNS if c.not_null is not None], ids=str)
def test_seed_column_takes_null_as_the_seed_says(
    catalog: psycopg.Connection, column: SeedColumn
) -> None:
    migrated = _migrated(catalog, column)
    assert migrated is not None, f"{column} is missing"
    assert migrated.not_null == column.not_null, (
        f"{column} must {'refuse' if column.not_null else 'accept'} null"
    )


def _default_of(conn: psycopg.Connection, column: SeedColumn) -> object:
    migrated = _migrated(conn, column)
    assert migrated is not None, f"{column} is missing"
    assert migrated.default is not None, f"{column} has no default; the seed's is {column.default}"
    row = conn.execute(
        sql.SQL("select ({}) is not distinct from ({})::{}").format(
            sql.SQL(migrated.default),  # the catalog's own text
            sql.SQL(column.default or "null"),  # the seed's own text
            sql.SQL(migrated.type),
        )
    ).fetchone()
    assert row is not None
    return row[0]


@pytest.mark.parametrize("column", [c for c in SEED_COLUMNS if c.default], ids=str)
def test_seed_default_is_the_default(catalog: psycopg.Connection, column: SeedColumn) -> None:
    if column.default == "gen_random_uuid()":
        migrated = _migrated(catalog, column)
        assert migrated is not None
        assert migrated.default == "gen_random_uuid()"
        return
    # now() is the transaction's time: both sides of one statement read the same.
    assert _default_of(catalog, column) is True, f"{column} must default to {column.default}"


@pytest.mark.parametrize(
    "column", [c for c in SEED_COLUMNS if c.not_null is False and not c.default], ids=str
)
def test_optional_seed_column_has_no_default(
    catalog: psycopg.Connection, column: SeedColumn
) -> None:
    # A seed client that leaves an optional column out reads back null, not our filler.
    migrated = _migrated(catalog, column)
    assert migrated is not None, f"{column} is missing"
    assert migrated.default is None, f"{column} defaults to {migrated.default}"


def _accepts(conn: psycopg.Connection, column: SeedColumn, value: str) -> bool:
    """Whether the column's own checks (and its domain's) take `value`.

    Every check constraint on this column alone is copied onto a one-column scratch table
    of the column's type; storing the value there runs exactly those checks.
    """
    checks = conn.execute(
        """
        select pg_get_constraintdef(c.oid), format_type(a.atttypid, a.atttypmod)
          from pg_attribute a
          left join pg_constraint c on c.conrelid = a.attrelid and c.contype = 'c'
                                   and c.conkey = array[a.attnum]
         where a.attrelid = to_regclass(%s) and a.attname = %s
        """,
        (f"public.{column.table}", column.name),
    ).fetchall()
    column_type = checks[0][1]
    with conn.transaction(force_rollback=True):
        conn.execute(
            sql.SQL("create temp table probe ({} {})").format(
                sql.Identifier(column.name), sql.SQL(column_type)
            )
        )
        for definition, _ in checks:
            if definition is not None:
                conn.execute(sql.SQL("alter table probe add {}").format(sql.SQL(definition)))
        try:
            with conn.transaction():
                conn.execute("insert into probe values (%s)", (value,))
        except psycopg.errors.CheckViolation:
            return False
    return True


SEED_VALUES = [
    (column, value)
    for column in SEED_COLUMNS
    for value in (
        *column.values,
        *([column.default.strip("'")] if column.default and column.default[0] == "'" else []),
    )
    if column.type == "text"
]


@pytest.mark.parametrize(("column", "value"), SEED_VALUES, ids=[f"{c}={v}" for c, v in SEED_VALUES])
def test_seed_value_is_accepted(
    catalog: psycopg.Connection, column: SeedColumn, value: str
) -> None:
    assert _migrated(catalog, column) is not None, f"{column} is missing"
    assert _accepts(catalog, column, value), f"{column} refuses the seed's value {value!r}"


def test_seed_values_were_found() -> None:
    found = {f"{c}={v}" for c, v in SEED_VALUES}
    assert {
        "agent_connections.provider=hermes",
        "agent_connections.status=offline",
        "messages.role=system",
        "skills.status=suggested",
        "tasks.status=pending",
        "agent_sessions.status=busy",
    } <= found


@pytest.mark.parametrize("column", [c for c in SEED_COLUMNS if c.references], ids=str)
def test_seed_reference_deletes_as_the_seed_says(
    catalog: psycopg.Connection, column: SeedColumn
) -> None:
    assert column.references is not None
    target, action = column.references
    # A key may be composite (with user_id, so a row points only at its owner's rows);
    # `set null` must then clear this column alone, never user_id.
    rows = catalog.execute(
        """
        select c.confdeltype,
               array(select attname from pg_attribute
                      where attrelid = c.conrelid and attnum = any (c.confdelsetcols))
          from pg_constraint c
          join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any (c.conkey)
         where c.contype = 'f' and c.conrelid = to_regclass(%s)
           and c.confrelid = to_regclass(%s) and a.attname = %s
        """,
        (f"public.{column.table}", f"public.{target}", column.name),
    ).fetchall()
    assert len(rows) == 1, f"{column} must reference {target}"
    [(deletes, cleared)] = rows
    if action == "cascade":
        assert deletes == "c", f"deleting a {target} row must delete the {column.table} row"
    else:
        assert deletes == "n", f"deleting a {target} row must set {column} to null"
        assert cleared in ([], [column.name])
        if cleared == []:  # every column of the key is set null: it must be this one alone
            keys = catalog.execute(
                "select cardinality(conkey) from pg_constraint where contype = 'f'"
                " and conrelid = to_regclass(%s) and confrelid = to_regclass(%s)",
                (f"public.{column.table}", f"public.{target}"),
            ).fetchone()
            assert keys == (1,)


def test_agent_configs_are_one_to_one_with_agents(catalog: psycopg.Connection) -> None:
    row = catalog.execute(
        """
        select exists (
          select 1 from pg_index i join pg_attribute a
            on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
           where i.indrelid = 'public.agent_configs'::regclass and i.indisunique
             and i.indnkeyatts = 1 and a.attname = 'agent_id')
        """
    ).fetchone()
    assert row == (True,)


def test_a_seed_client_writes_and_reads_every_mirari_table(
    catalog: psycopg.Connection,
) -> None:
    """As a signed-in user under RLS: insert each table's seed-required columns only,
    with the seed's values, and read the seed's defaults back."""
    user_id = uuid.uuid4()
    catalog.execute("insert into auth.users (id) values (%s)", (user_id,))
    with catalog.transaction(force_rollback=True):
        catalog.execute("set local role authenticated")
        catalog.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": str(user_id), "role": "authenticated"}),),
        )

        def insert(table: str, **values: object) -> dict[str, object]:
            query = sql.SQL("insert into {} ({}) values ({}) returning *").format(
                sql.Identifier("public", table),
                sql.SQL(", ").join(map(sql.Identifier, values)),
                sql.SQL(", ").join(sql.Placeholder() * len(values)),
            )
            cur = catalog.execute(query, list(values.values()))
            assert cur.description is not None
            names = [d.name for d in cur.description]
            row = cur.fetchone()
            assert row is not None
            return dict(zip(names, row, strict=True))

        connections = [
            insert(
                "agent_connections",
                user_id=user_id,
                name=p,
                provider=p,
                base_url="https://models.example/v1",
                model="hermes-3",
            )
            for p in ("hermes", "openrouter", "nous", "custom")
        ]
        assert {c["status"] for c in connections} == {"offline"}
        link = connections[0]["id"]
        conversation = insert("conversations", user_id=user_id, agent_connection_id=link)
        assert conversation["title"] is None
        for role in ("system", "user", "assistant"):
            insert(
                "messages",
                user_id=user_id,
                conversation_id=conversation["id"],
                role=role,
                content="hi",
            )
        memory = insert("memory_nodes", user_id=user_id, label="likes tea")
        assert (memory["strength"], memory["category"], memory["source"]) == (0.5, None, None)
        skill = insert("skills", user_id=user_id, name="triage")
        assert (skill["status"], skill["score"], skill["version"]) == ("suggested", 0, 1)
        assert (skill["category"], skill["template_prompt"], skill["description"]) == (
            None,
            None,
            None,
        )
        report = insert("mirror_reports", user_id=user_id, agent_connection_id=link)
        assert (report["strengths"], report["weaknesses"], report["recommendations"]) == (
            [],
            [],
            [],
        )
        assert (report["title"], report["suggested_prompt"]) == (None, None)
        task = insert("tasks", user_id=user_id, connection_id=link, title="ship it")
        assert (task["status"], task["description"]) == ("pending", None)
        template = insert(
            "templates",
            author_id=user_id,
            name="starter",
            payload=Jsonb({"skills": [], "seed_memory": []}),
        )
        assert (template["installs"], template["is_public"], template["category"]) == (
            0,
            False,
            None,
        )
