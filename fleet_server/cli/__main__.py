"""``python -m fleet_server.cli``: the same as ``palaute-server``."""

from fleet_server.cli import main

main()
