"""Throughput benchmark: the pipeline's speed-up over the seed scripts' way, and how near it runs to the limit.

    python bench/throughput.py                  # every fixture model, memory and rescoring (about 5 minutes, 2 cores)
    python bench/throughput.py --models mobilenet_v1_025_128_quant --skip-memory
    python bench/throughput.py --models onnxzoo_mobilenetv2_int8 --skip-memory --batch-size 32   # another batch

The headline, per model: `python -m evaluator predict` against the seed-style loop given every core (the peer's
strongest configuration: ailia.Net defaults to num_thread=MULTITHREAD_AUTO; LiteRT gets num_threads=cores, ONNX
Runtime intra_op_num_threads=cores), with the figure against the loop at the runtime's default threads beside it,
and the cold and warm rates as fractions of the physical limit cores / (c_dec + c_inf).

Measured in one run, on the same images, model files and machine (../shared/fixtures: 700 real ImageNet JPEGs, the
real fixture models; generated JPEGs for the memory test); every target is a ratio of two figures of this run:

  c_dec   single-core seconds per image to decode and apply the TTA geometry (OpenCV limited to one thread; the
          better of two passes over the images)
  c_inf   single-thread seconds per image of the model alone, on preprocessed tensors in memory, in the batches the
          pipeline uses (batch 1 for fixed-batch TFLite files; the best of repeated passes over 256 images)
  limit   cores / (c_dec + c_inf) images per second: every core-second spent on useful work
  cold    predict() with an empty decode cache, as a fraction of the limit (better of two)
  warm    predict() again with the decode cache filled (predictions recomputed), as a fraction of the limit and of
          cores / c_inf, the limit of a run that decodes nothing (better of two)
  x4      cold and warm again on the same images listed four times under new ids (2,800 links to the same files):
          a run's fixed cost (opening, finalizing) spread over more images, as in a 50,000-image night; the targets
          are judged on the 700 images
  seed    the seed scripts' way (bench/seed_loop.py: one image at a time, batch 1, one text file per image) against
          `python -m evaluator predict`, both as whole commands from a fresh interpreter to the last file written,
          best of three; the seed loop runs with the runtime given every core (the headline speed-up) and with the
          runtime's default threads, as the seed scripts leave LiteRT and ONNX Runtime
  memory  peak RSS of `predict` on 500 and on 5,000 generated ImageNet-sized JPEGs
  rescore loading, scoring and paired-comparing 50,000 stored predictions, as a fraction of the time the fastest
          model measured takes to predict as many images warm

Both sides use the evaluator's recipe functions, so they do the same arithmetic; the benchmark checks that both seed
loops' top-5 equals the pipeline's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from evaluator.baselines import load_baselines
from evaluator.dataset import CSV_HEADER, IMAGE_SUBDIR, SYNSET_MAPPING, VAL_SOLUTION, Dataset, load_dataset
from evaluator.decode import decode_image
from evaluator.evaluate import score
from evaluator.locations import fixtures_dir
from evaluator.metrics import largest_class_changes, paired_compare, topk_hits
from evaluator.model_runtime import RuntimePool, inspect_model, model_batch_size
from evaluator.pipeline import predict
from evaluator.prediction_store import PredictionStore
from evaluator.predictions import Predictions
from evaluator.preprocess import geometry, normalize, to_input
from evaluator.recipes import get_recipe
from evaluator.run_spec import RunSpec, available_cores
from evaluator.runtimes import FORMAT_RUNTIMES, open_runtime
from evaluator.seed import read_prediction_texts

REPO = Path(__file__).resolve().parents[1]

TTA = "1-crop"
REPEATS = 4  # the x4 dataset: every fixture image listed this many times
INFERENCE_SAMPLE = 256  # images timed for c_inf (the model alone); enough for a stable per-image time
MEMORY_SIZES = (500, 5_000)
MEMORY_MODEL = "mobilenet_v2_10_224_quant"  # the largest input among the fixture models: the largest buffers
RESCORE_N = 50_000

TARGETS = {  # issue 4's, each a ratio of two figures measured in the same run
    "cold": 0.8,  # of cores / (c_dec + c_inf)
    "warm": 0.9,  # of cores / c_inf
    # whole commands, against the seed loop given every core (issue 4 asked for the same threads on both sides)
    "speed-up": {"mobilenet_v2_10_224_quant": 1.2, "mobilenet_v1_025_128_quant": 1.8},
    "rss growth": 0.10,  # peak RSS at 5,000 images over that at 500, less one
    # rescoring 50,000 predictions over predicting them warm with the fastest model measured: issue 4's "< 0.5 s"
    # was 4% of a warm run of mobilenet_v1_025_128_quant at 3,950 images/s
    "rescore": 0.04,
}


@dataclass
class ModelUnderTest:
    name: str
    path: Path
    recipe: str
    runtime: str


@dataclass
class ModelResult:
    model: ModelUnderTest
    size: int
    c_dec: float
    c_inf: float
    cold_rate: float
    warm_rate: float
    pipeline_s: float
    seed_default_threads_s: float
    seed_all_cores_s: float
    seed_agrees: bool  # both seed loops give the pipeline's top-5 for every image
    repeated_cold_rate: float
    repeated_warm_rate: float

    @property
    def limit(self) -> float:
        return CORES / (self.c_dec + self.c_inf)

    @property
    def inference_limit(self) -> float:
        return CORES / self.c_inf

    @property
    def speed_up(self) -> float:
        """The headline: the whole command against the seed loop given every core."""
        return self.seed_all_cores_s / self.pipeline_s

    @property
    def speed_up_default_threads(self) -> float:
        return self.seed_default_threads_s / self.pipeline_s


CORES = available_cores()


# --- the models ----------------------------------------------------------------------------------------------------


def fixture_models(names: list[str] | None) -> list[ModelUnderTest]:
    """The catalogue's fixture models (those whose file lies in ../shared/fixtures/models), in catalogue order."""
    models_dir = fixtures_dir() / "models"
    found = []
    for entry in load_baselines().models.values():
        for model_file in entry.files.values():
            path = models_dir / model_file.file
            if path.is_file() and (not names or entry.name in names):
                found.append(ModelUnderTest(entry.name, path, model_file.recipe, FORMAT_RUNTIMES[entry.format][0]))
    return found


