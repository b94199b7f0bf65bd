"""The native plugin's host logic, in plain Python values: configuration, the client, cancel,
progress through the engine's log, and one-line errors.

:mod:`hostup_pulumi.provider._experimental` (the one module that touches Pulumi's
experimental provider API) translates the engine's requests into calls here; the rules
themselves are :mod:`hostup_pulumi.lifecycle`'s. Property names here are the lifecycle's
snake_case ones; the translation to the schema's camelCase names happens at the edge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from .. import lifecycle
from .._advice import Where
from ..client import AsyncHostupClient
from ..errors import AgentUnavailableError, HostupError
from ..lifecycle import Created, Diff, Failure, Refreshed
from ..settings import CONFIG_KEYS, Settings

__all__ = ["CONFIG_PROPERTIES", "Aborted", "EngineLog", "PluginHost"]

logger = logging.getLogger("hostup_pulumi.provider")
T = TypeVar("T")

#: The provider's inputs (schema ``provider.inputProperties``): the ``hostup:*`` config keys.
CONFIG_PROPERTIES = tuple(key.split(":", 1)[1] for key in CONFIG_KEYS)


class Aborted(Exception):
    """An operation failed with a message meant for the user as it is (no stack frames)."""


class EngineLog:
    """Where the plugin's messages go: the engine's log service (a status line shown next to
    the resource, or a warning). Subclassed by the transport; this one drops everything."""

    def status(self, urn: str, message: str) -> None:
        """Show ``message`` as the resource's current status (replaced by the next one)."""

    def info(self, urn: str, message: str) -> None:
        """Show ``message`` as an informational message of the resource (kept)."""

    def warning(self, urn: str, message: str) -> None:
        """Show ``message`` as a warning of the resource."""


class _ResourceReport(lifecycle.Report):
    """A lifecycle step's report, as messages of one resource in the engine's log."""

    def __init__(self, log: EngineLog, urn: str) -> None:
        self._log = log
        self._urn = urn

    def status(self, message: str) -> None:
        self._log.status(self._urn, message)

    def started(self, vps_id: str, pid: int) -> None:
        # Said before the engine records the resource, once and short: if the run is killed
        # now, the pid is what recovers it (the commands are in docs/reliability.md; the
        # pinned engine's --import-pending-creates drops the record). A status line: the
        # progress view shows it once; an info would be repeated under Diagnostics.
        self._log.status(
            self._urn,
            f"started pid {pid} on {vps_id} (if this run is killed before it records the "
            "command: docs/reliability.md)",
        )


def _config_text(value: Any) -> str | None:
    # Provider inputs arrive typed (YAML: 30) or as strings (config, generated SDKs' JSON).
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _config_map(values: Mapping[str, Any]) -> dict[str, str]:
    """Provider inputs (``apiKey``) as the namespaced config that Settings reads."""
    found = {f"hostup:{name}": _config_text(values.get(name)) for name in CONFIG_PROPERTIES}
    return {key: text for key, text in found.items() if text is not None}


def _user_message(exc: HostupError) -> str:
    return " ".join(str(exc).split("\n"))


