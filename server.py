"""Start the Giao Ban server with settings from GIAOBAN_* and the optional TOML file."""

import sys

from web.cli import main

if __name__ == "__main__":
    sys.exit(main([*sys.argv[1:], "serve"]))
