"""This repository's own test setup.

The suite's pytest options, fixtures and hooks live in the installed plugin evaluator/plugin.py (entry point
`pytest11` in pyproject.toml), so pytest knows them before it chooses the rootdir; do not import it here, or it
would be registered twice.
"""
