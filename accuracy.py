"""Seed-compatible entry point: `python3 accuracy.py -m MODEL` (see README)."""

import sys

from evaluator.seed_commands import accuracy_main

if __name__ == "__main__":
    sys.exit(accuracy_main())
