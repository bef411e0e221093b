"""The accuracy regression cases: one per model x precision x TTA x runtime in baselines.yaml.

Run one family with `pytest -k resnet50_chainer`; record measured values with `pytest --update-baselines`.
"""

import pytest

from conftest import record_measured


@pytest.mark.regression
def test_accuracy(regression_case, evaluator_suite, request, record_property):
    from evaluator.evaluate import failure_message

    __tracebackhide__ = True
    outcome = evaluator_suite.run(regression_case)
    for judgement in outcome.judgements:
        record_property(f"{judgement.metric}_measured", round(judgement.measured, 6))
        record_property(f"{judgement.metric}_expected", judgement.expected)
        record_property(f"{judgement.metric}_band", round(judgement.band, 6))
    record_property("n_images", outcome.scores.n)
    if request.config.getoption("update_baselines") and not outcome.failed_images:
        record_measured(request.config, outcome)
    if not outcome.passed:
        pytest.fail(failure_message(outcome, evaluator_suite.reproduce(regression_case)), pytrace=False)
    known_bad = outcome.choice.expected.known_bad
    if known_bad:
        pytest.xfail(f"known bad, reproduced: {known_bad}")
