"""Interruptions and concurrency through `python -m evaluator predict` in real subprocesses.

A killed or interrupted run resumes from its finished chunks and ends with the same predictions.csv as an
uninterrupted run; two processes evaluating the same case at once run inference once and print the same scores.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_faults import artifact_dir, cli, fake_model, imagenet, predict_args

from evaluator.cli import main

N_IMAGES = 24
CHUNK = 4  # images per chunk and per model call: 6 chunks, each written to parts/ when it finishes


def predict_command(root: Path, model: Path, artifacts: Path) -> list[str]:
    return [sys.executable, "-m", "evaluator", *predict_arguments(root, model, artifacts)]


def predict_arguments(root: Path, model: Path, artifacts: Path) -> list[str]:
    return predict_args(root, model, artifacts, "--chunk-size", CHUNK, "--batch-size", CHUNK, "--checkpoint-s", 0)


def _default_sigint() -> None:
    """In the child: Ctrl-C's default action, as in a terminal. A suite started as a background job (bash without
    job control, `nohup ... &`) ignores SIGINT, and an ignored signal stays ignored across exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finished_chunks(artifacts: Path) -> list[Path]:
    return sorted(artifacts.glob("predictions/*/parts/part-*.npy"))


@pytest.fixture(scope="module")
def slow_case(tmp_path_factory):
    """(ImageNet root, predictions.csv bytes of an uninterrupted run)."""
    base = tmp_path_factory.mktemp("slow")
    root, _ = imagenet(base, n_images=N_IMAGES)
    assert main(predict_arguments(root, fake_model(base / "plain.fake.json"), base / "reference")) == 0
    (reference_csv,) = (base / "reference").glob("predictions/*/predictions.csv")
    return root, reference_csv.read_bytes()


@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_run_resumes_and_ends_like_an_uninterrupted_one(slow_case, tmp_path, capsys, signal_number):
    root, reference_csv = slow_case
    # the run stops in the middle whatever the machine's load: after two model calls (two chunks), further calls
    # wait until the test has sent its signal (at most one call per worker beyond the two gets through)
    hold = tmp_path / "hold"
    hold.touch()
    model = fake_model(tmp_path / "held.fake.json", calls_file=str(tmp_path / "calls.txt"), hold_file=str(hold),
                       hold_after_calls=2)
    artifacts = tmp_path / "artifacts"
    process = subprocess.Popen(predict_command(root, model, artifacts), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 120  # only a hung run reaches it
    while len(finished_chunks(artifacts)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal_number)
    hold.unlink()  # the calls in flight finish (a killed run has none)
    _, err = process.communicate(timeout=60)

    if signal_number == signal.SIGINT:
        assert process.returncode == 130, err
        assert err == "interrupted: finished chunks are kept; run the same command again to resume\n"
    else:
        assert process.returncode == -signal.SIGKILL, err
    n_reused = CHUNK * len(finished_chunks(artifacts))
    assert 2 * CHUNK <= n_reused < N_IMAGES  # stopped in the middle

    code, out, _ = cli(capsys, predict_arguments(root, model, artifacts))

    assert code == 0
    assert f"reused {n_reused} images from an earlier run, predicted {N_IMAGES - n_reused}" in out
    assert (artifact_dir(out) / "predictions.csv").read_bytes() == reference_csv


def test_two_processes_on_the_same_case_compute_once_and_agree(slow_case, tmp_path):
    root, _ = slow_case
    calls = tmp_path / "calls.txt"
    model = fake_model(tmp_path / "counted.fake.json", delay_s=0.2, calls_file=str(calls))
    command = predict_command(root, model, tmp_path / "artifacts")

    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=120)[0] for process in processes]

    assert [process.returncode for process in processes] == [0, 0]
    assert sum(int(n_images) for n_images in calls.read_text().split()) == N_IMAGES  # one run's worth
    scores = [re.findall(r"^(?:DATA CNT|TOP1|TOP5) .*$", out, re.M) for out in outputs]
    assert len(scores[0]) == 3 and scores[0] == scores[1]
    assert sum(f"reused {N_IMAGES} images from an earlier run, predicted 0" in out for out in outputs) == 1
