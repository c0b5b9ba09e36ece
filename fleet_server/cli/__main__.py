"""``python -m fleet_server.cli``: the same as ``palaute-server``."""

from fleet_server.cli import main

if __name__ == "__main__":  # not when a child process (the ingest's decoder) imports the main module
    main()
