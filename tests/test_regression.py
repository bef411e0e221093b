"""The accuracy regression cases: one per model x precision x TTA x runtime in baselines.yaml.

The options, the `regression_case` parameters and the `evaluator_suite` fixture come from the installed pytest plugin
(evaluator/plugin.py). Run one family with `pytest -k resnet50_chainer`; record measured values with
`pytest --update-baselines`.
"""

import pytest


@pytest.mark.regression
def test_accuracy(regression_case, evaluator_suite, record_property):
    evaluator_suite.check(regression_case, record_property)
