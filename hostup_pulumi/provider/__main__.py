"""``python -m hostup_pulumi.provider ENGINE_ADDRESS``: the plugin process."""

from . import main

main()
