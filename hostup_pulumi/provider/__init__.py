"""The native ``hostup`` provider plugin: serves ``schema.json`` to the Pulumi engine, so that
Pulumi YAML programs (and any language) can use HostUp, with explicit provider instances
(several accounts in one program) and ``pulumi import``.

The engine starts it as ``pulumi-resource-hostup ENGINE_ADDRESS`` (a launcher that runs
``python -m hostup_pulumi.provider``; ``tools/install-plugin`` installs it). The resource rules
are :mod:`hostup_pulumi.lifecycle`'s, shared with the dynamic providers.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the plugin (the engine's address is the first argument)."""
    # Imported here: only the plugin process needs the gRPC server.
    from ._experimental import serve

    serve(list(sys.argv[1:] if argv is None else argv))
