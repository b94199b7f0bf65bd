"""hostup_pulumi: HostUp's VPS guest-agent API for Pulumi programs, on a typed REST client.

The public face: re-exports only. See the README for configuration and examples.
"""

from . import native
from ._pacing import PollSchedule
from ._retry import RetryPolicy
from ._version import __version__
from .client import AsyncHostupClient, HostupClient
from .errors import (
    AgentUnavailableError,
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CommandFailedError,
    CommandTimeoutError,
    ConfigurationError,
    ConflictError,
    FieldError,
    HostupError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
    RateLimitError,
    UnprocessableEntityError,
    ValidationError,
)
from .functions import (
    AgentPreconditionError,
    GetVpsAgentAvailabilityResult,
    RequireAgentAvailableResult,
    get_vps_agent_availabilities,
    get_vps_agent_availabilities_output,
    get_vps_agent_availability,
    get_vps_agent_availability_output,
    program_client,
    require_agent_available,
    require_agent_available_output,
)
from .models import (
    AgentAvailability,
    AgentExecOutput,
    AgentExecStarted,
    Billing,
    OperatingSystem,
    Resources,
    Vps,
)
from .native import Provider
from .resources import AgentCommand, AgentExecResult
from .settings import Settings

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AgentAvailability",
    "AgentCommand",
    "AgentExecOutput",
    "AgentExecResult",
    "AgentExecStarted",
    "AgentPreconditionError",
    "AgentUnavailableError",
    "AsyncHostupClient",
    "AuthenticationError",
    "BadRequestError",
    "Billing",
    "CommandFailedError",
    "CommandTimeoutError",
    "ConfigurationError",
    "ConflictError",
    "FieldError",
    "GetVpsAgentAvailabilityResult",
    "HostupClient",
    "HostupError",
    "InternalServerError",
    "NotFoundError",
    "OperatingSystem",
    "PermissionDeniedError",
    "PollSchedule",
    "Problem",
    "Provider",
    "RateLimitError",
    "RequireAgentAvailableResult",
    "Resources",
    "RetryPolicy",
    "Settings",
    "UnprocessableEntityError",
    "ValidationError",
    "Vps",
    "__version__",
    "get_vps_agent_availabilities",
    "get_vps_agent_availabilities_output",
    "get_vps_agent_availability",
    "get_vps_agent_availability_output",
    "native",
    "program_client",
    "require_agent_available",
    "require_agent_available_output",
]
