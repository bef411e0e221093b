"""The identity of a regression case (model, precision, TTA, runtime) and its one text form."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class CaseId:
    """model x precision x TTA x runtime; str() is the case id `resnet50_chainer-float-1-crop-ailia` (pytest -k)."""

    model: str
    precision: str
    tta: str
    runtime: str

    @property
    def identity(self) -> CaseId:
        """The bare identity, for comparing records of different kinds (a Case, a measured record) with each other."""
        return CaseId(self.model, self.precision, self.tta, self.runtime)

    def __str__(self) -> str:
        return f"{self.model}-{self.precision}-{self.tta}-{self.runtime}"
