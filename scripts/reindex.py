"""Rebuild the FAISS index from the store: the same as ``reunite reindex``.

Usage: .venv/bin/python scripts/reindex.py   (settings from REUNITE_* environment variables)
"""

import sys

from reunite.cli import main

if __name__ == "__main__":
    sys.exit(main(["reindex", *sys.argv[1:]]))