# --- per-model measurements ----------------------------------------------------------------------------------------


def measure_model(model: ModelUnderTest, dataset: Dataset, repeated: Dataset, work: Path,
                  batch_size: int) -> ModelResult:
    recipe = get_recipe(model.recipe)
    spec = RunSpec(model.path, recipe, TTA, model.runtime, batch_size=batch_size)
    size = inspect_model(spec).input_size
    paths = [dataset.image_path(i) for i in dataset.image_ids]

    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    passes = []
    for _ in range(2):  # the better of two passes: a stray load on the machine must not flatter the fractions
        started = time.perf_counter()
        geometries = [geometry(decode_image(path), recipe, TTA, size=size) for path in paths]
        passes.append((time.perf_counter() - started) / len(paths))
    c_dec = min(passes)
    cv2.setNumThreads(previous)

    c_inf = inference_seconds_per_image(model, spec, geometries[:INFERENCE_SAMPLE], size)
    del geometries

    cold_s, warm_s, evaluator_run = cold_and_warm_seconds(spec, dataset, work / f"artifacts-{model.name}", attempts=2)
    repeated_cold_s, repeated_warm_s, _ = cold_and_warm_seconds(spec, repeated, work / f"repeated-{model.name}",
                                                                attempts=1)

    pipeline_s = best_of_three(lambda i: [sys.executable, "-m", "evaluator", "predict", "--model-path", str(model.path),
                                        "--recipe", model.recipe, "--tta", TTA, "--runtime", model.runtime,
                                        "--imagenet-dir", str(dataset.root), "--batch-size", str(batch_size),
                                        "--artifacts-dir", str(work / f"command-{model.name}-{i}")])
    seed_command = [sys.executable, str(REPO / "bench" / "seed_loop.py"), "--model-path", str(model.path),
                    "--recipe", model.recipe, "--tta", TTA, "--runtime", model.runtime,
                    "--imagenet-dir", str(dataset.root)]
    seed_all_cores_s = best_of_three(lambda i: [*seed_command, "--out", str(work / f"seed-all-{model.name}-{i}"),
                                                "--threads", str(CORES)])
    seed_default_threads_s = best_of_three(lambda i: [*seed_command, "--out", str(work / f"seed-{model.name}-{i}"),
                                                      "--threads", "0"])
    seed_agrees = all(same_top5(work / f"{prefix}-{model.name}-0", evaluator_run) for prefix in ("seed-all", "seed"))
    return ModelResult(model, size, c_dec, c_inf, len(paths) / cold_s, len(paths) / warm_s, pipeline_s,
                       seed_default_threads_s, seed_all_cores_s, seed_agrees,
                       len(repeated.image_ids) / repeated_cold_s, len(repeated.image_ids) / repeated_warm_s)