class PluginHost:
    """One plugin process: one provider instance's settings, its client, its waits."""

    def __init__(self, log: EngineLog | None = None) -> None:
        self.log = log or EngineLog()
        self._config: dict[str, str] = {}
        self._client: AsyncHostupClient | None = None
        # An explicit provider takes its inputs, not the stack's hostup:* config: its errors
        # say so (set from the provider's URN, see note_provider).
        self._where = Where.PLUGIN
        self._running: set[asyncio.Task[Any]] = set()
        # The tasks that cancel() stopped (any other cancellation is not ours to explain).
        self._cancelled: set[asyncio.Task[Any]] = set()

    # -- configuration ---------------------------------------------------------------------

    @staticmethod
    def check_config(news: Mapping[str, Any]) -> list[Failure]:
        """Refuse a bad provider input, naming the property (missing credentials are not
        refused here: ``destroy`` needs none; the first request says how to set them)."""
        failures = []
        for name in CONFIG_PROPERTIES:
            config = _config_map({name: news.get(name)})
            if not config:
                continue
            try:
                Settings.resolve(config=config, env={}, require_credentials=False)
            except HostupError as exc:
                failures.append(Failure(name, f"{name}: {exc}"))
        return failures

    def note_provider(self, urn: str) -> None:
        """Which provider this plugin process serves: the engine's default one for the
        stack's config (named ``default...``), or an explicit one of the program's."""
        self._where = Where.PLUGIN if _name(urn).startswith("default") else Where.PROVIDER

    def configure(self, values: Mapping[str, Any]) -> None:
        """Keep the provider's inputs; the client is built on first use."""
        self._config = _config_map(values)
        self._client = None

    def client(self) -> AsyncHostupClient:
        """The client of this provider instance (its key and base URL only)."""
        if self._client is None:
            settings = Settings.resolve(config=self._config, where=self._where)
            self._client = AsyncHostupClient(settings=settings)
        return self._client

    # -- running operations ---------------------------------------------------------------

    async def _run(self, what: str, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` so that :meth:`cancel` can stop it; turn our errors into one line."""
        task = asyncio.ensure_future(work())
        self._running.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            if task not in self._cancelled:
                raise
            raise Aborted(
                f"{what} was cancelled (Ctrl-C) and nothing was recorded; a started command "
                "keeps running on the VPS: run `pulumi up` again to wait for it"
            ) from None
        except HostupError as exc:
            raise Aborted(_user_message(exc)) from None
        finally:
            self._running.discard(task)
            self._cancelled.discard(task)

    async def cancel(self) -> None:
        """The engine's cancel (first Ctrl-C, and every shutdown): stop the waits in flight."""
        for task in list(self._running):
            self._cancelled.add(task)
            task.cancel()

    # -- resources ------------------------------------------------------------------------

    @staticmethod
    def rules(token: str) -> lifecycle.ResourceRules:
        """The lifecycle of resource type ``token``."""
        try:
            return lifecycle.RESOURCES[token]
        except KeyError:
            raise Aborted(f"the hostup provider has no resource type {token}") from None

    def check(self, token: str, news: Mapping[str, Any]) -> tuple[dict[str, Any], list[Failure]]:
        """Local checks, defaults filled."""
        return self.rules(token).check(news)

    def diff(self, token: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Diff:
        """The lifecycle's replace rules."""
        return self.rules(token).diff(olds, news)

    async def create(self, token: str, urn: str, inputs: dict[str, Any]) -> Created:
        """Create; a long wait shows its progress as the resource's status."""
        rules = self.rules(token)
        report = _ResourceReport(self.log, urn)
        return await self._run(
            f"creating {_name(urn)}", lambda: rules.create(self.client(), inputs, report)
        )

    async def read(
        self, token: str, urn: str, resource_id: str, state: dict[str, Any]
    ) -> Refreshed:
        """Refresh or import; the lifecycle's warnings go to the engine."""
        rules = self.rules(token)
        read = await self._run(
            f"reading {_name(urn)}", lambda: rules.read(self.client(), resource_id, state)
        )
        for warning in read.warnings:
            self.log.warning(urn, warning)
        return read

    async def update(
        self, token: str, urn: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> dict[str, Any]:
        """Update in place (no request)."""
        rules = self.rules(token)
        return await self._run(
            f"updating {_name(urn)}", lambda: rules.update(self.client(), olds, news)
        )

    async def delete(self, token: str, resource_id: str, state: dict[str, Any]) -> None:
        """Forget the resource (no request, no credentials needed)."""
        self.rules(token)

    # -- functions ------------------------------------------------------------------------

    async def invoke(
        self, token: str, args: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, list[Failure]]:
        """Run a function; a refused argument or a HostUp error is a failure, one line."""
        function = lifecycle.FUNCTIONS.get(token)
        if function is None:
            return None, [Failure("", f"the hostup provider has no function {token}")]
        failures = function.check(args)
        if failures:
            return None, failures
        try:
            return await self._run(token, lambda: function.invoke(self.client(), args)), []
        except Aborted as exc:
            cause = exc.__context__
            prop = "vps_id" if isinstance(cause, AgentUnavailableError) else ""
            return None, [Failure(prop, str(exc))]


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] or "the resource"


def _type(urn: str) -> str:
    # urn:pulumi:stack::project::[parent$]type::name
    parts = urn.split("::")
    return parts[-2].rsplit("$", 1)[-1] if len(parts) >= 3 else "hostup:index:AgentCommand"
