"""``python -m reunite.cli``: the same as the ``reunite`` command."""

import sys

from reunite.cli import main

if __name__ == "__main__":
    sys.exit(main())
