"""What a process holds between requests: settings, the database pool, the token verifier.

Built without touching the network; the database URL is resolved on first use (in AWS it
comes from Secrets Manager), so importing a handler stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING
from uuid import UUID

from agentplane.db.database import Database
from agentplane.db.urls import DatabaseNotConfiguredError, urls_from_settings
from agentplane.settings import Settings, get_settings

# Imported where first used: a job function (the heartbeat) verifies no token, signs no
# approval and opens no vault, so its cold start does not load JWT, Ed25519 or the vault's
# crypto; httpx loads on the first turn.
if TYPE_CHECKING:
    from agentplane.actions.signing import ApprovalSigner
    from agentplane.auth.tokens import TokenVerifier
    from agentplane.brain.provider import ChatClient
    from agentplane.events.publisher import EventPublisher
    from agentplane.sessions.apigw import ApiGatewayConnections
    from agentplane.sessions.sockets import LocalSockets
    from agentplane.vault.service import Vault
    from agentplane.workflows.sfn import StepFunctions


class SigningKeyNotConfiguredError(RuntimeError):
    """No approval signing key outside local mode."""


class VaultNotConfiguredError(RuntimeError):
    """No key-encryption key outside local mode."""


class EventsNotConfiguredError(RuntimeError):
    """No event bus outside local mode."""


class WorkflowsNotConfiguredError(RuntimeError):
    """No state machine to run workflows on."""


class Runtime:
    """Process-wide dependencies, injected into routes through `app.state.runtime`."""

    def __init__(self, settings: Settings, database: Database | None = None) -> None:
        self.settings = settings
        self._database = database
        # Local mode: what wakes the in-process callback dispatcher (workflows/local.py).
        self.workflow_kicker: Callable[[], None] | None = None
        # Local mode: what wakes the in-process events dispatcher (events/local.py).
        self.events_kicker: Callable[[], None] | None = None
        # Local mode: how a queued mirror report is run off the request (a task).
        self.mirror_runner: Callable[[UUID], None] | None = None
        # Local mode: the dev server's runner sockets (/runner/ws) and their listener.
        self.runner_sockets: LocalSockets | None = None

    @property
    def database(self) -> Database:
        """The pool, created on first use from the settings."""
        if self._database is None:
            urls = urls_from_settings(self.settings)
            if urls is None:
                raise DatabaseNotConfiguredError(
                    "no database configured: set DATABASE_URL (or AGENTPLANE_DATABASE_SECRET_NAME"
                    " in AWS), or run `agentplane dev` to start the embedded PostgreSQL"
                )
            self._database = Database(
                urls.app,
                min_size=self.settings.db_pool_min_size,
                max_size=self.settings.db_pool_max_size,
                connect_timeout=self.settings.db_connect_timeout_seconds,
                check_login_role=not self.settings.is_local,
            )
        return self._database

    @cached_property
    def signer(self) -> ApprovalSigner:
        """The Ed25519 key approvals are signed with (Secrets Manager in AWS, local file)."""
        from agentplane.actions.signing import ApprovalSigner

        s = self.settings
        if s.signing_key_secret_name:
            from aws_lambda_powertools.utilities import parameters

            pem = parameters.get_secret(s.signing_key_secret_name, max_age=3600)
            return ApprovalSigner.from_pem(str(pem))
        if s.is_local:
            return ApprovalSigner.local(s.data_dir)
        raise SigningKeyNotConfiguredError(
            "set AGENTPLANE_SIGNING_KEY_SECRET_NAME to sign approvals outside local mode"
        )

    @cached_property
    def vault(self) -> Vault:
        """The BYOK vault: KMS in AWS (`AGENTPLANE_KMS_KEY_ID`), else the local keyring."""
        from agentplane.vault.crypto import KmsWrapper, LocalKeyring
        from agentplane.vault.service import Vault

        s = self.settings
        if s.kms_key_id:
            import boto3

            return Vault([KmsWrapper(boto3.client("kms"), s.kms_key_id)])
        if s.is_local:
            return Vault([LocalKeyring.load_or_create(s.vault_keyring_path)])
        raise VaultNotConfiguredError(
            "set AGENTPLANE_KMS_KEY_ID to store provider keys outside local mode"
        )

    @cached_property
    def chat(self) -> ChatClient:
        """The model provider client (one connection pool per process)."""
        from agentplane.brain.provider import ChatClient

        s = self.settings
        return ChatClient(
            timeout_seconds=s.provider_timeout_seconds,
            max_retries=s.provider_max_retries,
            backoff_seconds=s.provider_backoff_seconds,
        )

    @cached_property
    def step_functions(self) -> StepFunctions:
        """The workflow state machine's client (local mode installs its own)."""
        from agentplane.workflows.sfn import StepFunctions

        arn = self.settings.workflow_state_machine_arn
        if not arn:
            raise WorkflowsNotConfiguredError(
                "no workflow state machine: set AGENTPLANE_WORKFLOW_STATE_MACHINE_ARN"
                " (template.yaml does), or run `agentplane dev`"
            )
        import boto3

        return StepFunctions(boto3.client("stepfunctions"), arn)

    @cached_property
    def event_publisher(self) -> EventPublisher:
        """Where events go: the EventBridge bus (`AGENTPLANE_EVENT_BUS_NAME`), else, in
        local mode, a log line and the in-process bus."""
        from agentplane.events.publisher import EventBridgePublisher, LocalBus

        s = self.settings
        if s.event_bus_name:
            import boto3

            return EventBridgePublisher(boto3.client("events"), s.event_bus_name)
        if s.is_local:
            return LocalBus()
        raise EventsNotConfiguredError(
            "set AGENTPLANE_EVENT_BUS_NAME to publish events outside local mode"
        )

    def use_step_functions(self, client: StepFunctions) -> None:
        """Run workflows on `client` (local mode's in-process interpreter)."""
        self.__dict__["step_functions"] = client

    async def _invoke_live(self, name: str | None, event: dict[str, str], what: str) -> None:
        """An async invoke of a function's `live` alias (its EventInvokeConfig applies),
        best effort: a failure is logged, and the caller's backstop picks the work up."""
        if not name:
            return
        import asyncio
        import json

        import boto3

        try:
            await asyncio.to_thread(
                boto3.client("lambda").invoke,
                FunctionName=name,
                Qualifier="live",
                InvocationType="Event",
                Payload=json.dumps(event).encode(),
            )
        except Exception as exc:
            from agentplane.observability import logger

            logger.warning(f"{what} failed", extra={"function": name, "error": str(exc)})

    async def kick_workflows(self) -> None:
        """Wake the callback dispatcher after a commit that wrote workflow callbacks:
        in-process locally, an async invoke of the workflows function in AWS. Best
        effort: the dispatcher's schedule delivers whatever a lost kick leaves."""
        if self.workflow_kicker is not None:
            self.workflow_kicker()
            return
        await self._invoke_live(
            self.settings.workflows_function_name, {"op": "dispatch"}, "workflow dispatcher kick"
        )

    async def kick_events(self) -> None:
        """Wake the events dispatcher after a commit that wrote events: in-process
        locally, an async invoke of the dispatching function in AWS. Best effort: its
        schedule publishes and delivers whatever a lost kick leaves."""
        if self.events_kicker is not None:
            self.events_kicker()
            return
        await self._invoke_live(
            self.settings.events_function_name, {"op": "events"}, "events dispatcher kick"
        )

    async def start_mirror_report(self, report_id: UUID) -> None:
        """Run a queued report off the request: in-process locally, an async invoke of
        the mirror function (`{"report_id"}`, with its failure destination) in AWS. A
        start that is lost leaves the report queued for the nightly run."""
        if self.mirror_runner is not None:
            self.mirror_runner(report_id)
            return
        await self._invoke_live(
            self.settings.mirror_function_name,
            {"report_id": str(report_id)},
            "mirror report start",
        )

    async def ring_doorbells(self) -> None:
        """After a commit that may have made actions claimable, ring their runners: in
        AWS through the WebSocket API's management API; locally the listener already
        heard the NOTIFY. Best effort: the cron rings what a lost kick leaves, and the
        runners' slow poll finds the rest."""
        url = self.settings.runner_websocket_url
        if self.runner_sockets is not None or not url:
            return
        from agentplane.sessions.apigw import ring

        try:
            await ring(self.database, self.socket_connections)
        except Exception as exc:
            from agentplane.observability import logger

            logger.warning("runner doorbells not rung", extra={"error": str(exc)})

    @cached_property
    def socket_connections(self) -> ApiGatewayConnections:
        """The WebSocket API's management client (`runner_websocket_url` in AWS)."""
        from agentplane.sessions.apigw import ApiGatewayConnections

        return ApiGatewayConnections.for_url(self.settings.runner_websocket_url or "")

    @cached_property
    def verifier(self) -> TokenVerifier:
        """Verifies user tokens."""
        from agentplane.auth.tokens import TokenVerifier

        return TokenVerifier(self.settings)

    async def close(self) -> None:
        """Close the pool if it was opened."""
        if self._database is not None:
            await self._database.close()
        if "chat" in self.__dict__:
            await self.chat.aclose()


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    """The process's runtime, built on first use from `get_settings()`: a function's HTTP
    app and its jobs share it, and its pool stays open between warm invocations."""
    return Runtime(get_settings())
