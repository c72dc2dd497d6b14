"""The application context: every expensive object of the process, made once, in one place, closed cleanly.

Settings, the credential, token providers, the worker threads for blocking calls, the ARM client, the
deployment service, the inference gateway and the audit store all hang off one `AppContext`. Each is made
on first use (the host starts even when a setting is wrong or Azure is unreachable; the routes then say
why), and `aclose()` releases them. Tests build their own context from a settings mapping and install it
for a block of code (`using`) or for the process (`install`); nothing else is process-wide.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ConfigurationError
from .identity import TokenProvider, make_credential
from .settings import Settings, load_settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from .arm import ArmClient
    from .audit_store import AuditStore
    from .deployments import DeploymentService
    from .inference import InferenceGateway
    from .projects import Project
    from .queue_clients import QueueClients
    from .serverless import ServerlessService
    from .serverless_inference import ServerlessGateway
    from .settings import Account
    from .shared_gateway import SharedGateway
    from .tenants import TenantTokens
    from .work_store import WorkStore

log = logging.getLogger(__name__)
_T = TypeVar("_T")
TOKEN_THREADS = 4  # token refreshes are rare (once per lifetime per tenant and scope) and short


class AppContext:
    """One process's objects, made lazily from one settings mapping."""

    def __init__(self, env: Mapping[str, str] | None = None, *, credential: TokenCredential | None = None) -> None:
        self._env = dict(os.environ if env is None else env)
        self._lock = threading.RLock()
        self._settings: Settings | ConfigurationError | None = None
        self._credential = credential
        self._pool: ThreadPoolExecutor | None = None
        self._token_pool: ThreadPoolExecutor | None = None
        self._providers: dict[str, TokenProvider] = {}
        self._arm: ArmClient | None = None
        self._tenants: TenantTokens | None = None
        self._tenant_arms: dict[str, ArmClient] = {}
        self._deployments: DeploymentService | None = None
        self._gateway: InferenceGateway | None = None
        self._shared_gateway: SharedGateway | None = None
        self._audit_store: AuditStore | None = None
        self._serverless: ServerlessService | None = None
        self._serverless_gateway: ServerlessGateway | None = None
        self._queues: QueueClients | None = None
        self._work_store: WorkStore | None = None

    # Made on first use

    @property
    def settings(self) -> Settings:
        """The validated settings; a bad setting is logged once and raised (500 ConfigurationError) each call."""
        if self._settings is None:
            with self._lock:
                if self._settings is None:
                    try:
                        self._settings = load_settings(self._env)
                    except ConfigurationError as error:
                        log.error("Configuration error: %s", error.message)
                        self._settings = error
        if isinstance(self._settings, ConfigurationError):
            raise self._settings
        return self._settings

    @property
    def credential(self) -> TokenCredential:
        return self._made("_credential", make_credential)

    def token_provider(self, scope: str) -> TokenProvider:
        """Bearer tokens for `scope`, one cached provider per scope."""
        provider = self._providers.get(scope)
        if provider is None:
            with self._lock:
                provider = self._providers.setdefault(scope, TokenProvider(scope, self.credential, self.refresh_token))
        return provider

    # Accounts in other tenants (services.tenants)

    @property
    def tenants(self) -> TenantTokens:
        def make() -> TenantTokens:
            from .tenants import TenantTokens

            return TenantTokens(self.settings, self.credential, self.refresh_token)

        return self._made("_tenants", make)

    def tokens_for(self, tenant: str | None, scope: str) -> TokenProvider:
        """Bearer tokens for `scope` in `tenant` (None: the Function App's own tenant, the same providers as
        `token_provider`); another tenant's come through the multi-tenant app's exchange."""
        return self.token_provider(scope) if tenant is None else self.tenants.provider(tenant, scope)

    def data_plane_tokens(self, account: Account) -> TokenProvider:
        """The account's data-plane tokens (`AZURE_OPENAI_SCOPE` in the account's tenant): `await .aget()` on the
        event loop, `()` in a worker thread. A ConfigurationError when a cross-tenant setting is missing."""
        from .tenants import tenant_of

        return self.tokens_for(tenant_of(self.settings, account), self.settings.azure_openai_scope)

    def arm_for(self, account: Account | Project) -> ArmClient:
        """The ARM client whose token is of `account`'s (or a Foundry project's) tenant."""
        from .tenants import tenant_of

        return self.arm_in(tenant_of(self.settings, account))

    def arm_in(self, tenant: str | None) -> ArmClient:
        """The ARM client whose token is of `tenant` (None: the home one; one per tenant, sharing the connection
        pool)."""
        if tenant is None:
            return self.arm
        client = self._tenant_arms.get(tenant)
        if client is None:
            from .arm import ArmClient

            settings, home = self.settings, self.arm
            credential = self.tenants.credential(tenant, settings.arm_scope)
            with self._lock:
                client = self._tenant_arms.get(tenant)
                if client is None:
                    client = ArmClient(
                        settings.arm_endpoint,
                        settings.arm_api_version,
                        credential,
                        settings.arm_scope,
                        tuning=settings.arm,
                        transport=home.transport,
                        tenant_id=tenant,
                    )
                    self._tenant_arms[tenant] = client
        return client

    @property
    def arm(self) -> ArmClient:
        def make() -> ArmClient:
            from .arm import ArmClient

            settings = self.settings
            return ArmClient(
                settings.arm_endpoint,
                settings.arm_api_version,
                self.credential,
                settings.arm_scope,
                tuning=settings.arm,
            )

        return self._made("_arm", make)

    @property
    def deployments(self) -> DeploymentService:
        def make() -> DeploymentService:
            from .deployments import DeploymentService

            return DeploymentService(self.settings, self.arm, arm_for=self.arm_for, tokens_for=self.tokens_for)

        return self._made("_deployments", make)

    @property
    def gateway(self) -> InferenceGateway:
        def make() -> InferenceGateway:
            from .inference import InferenceGateway

            settings = self.settings
            gateway = InferenceGateway(settings, self.data_plane_tokens)
            gateway.shared = self.shared_gateway
            return gateway

        return self._made("_gateway", make)

    @property
    def serverless(self) -> ServerlessService:
        """Foundry serverless endpoints: list, get, put, delete (blocking; run in a worker thread)."""

        def make() -> ServerlessService:
            from .serverless import ServerlessService

            return ServerlessService(self.settings, self.arm_for)

        return self._made("_serverless", make)

    @property
    def serverless_gateway(self) -> ServerlessGateway:
        """Chat with serverless endpoints: their keys kept in memory only, the inference gateway's connection pool."""

        def make() -> ServerlessGateway:
            from .serverless_inference import ServerlessGateway

            return ServerlessGateway(self.settings, self.serverless, self.gateway.upstream, self.run_blocking)

        return self._made("_serverless_gateway", make)

    @property
    def shared_gateway(self) -> SharedGateway:
        """Limits, failover trips (Redis when REDIS_HOST is set), the usage ledger and metrics."""

        def make() -> SharedGateway:
            from .shared_gateway import build_shared

            return build_shared(self.settings, lambda: self.credential)

        return self._made("_shared_gateway", make)

    @property
    def audit_store(self) -> AuditStore:
        def make() -> AuditStore:
            from .audit import record_view
            from .audit_store import store_for

            return store_for(self.settings, lambda: self.credential, record_view)  # type: ignore[no-any-return]

        return self._made("_audit_store", make)

    @property
    def queues(self) -> QueueClients:
        """The results queue (and the requests queue, for checks put back), in the Function App's storage."""

        def make() -> QueueClients:
            from .queue_clients import QueueClients

            return QueueClients(self.settings, lambda: self.credential)

        return self._made("_queues", make)

    @property
    def work_store(self) -> WorkStore:
        """Where queued requests and deploy intents are tracked (Table Storage)."""

        def make() -> WorkStore:
            from .work_store import make_work_store

            return make_work_store(self.settings, lambda: self.credential)

        return self._made("_work_store", make)

    def _made(self, attribute: str, make: Callable[[], _T]) -> _T:
        value = getattr(self, attribute)
        if value is None:
            with self._lock:
                value = getattr(self, attribute)
                if value is None:
                    value = make()
                    setattr(self, attribute, value)
        return value  # type: ignore[no-any-return]

    # Blocking calls

    async def run_blocking(self, call: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """Run a blocking call (ARM, Table Storage) in a worker thread, keeping the caller's context variables,
        so the event loop never waits on I/O."""
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    size = self.settings.blocking_threads
                    self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="blocking")
                pool = self._pool
        return await _in(pool, call, *args, **kwargs)

    async def refresh_token(self, call: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """A token refresh for the async path, in threads of its own: the blocking ones may all be held by
        changes that wait on ARM (`?wait`, the account lock), and inference must not wait behind them."""
        pool = self._token_pool
        if pool is None:
            with self._lock:
                if self._token_pool is None:
                    self._token_pool = ThreadPoolExecutor(max_workers=TOKEN_THREADS, thread_name_prefix="token")
                pool = self._token_pool
        return await _in(pool, call, *args, **kwargs)

    # Start and stop

    def start(self) -> None:
        """Report at start what would otherwise surface on the first request: a bad setting, no audit store.
        Nothing is imported or connected for it (a cold start pays only for parsing the settings)."""
        try:
            settings = self.settings
        except ConfigurationError:
            return  # logged by `settings`; the routes answer 500 ConfigurationError
        if not settings.storage.configured:
            self.audit_store  # noqa: B018 - the log store or the refusing one, each says so when made
        from .telemetry import configure_tracing

        configure_tracing(settings, lambda: self.credential)
        from .limiter import report_at_start

        report_at_start(settings.limit_rules, settings.redis_host)

    async def aclose(self) -> None:
        """Close async clients, then everything else."""
        gateway = self._gateway
        if gateway is not None:
            await gateway.aclose()
        shared = self._shared_gateway
        if shared is not None:
            await shared.aclose()
        self.close()

    def close(self) -> None:
        with self._lock:
            self._tenant_arms.clear()  # they share the home client's transport, closed with it
            for attribute in ("_arm", "_tenants", "_audit_store", "_queues", "_work_store", "_credential"):
                closer = getattr(getattr(self, attribute), "close", None)
                if callable(closer):
                    closer()
                setattr(self, attribute, None)
            for pool in (self._pool, self._token_pool):
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._token_pool = None
            self._deployments = None
            self._gateway = None
            if self._serverless_gateway is not None:
                self._serverless_gateway.forget_keys()
            self._serverless = self._serverless_gateway = None
            shared, self._shared_gateway = self._shared_gateway, None
            if shared is not None:
                shared.close()
            self._providers.clear()


async def _in(pool: ThreadPoolExecutor, call: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    bound = functools.partial(contextvars.copy_context().run, call, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool, bound)


_process: AppContext | None = None
_process_lock = threading.Lock()
_current: contextvars.ContextVar[AppContext | None] = contextvars.ContextVar("app_context", default=None)


def get_context() -> AppContext:
    """The context in force: one installed for this block of code (`using`), else the process's own."""
    scoped = _current.get()
    if scoped is not None:
        return scoped
    global _process
    if _process is None:
        with _process_lock:
            if _process is None:
                _process = AppContext()
    return _process


def install(context: AppContext | None) -> AppContext | None:
    """Make `context` the process's own (None: build a fresh one from the environment on next use); answers
    the one it replaces, for the caller to close."""
    global _process
    with _process_lock:
        previous, _process = _process, context
    return previous


@contextmanager
def using(context: AppContext) -> Iterator[AppContext]:
    """`context` in force for the code inside the block (and the tasks it starts)."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