def same_top5(seed_out: Path, evaluator_run: Predictions) -> bool:
    seed_ids, seed_top5 = read_prediction_texts(seed_out)
    return np.array_equal(seed_ids, evaluator_run.image_ids) and np.array_equal(seed_top5, evaluator_run.top5_ids)


def cold_and_warm_seconds(spec: RunSpec, dataset: Dataset, artifacts: Path,
                          attempts: int) -> tuple[float, float, Predictions]:
    """predict() with an empty decode cache, then again with it filled (predictions recomputed): the best of each,
    and the predictions (the same every time)."""
    cold_s, warm_s = [], []
    with RuntimePool() as runtimes:  # the runtimes stay open from one run to the next, as in a pytest session
        for attempt in range(attempts):
            started = time.perf_counter()
            cold = predict(dataset, spec, artifacts / str(attempt), progress=False, runtimes=runtimes)
            cold_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            warm = predict(dataset, spec, artifacts / str(attempt), recompute=True, progress=False, runtimes=runtimes)
            warm_s.append(time.perf_counter() - started)
            assert warm.computed == len(dataset.image_ids)
            assert np.array_equal(warm.predictions.top5_ids, cold.predictions.top5_ids)
    return min(cold_s), min(warm_s), cold.predictions


def write_repeated_imagenet(dataset: Dataset, root: Path, repeats: int) -> Dataset:
    """The dataset's images listed `repeats` times under new ids: links to the same files, the same labels.

    The files are copied into root once and linked from there: a link leaving the dataset directory is refused."""
    image_dir = new_layout(root, dataset.root / SYNSET_MAPPING)
    originals = root / "originals"
    originals.mkdir()
    rows = []
    for copy in range(repeats):
        for image_id, label in zip(dataset.image_ids, dataset.labels.tolist()):
            if copy == 0:
                shutil.copy(dataset.image_path(image_id), originals / f"{image_id}.JPEG")
            new_id = f"{image_id}_{copy}"
            os.symlink(originals / f"{image_id}.JPEG", image_dir / f"{new_id}.JPEG")
            rows.append(f"{new_id},{dataset.wnids[label]} 1 1 10 10")
    write_val_solution(root, rows)
    repeated = load_dataset(root)
    assert not any(repeated.refusals), "the repeated images must be readable"
    return repeated


def new_layout(root: Path, synset_file: Path) -> Path:
    """A Kaggle layout under root with the given class list; returns its (empty) image directory."""
    image_dir = root / IMAGE_SUBDIR
    image_dir.mkdir(parents=True)
    shutil.copy(synset_file, root / SYNSET_MAPPING)
    return image_dir


def write_val_solution(root: Path, rows: list[str]) -> None:
    (root / VAL_SOLUTION).write_text(",".join(CSV_HEADER) + "\n" + "\n".join(rows) + "\n")


