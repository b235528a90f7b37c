"""One validated settings model, read once from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything agentplane reads from its environment (prefix ``AGENTPLANE_``)."""

    model_config = SettingsConfigDict(env_prefix="AGENTPLANE_", extra="ignore", frozen=True)

    stage: Literal["local", "dev", "prod", "test"] = "local"

    # Database. With neither a URL nor a secret name, local mode starts an embedded
    # PostgreSQL under data_dir.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "AGENTPLANE_DATABASE_URL")
    )
    # Where `agentplane db migrate` connects (a role that owns the schema); defaults to
    # database_url.
    migrate_database_url: str | None = None
    # In AWS: a Secrets Manager secret whose value is the database URL.
    database_secret_name: str | None = None
    # At deploy: a secret of the same shape holding the migrator's URL (never the app's).
    migrate_database_secret_name: str | None = None
    # An RDS Proxy or pooler in front of the database: `host` or `host:port` the app
    # connects to instead of the one in its URL (the migrator always connects directly).
    database_proxy_host: str | None = None
    # Apply migrations from this directory instead of the ones shipped in the package.
    migrations_dir: Path | None = None
    db_pool_min_size: int = Field(default=0, ge=0)
    db_pool_max_size: int = Field(default=10, ge=1)
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)

    data_dir: Path = Path(".agentplane")
    # Largest request body any route accepts (413 problem+json beyond it).
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    # Identity. HS256 with jwt_secret (Supabase's default), or a JWKS URL.
    jwt_secret: SecretStr | None = None
    jwks_url: str | None = None
    jwt_audience: str = "authenticated"
    jwt_issuer: str | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    # The Supabase project the console signs people in through (its URL and public anon
    # key, template parameters in AWS); without them the console takes a token link.
    supabase_url: str | None = Field(default=None, pattern=r"^https?://[^/\s]+/?$")
    supabase_anon_key: str | None = None

    # The reference runner's token, when `agentplane runner` is not given --token.
    runner_token: SecretStr | None = None
    # How long a runner token lasts when its creation names no lifetime.
    runner_token_lifetime_days: int = Field(default=90, ge=1, le=366)

    # How long an approval stays valid for a runner to start the action.
    approval_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    # AWS resources the functions use (set by template.yaml).
    kms_key_id: str | None = None
    signing_key_secret_name: str | None = None

    # Workflows: the state machine runs execute (template.yaml sets it; local mode creates
    # one in the in-process Step Functions interpreter), the function the actions
    # function kicks to deliver callbacks at once, the estimated history events after
    # which a run continues in a fresh execution (Step Functions stops at 25,000), and
    # the HeartbeatSeconds of an action node's wait (the dispatcher heartbeats a third
    # as often).
    workflow_state_machine_arn: str | None = None
    workflows_function_name: str | None = None
    # The runner doorbell (DESIGN.md §4.2): the WebSocket URL runners are told at
    # registration (template.yaml: the WebSocket API stage's wss:// URL; its https://
    # twin is the management API doorbells are posted to). Local mode serves /runner/ws.
    runner_websocket_url: str | None = None
    # The mirror function, which runs each queued report in an async invocation of its own.
    mirror_function_name: str | None = None
    workflow_history_budget: int = Field(default=20_000, ge=50, le=24_000)
    workflow_heartbeat_seconds: int = Field(default=900, ge=30, le=86_400)

    # Events and webhooks. The EventBridge bus events are published to (template.yaml
    # sets it; without it local mode logs them and hands them to the in-process bus), the
    # function that dispatches them (the actions function kicks it after a commit), how
    # often a webhook delivery or a publication is tried before it is given up, the
    # backoff between tries (doubling from the base, with jitter, up to the cap), how long
    # one POST may take, and whether webhooks may point at loopback, private or
    # link-local addresses (unset: only in local mode, where http:// is allowed too).
    event_bus_name: str | None = None
    events_function_name: str | None = None
    webhook_max_attempts: int = Field(default=8, ge=1, le=30)
    webhook_backoff_seconds: float = Field(default=30.0, ge=0, le=3600)
    webhook_backoff_max_seconds: float = Field(default=6 * 3600.0, ge=0, le=86_400)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    webhook_allow_private_networks: bool | None = None

    # The model provider client (agent turns, server jobs).
    provider_timeout_seconds: float = Field(default=60.0, gt=0, le=900)
    provider_max_retries: int = Field(default=2, ge=0, le=10)
    provider_backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    # Conversation history sent with a turn: at most this many earlier messages.
    turn_history_messages: int = Field(default=50, ge=0, le=1000)

    # `make dev` only: a provider endpoint, model and key the demo agent is wired to.
    dev_provider_url: str | None = None
    dev_provider_model: str = "hermes-3"
    dev_provider_key: SecretStr | None = None
    # `agentplane dev` only, a test hook: "off" drops every runner socket at once.
    dev_runner_sockets: Literal["on", "off"] = "on"

    @property
    def vault_keyring_path(self) -> Path:
        """The local master keys of the vault (local mode only)."""
        return self.data_dir / "vault-keyring.json"

    @property
    def is_local(self) -> bool:
        """True when running on one machine (dev server, tests, CLI)."""
        return self.stage in ("local", "test")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, built on first use."""
    return Settings()
