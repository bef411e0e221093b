"""The accuracy regression cases: one per model x precision x TTA x runtime in baselines.yaml.

Run one family with `pytest -k resnet50_chainer`; record measured values with `pytest --update-baselines`.
"""

import pytest

from conftest import record_measured, record_result, record_run


@pytest.mark.regression
def test_accuracy(regression_case, evaluator_suite, request, record_property):
    from evaluator.evaluate import case_result, failure_message

    outcome = evaluator_suite.run(regression_case)
    if evaluator_suite.image_shard:  # one shard of the images: predicted for `evaluator merge`, judged after it
        record_property("image_shard", str(evaluator_suite.image_shard))
        record_property("images_predicted", outcome.computed)
        record_run(request.config, regression_case, outcome)
        return
    record_run(request.config, regression_case, outcome.run)
    for judgement in outcome.judgements:
        record_property(f"{judgement.metric}_measured", round(judgement.measured, 6))
        record_property(f"{judgement.metric}_expected", judgement.expected)
        record_property(f"{judgement.metric}_band", round(judgement.band, 6))
    record_property("n_images", outcome.scores.n)
    record_property("images_predicted", outcome.run.computed)
    record_property("verdict_reason", outcome.verdict[1])
    if request.config.getoption("update_baselines") and not outcome.failed_images:
        record_measured(request.config, evaluator_suite, outcome)
    known_bad = outcome.choice.expected.known_bad
    verdict = "fail" if not outcome.passed else "xfail" if known_bad else "pass"
    record_result(request.config, case_result(evaluator_suite.baselines, outcome, verdict))
    if verdict == "fail":
        names = evaluator_suite.dataset().class_names
        pytest.fail(failure_message(outcome, evaluator_suite.reproduce(regression_case), names), pytrace=False)
    if known_bad:
        pytest.xfail(f"known bad, reproduced: {known_bad}")