def inference_seconds_per_image(model: ModelUnderTest, spec: RunSpec, geometries: list, size: int) -> float:
    recipe = spec.recipe
    runtime = open_runtime(model.runtime, model.path, num_threads=1)
    try:
        images = np.stack([normalize(g, recipe) for g in geometries])
        batch = model_batch_size(spec, runtime)  # as the pipeline calls the runtime
        batches = [to_input(images[i:i + batch], recipe, runtime.input_spec) for i in range(0, len(images), batch)]
        runtime.run(batches[0])  # warm-up: first-call allocations are not the model's steady cost
        passes, spent = [], 0.0
        while len(passes) < 2 or spent < 2.0:  # the best pass of at least two seconds in all
            started = time.perf_counter()
            for inputs in batches:
                runtime.run(inputs)
            passes.append(time.perf_counter() - started)
            spent += passes[-1]
        return min(passes) / len(images)
    finally:
        runtime.close()


def best_of_three(command_for) -> float:
    """Wall seconds of the fastest of three runs of a whole command (a fresh output directory each time)."""
    times = []
    for i in range(3):
        command = command_for(i)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "CI": "1"})
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"benchmark command failed ({done.returncode}): {' '.join(command)}\n{done.stderr}")
    return min(times)


# --- memory --------------------------------------------------------------------------------------------------------


def write_synthetic_imagenet(root: Path, n_images: int, synset_file: Path, seed: int = 0) -> None:
    """A Kaggle-layout set of n ImageNet-sized JPEGs (500x375 and friends, ~100 KB each) with random labels."""
    image_dir = new_layout(root, synset_file)
    wnids = [line.split()[0] for line in synset_file.read_text().splitlines() if line.strip()]
    rng = np.random.default_rng(seed)
    rows = []
    sizes = ((500, 375), (375, 500), (500, 333), (500, 500))
    for number in range(1, n_images + 1):
        image_id = f"ILSVRC2012_val_{number:08d}"
        width, height = sizes[number % len(sizes)]
        coarse = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
        noisy = np.clip(smooth + rng.normal(0, 10, smooth.shape), 0, 255).astype(np.uint8)
        ok, encoded = cv2.imencode(".JPEG", noisy, [cv2.IMWRITE_JPEG_QUALITY, 90])
        (image_dir / f"{image_id}.JPEG").write_bytes(encoded.tobytes())
        wnid = wnids[rng.integers(len(wnids))]
        rows.append(f"{image_id},{wnid} 1 1 10 10")
    write_val_solution(root, rows)


def measure_memory(models: list[ModelUnderTest], work: Path) -> dict[int, float] | None:
    model = next((m for m in models if m.name == MEMORY_MODEL), models[0] if models else None)
    if model is None:
        return None
    synset_file = fixtures_dir() / "imagenet" / SYNSET_MAPPING
    peaks, rates = {}, {}
    for n in MEMORY_SIZES:
        root = work / f"synthetic-{n}"
        write_synthetic_imagenet(root, n, synset_file)
        done = subprocess.run([sys.executable, __file__, "--rss-child", str(root), model.name, str(model.path),
                               model.recipe, model.runtime, str(work / f"rss-artifacts-{n}")],
                              capture_output=True, text=True, env={**os.environ, "CI": "1"})
        if done.returncode != 0:
            raise SystemExit(f"memory child failed for {n} images:\n{done.stderr}")
        child = json.loads(done.stdout.strip().splitlines()[-1])
        peaks[n] = child["peak_rss_mb"]
        rates[n] = n / child["seconds"]
        shutil.rmtree(root)
    print(f"memory: {model.name}, peak RSS of a cold predict run: "
          + ", ".join(f"{n:,} images {peaks[n]:.0f} MB ({rates[n]:.0f} images/s)" for n in MEMORY_SIZES))
    return peaks


