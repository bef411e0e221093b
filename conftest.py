"""This repository's own test setup.

The suite's pytest options, fixtures and hooks live in the installed plugin evaluator/plugin.py (entry point
`pytest11` in pyproject.toml), so pytest knows them before it chooses the rootdir; do not import it here, or it
would be registered twice.
"""

import functools


@functools.cache
def _catalogue_model_names() -> tuple[str, ...]:
    from evaluator.baselines import DEFAULT_BASELINES, load_baselines

    return tuple(load_baselines(DEFAULT_BASELINES).models)


def pytest_make_parametrize_id(config, val, argname):
    """Unit-test ids never contain a catalogue model name (recipes share those names), so that
    `pytest -k resnet50_chainer` selects the regression cases of that model and nothing else."""
    if isinstance(val, str) and any(name in val.lower() for name in _catalogue_model_names()):
        return val.replace("_", "-")
    return None
