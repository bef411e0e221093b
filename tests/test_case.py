"""evaluator/case.py: one case identity, one text form, shared by cases, measured records and file names."""

from evaluator.baselines import Case
from evaluator.baselines_update import MeasuredRecord, record_relpath
from evaluator.case import CaseId


def test_case_id_text_is_the_pytest_id_and_the_record_name():
    case_id = CaseId("resnet50_chainer", "float", "1-crop", "ailia")
    assert str(case_id) == "resnet50_chainer-float-1-crop-ailia"
    assert record_relpath(case_id, "abc123") == "baselines/resnet50_chainer-float-1-crop-ailia-abc123.csv.gz"


def test_cases_and_measured_records_compare_by_their_identity():
    documented = Case("m", "uint8", "none", "litert", "documented")
    official = Case("m", "uint8", "none", "litert", "official")
    record = MeasuredRecord("m", "uint8", "none", "litert", "LiteRT 1.0", 0.5, 0.8, 700, "fp", "0.1.0")
    assert documented.case_id == "m-uint8-none-litert"
    assert official.case_id == "m-uint8-none-litert-official"
    assert documented != official  # the kind is part of a case
    assert documented.identity == official.identity == record.identity == CaseId("m", "uint8", "none", "litert")
    assert record.key == (CaseId("m", "uint8", "none", "litert"), "fp")
    assert sorted([CaseId("b", "x", "y", "z"), CaseId("a", "x", "y", "z")])[0].model == "a"