def rss_child(root: str, name: str, path: str, recipe: str, runtime: str, artifacts: str) -> None:
    dataset = load_dataset(root)
    started = time.perf_counter()
    predict(dataset, RunSpec(Path(path), get_recipe(recipe), TTA, runtime), Path(artifacts), progress=False)
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "n": len(dataset.image_ids),
                      "seconds": time.perf_counter() - started}))


def peak_rss_mb() -> float:
    # VmHWM, not getrusage: Linux carries ru_maxrss across fork + exec, so a child would report its parent's peak.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- rescoring -----------------------------------------------------------------------------------------------------


def synthetic_predictions(n: int, seed: int) -> Predictions:
    labels = np.random.default_rng(0).integers(0, 1000, n)  # the same ground truth for every run
    rng = np.random.default_rng(seed)
    top5 = rng.integers(0, 1000, (n, 5))
    hit = rng.random(n) < 0.75
    top5[hit, rng.integers(0, 5, int(hit.sum()))] = labels[hit]
    scores = np.sort(rng.random((n, 5)), axis=1)[:, ::-1]
    return Predictions([f"ILSVRC2012_val_{i:08d}" for i in range(1, n + 1)], labels, top5, scores, [""] * n)


def measure_rescoring(work: Path) -> float:
    """Best of three: load two stored 50,000-image artifacts, score one, compare them image by image and by class."""
    stores = []
    for seed in (1, 2):
        store = PredictionStore(work / f"rescore-{seed}")
        store.write_chunk(synthetic_predictions(RESCORE_N, seed))
        store.finalize({})
        stores.append(store)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        baseline, candidate = (store.load() for store in stores)
        score(candidate)
        paired_compare(baseline, candidate)
        baseline_hits, candidate_hits = (topk_hits(p.top5_ids, p.labels)[0] for p in (baseline, candidate))
        largest_class_changes(baseline.labels, baseline_hits, candidate.labels, candidate_hits)
        times.append(time.perf_counter() - started)
    print(f"rescoring {RESCORE_N:,} stored predictions (load 2 artifacts, score, paired McNemar, per-class): "
          f"{min(times):.3f} s")
    return min(times)


# --- report --------------------------------------------------------------------------------------------------------


def machine_line() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{CORES} cores available ({cpu}), Python {platform.python_version()}, {platform.system()}"


def print_table(results: list[ModelResult], n_images: int, batch_size: int) -> None:
    print(f"\n{n_images} fixture images, TTA {TTA}, batches of {batch_size}; rates in images/s; whole commands in s "
          "(best of three)\n")
    header = ("model", "size", "c_dec ms", "c_inf ms", "limit", "cold", "cold/limit", "warm", "warm/limit",
              "warm/(cores/c_inf)", f"x{REPEATS} cold/limit", f"x{REPEATS} warm/(cores/c_inf)", "seed s (all cores)",
              "seed s (default threads)", "evaluator s", "speed-up (all cores)", "speed-up (default threads)",
              "same top-5")
    rows = [(r.model.name, r.size, f"{r.c_dec * 1e3:.2f}", f"{r.c_inf * 1e3:.2f}", f"{r.limit:.0f}",
             f"{r.cold_rate:.0f}", f"{r.cold_rate / r.limit:.2f}", f"{r.warm_rate:.0f}", f"{r.warm_rate / r.limit:.2f}",
             f"{r.warm_rate / r.inference_limit:.2f}", f"{r.repeated_cold_rate / r.limit:.2f}",
             f"{r.repeated_warm_rate / r.inference_limit:.2f}", f"{r.seed_all_cores_s:.2f}",
             f"{r.seed_default_threads_s:.2f}", f"{r.pipeline_s:.2f}", f"{r.speed_up:.2f}x",
             f"{r.speed_up_default_threads:.2f}x", "yes" if r.seed_agrees else "NO") for r in results]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")


