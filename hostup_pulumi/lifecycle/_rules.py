"""The vocabulary of the rules: values not known yet, what a check, a diff, a create and a
read answer, how a step reports, and the base class of a resource's rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .._validation import validate_pid, validate_vps_id
from ..client import AsyncHostupClient
from ..errors import HostupError, ValidationError

__all__ = [
    "SILENT",
    "UNKNOWN",
    "Created",
    "Diff",
    "Failure",
    "Input",
    "Props",
    "Refreshed",
    "Report",
    "ResourceRules",
    "changed",
    "parse_id",
]

Props = dict[str, Any]


class _Unknown:
    """A value the engine does not know yet (during preview)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()


class Report:
    """Where a step tells the user how it is going; each host shows it its own way. This
    base class shows nothing."""

    def status(self, message: str) -> None:
        """A passing status line of a long step (replaced by the next)."""

    def started(self, vps_id: str, pid: int) -> None:
        """A command has started: said at once and kept, so that a run interrupted before
        the engine records the resource can still be recovered by its pid."""


SILENT = Report()


@dataclass(frozen=True)
class Failure:
    """An input that was refused, and why (shown next to the property's name)."""

    property: str
    reason: str


@dataclass(frozen=True)
class Diff:
    """What changed between the recorded state and the new inputs."""

    replaces: tuple[str, ...] = ()
    updates: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        """Whether anything changed."""
        return bool(self.replaces or self.updates)

    @property
    def diffs(self) -> tuple[str, ...]:
        """Every changed property."""
        return self.replaces + self.updates


@dataclass(frozen=True)
class Created:
    """A created resource: its id and its outputs (inputs included)."""

    id: str
    outputs: Props


@dataclass(frozen=True)
class Refreshed:
    """A read resource. ``id`` is None when it no longer exists; ``warnings`` are for the user."""

    id: str | None
    outputs: Props
    inputs: Props
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Input:
    """One input (or function argument): its check, whether it is required, whether a
    change replaces the resource, and its default."""

    name: str
    validate: Callable[[Any], Any]
    required: bool = False
    replaces: bool = False
    default: Any = None


def parse_id(resource_id: str) -> tuple[str, int]:
    """Split a resource id ``<vpsId>/<pid>``; a ValidationError says what an id looks like."""
    vps_id, _, pid = resource_id.partition("/")
    if not pid.isascii() or not pid.isdigit():
        raise ValidationError(
            f"resource id {resource_id!r} is not <vpsId>/<pid>, "
            "e.g. vps_01hxa3b4c5d6e7f8g9h0j1k2m3/4242"
        )
    return validate_vps_id(vps_id), validate_pid(int(pid))


def changed(olds: Mapping[str, Any], news: Mapping[str, Any], name: str) -> bool:
    """Whether input ``name`` differs (an unknown new value counts as a change)."""
    new = news.get(name)
    return new is UNKNOWN or olds.get(name) != new


class ResourceRules:
    """One resource's rules. Subclasses say which inputs there are and what the steps do."""

    #: The schema token, e.g. ``hostup:index:AgentCommand``.
    token: str = ""
    inputs: tuple[Input, ...] = ()
    #: Outputs that are Pulumi secrets whatever the inputs were.
    secret_outputs: frozenset[str] = frozenset()

    def check(self, news: Mapping[str, Any]) -> tuple[Props, list[Failure]]:
        """Validate the known inputs locally (unknown ones pass) and fill defaults."""
        failures: list[Failure] = []
        checked = dict(news)
        for spec in self.inputs:
            value = news.get(spec.name)
            if value is None:
                if spec.required:
                    failures.append(Failure(spec.name, f"{spec.name} is required"))
                elif spec.default is not None:
                    checked[spec.name] = spec.default
                continue
            if value is UNKNOWN:
                continue
            try:
                spec.validate(value)
            except HostupError as exc:
                failures.append(Failure(spec.name, str(exc)))
        return checked, failures

    def diff(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Diff:
        """Replacing inputs replace; the others update in place."""
        replaces = [s.name for s in self.inputs if s.replaces and changed(olds, news, s.name)]
        updates = [s.name for s in self.inputs if not s.replaces and changed(olds, news, s.name)]
        return Diff(tuple(replaces), tuple(updates))

    async def create(self, client: AsyncHostupClient, inputs: Props, report: Report) -> Created:
        """Create the resource (called with checked, known inputs)."""
        raise NotImplementedError

    async def read(self, client: AsyncHostupClient, resource_id: str, state: Props) -> Refreshed:
        """Refresh from HostUp; an empty ``state`` is an import by id."""
        raise NotImplementedError

    async def update(self, client: AsyncHostupClient, olds: Props, news: Props) -> Props:
        """Apply an in-place change; return the new outputs."""
        raise NotImplementedError

    async def delete(self, client: AsyncHostupClient, resource_id: str, state: Props) -> None:
        """Forget the resource: nothing on HostUp can be undone or needs deleting."""
        return None
