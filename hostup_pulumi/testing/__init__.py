"""Offline HostUp API v2 simulator: a real HTTP server for tests, examples and demos.

Standard library only; it imports nothing else from ``hostup_pulumi``, so it stays an
independent fake of the real service.
"""

from .faults import Fault
from .recorder import RecordedRequest
from .records import DEFAULT_ACCOUNT
from .seed import DEMO_SEED
from .simulator import HostupSimulator

__all__ = ["DEFAULT_ACCOUNT", "DEMO_SEED", "Fault", "HostupSimulator", "RecordedRequest"]
