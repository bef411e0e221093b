"""Progress: a bar on a terminal, a line every 30 s elsewhere, nothing when there is no stream."""

import io

from evaluator.progress import Progress


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_without_a_terminal_a_line_every_interval_and_one_at_the_end():
    stream, clock = io.StringIO(), FakeClock()
    with Progress(1000, "resnet50 1-crop", stream, interactive=False, interval_s=30, clock=clock) as progress:
        for _ in range(10):  # 10 updates of 100 images, 10 s apart
            clock.now += 10
            progress.update(100)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4  # at 30, 60, 90 s and at the end
    assert lines[0].startswith("resnet50 1-crop:  30%") and "300/1000" in lines[0] and "img/s" in lines[0]
    assert "1000/1000" in lines[-1] and "\r" not in stream.getvalue()


def test_without_a_terminal_a_short_run_prints_nothing():
    stream, clock = io.StringIO(), FakeClock()
    with Progress(10, "quick", stream, interactive=False, clock=clock) as progress:
        clock.now += 29
        progress.update(10)
    assert stream.getvalue() == ""


def test_on_a_terminal_a_tqdm_bar_with_rate_and_eta():
    stream = io.StringIO()
    with Progress(50, "case", stream, interactive=True) as progress:
        progress.update(25)
        progress.update(25)
    text = stream.getvalue()
    assert "case: 100%" in text and "50/50" in text and "\r" in text


def test_no_stream_shows_nothing_and_still_counts():
    with Progress(5, "quiet", None) as progress:
        progress.update(5)
    assert progress.done == 5 and progress.bar is None
