"""Import an archive of cases from a CSV or JSON-lines manifest: the same as ``reunite import``
(which calls ``reunite.importing.import_manifest``).

Usage: .venv/bin/python scripts/import_cases.py MANIFEST [--report PATH] [--workers N]
(settings from REUNITE_* environment variables; see ``reunite import --help``)
"""

import sys

from reunite.cli import main

if __name__ == "__main__":
    sys.exit(main(["import", *sys.argv[1:]]))