def print_headline(results: list[ModelResult]) -> None:
    print(f"\nheadline: the whole predict command against the seed loop given all {CORES} cores (against its runtime's "
          "default threads), and the cold and warm rates as fractions of the limit cores / (c_dec + c_inf)")
    width = max((len(r.model.name) for r in results), default=0)
    for r in results:
        print(f"  {r.model.name:<{width}}  {r.speed_up:.2f}x ({r.speed_up_default_threads:.2f}x)   "
              f"cold {r.cold_rate / r.limit:.2f}, warm {r.warm_rate / r.limit:.2f} of {r.limit:.0f} images/s")


def rescore_fraction(results: list[ModelResult], rescore_s: float) -> float | None:
    """Rescoring RESCORE_N predictions over predicting as many warm with the fastest model measured."""
    if not results:
        return None
    return rescore_s / (RESCORE_N / max(r.warm_rate for r in results))


def print_targets(results: list[ModelResult], peaks: dict[int, float] | None, rescore_s: float) -> bool:
    checks = []
    for r in results:
        checks.append((f"{r.model.name}: cold >= {TARGETS['cold']} of the limit", r.cold_rate / r.limit,
                       r.cold_rate / r.limit >= TARGETS["cold"]))
        fraction = r.warm_rate / r.inference_limit
        checks.append((f"{r.model.name}: warm >= {TARGETS['warm']} of cores/c_inf", fraction,
                       fraction >= TARGETS["warm"]))
        wanted = TARGETS["speed-up"].get(r.model.name)
        if wanted:
            checks.append((f"{r.model.name}: speed-up >= {wanted}x over the seed loop given all cores", r.speed_up,
                           r.speed_up >= wanted))
        checks.append((f"{r.model.name}: both seed loops and the evaluator give the same top-5", float(r.seed_agrees),
                       r.seed_agrees))
    if peaks:
        small, large = (peaks[n] for n in MEMORY_SIZES)
        growth = large / small - 1
        checks.append((f"peak RSS at {MEMORY_SIZES[1]:,} within {TARGETS['rss growth']:.0%} of {MEMORY_SIZES[0]:,}",
                       growth, growth <= TARGETS["rss growth"]))
    fraction = rescore_fraction(results, rescore_s)
    if fraction is not None:
        checks.append((f"rescoring {RESCORE_N:,} <= {TARGETS['rescore']:.2f} of predicting them warm (fastest model)",
                       fraction, fraction <= TARGETS["rescore"]))
    print("\ntargets:")
    for text, value, met in checks:
        print(f"  {'met ' if met else 'MISS'}  {text}: {value:.2f}")
    return all(met for _, _, met in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="catalogue names of fixture models (default: all)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--batch-size", type=int, default=RunSpec.batch_size,
                        help=f"images per model call in the pipeline and in c_inf (default {RunSpec.batch_size})")
    parser.add_argument("--rss-child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child)
        return 0
    images = fixtures_dir() / "imagenet"
    if not images.is_dir():
        raise SystemExit(f"{images} not found: the benchmark needs ../shared/fixtures (or set EVALUATOR_FIXTURES)")
    models = fixture_models(args.models)
    print(machine_line())
    dataset = load_dataset(images)
    for image_id in dataset.image_ids:  # both sides read from the page cache
        dataset.image_path(image_id).read_bytes()
    with tempfile.TemporaryDirectory(prefix="evaluator-bench-") as tmp:
        work = Path(tmp)
        repeated = write_repeated_imagenet(dataset, work / "repeated", REPEATS)
        results = []
        for model in models:
            print(f"measuring {model.name} ({model.runtime}) ...", flush=True)
            results.append(measure_model(model, dataset, repeated, work, args.batch_size))
        print_table(results, len(dataset.image_ids), args.batch_size)
        print_headline(results)
        print()
        peaks = None if args.skip_memory else measure_memory(models, work)
        rescore_s = measure_rescoring(work)
    return 0 if print_targets(results, peaks, rescore_s) else 1


if __name__ == "__main__":
    sys.exit(main())
