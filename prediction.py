"""Seed-compatible entry point: `python3 prediction.py -m MODEL` (see README)."""

import sys

from evaluator.seed_commands import prediction_main

if __name__ == "__main__":
    sys.exit(prediction_main())
