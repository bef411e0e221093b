"""Progress of long work (images predicted, bytes downloaded): a tqdm bar on a terminal, and a plain line every
30 seconds elsewhere, so that a nightly log shows where a run is without filling up with carriage returns; a run
shorter than that prints nothing there."""

from __future__ import annotations

import time
from typing import TextIO

from tqdm import tqdm

LOG_INTERVAL_S = 30.0


class Progress:
    """Counts done units of a known total and shows them on stream (None: nowhere); use as a context manager or
    call close(). interactive (default: stream is a terminal) chooses the bar over the periodic lines."""

    def __init__(self, total: int | None, desc: str, stream: TextIO | None, *, unit: str = "img",
                 interactive: bool | None = None, interval_s: float | None = None, clock=time.monotonic):
        self.stream = stream
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0
        if interactive is None:
            interactive = bool(getattr(stream, "isatty", lambda: False)())
        self.interval_s, self.clock = LOG_INTERVAL_S if interval_s is None else interval_s, clock
        self.started = self.last_line = clock()
        self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, unit_scale=unit == "B",
                        dynamic_ncols=True, leave=True) if interactive and stream is not None else None

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.stream is not None and self.clock() - self.last_line >= self.interval_s:
            self._line()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.stream is not None and self.last_line > self.started:  # a long run ends its lines with the total
            self._line()

    def _line(self) -> None:
        self.last_line = self.clock()
        meter = tqdm.format_meter(self.done, self.total, self.last_line - self.started, unit=self.unit,
                                  unit_scale=self.unit == "B", ncols=0)
        print(f"{self.desc}: {meter}", file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
