"""The commands that bring model files into the catalogue: `add-model` and `fetch` (cli.py builds the parser)."""

from __future__ import annotations

import sys

from .add_model import NewModel, add_model
from .baselines import DEFAULT_BASELINES
from .cli_catalogue import catalogue
from .errors import EvaluatorError, FetchError
from .fetch import FETCH_LOCK_FILE, fetch_model
from .locations import default_models_dir, inside
from .options import recipe_overrides
from .progress import Progress
from .recipes import check_tta


def cmd_add_model(args) -> int:
    if (args.documented is None) != (args.source is None):
        raise EvaluatorError("--documented TOP1 TOP5 and --source TEXT go together")
    new = NewModel(name=args.name, model_path=args.model_path, recipe=args.recipe,
                   overrides=recipe_overrides(lambda name: getattr(args, name)), precision=args.precision,
                   summary=args.summary, url=args.url, source=args.source, tta=check_tta(args.tta),
                   documented=tuple(args.documented) if args.documented else None)
    for line in add_model(args.baselines or DEFAULT_BASELINES, new, args.models_dir or default_models_dir()):
        print(line)
    return 0


def cmd_fetch(args) -> int:
    baselines = catalogue(args)
    models_dir = args.models_dir or default_models_dir()
    lock = models_dir / FETCH_LOCK_FILE
    fetched, failures = [], []
    for name in [args.model] if args.model else list(baselines.models):
        entry = baselines.model(name)
        for precision in [args.precision] if args.precision else list(entry.files):
            model_file = entry.file_for(precision)
            if not model_file.url:
                print(f"{name} {precision}: no download URL ({model_file.file} ships with the fixtures)")
                continue
            urls = [(model_file.url, model_file.file, model_file.sha256)]
            if model_file.prototxt:
                urls.append((model_file.url.rsplit("/", 1)[0] + "/" + model_file.prototxt, model_file.prototxt, None))
            for url, file, sha256 in urls:
                progress = _DownloadProgress(f"{name} {precision} {file}")
                try:
                    dest = inside(models_dir, models_dir / file)  # names are plain (validated); links are not
                    fetched.append(fetch_model(url, dest, sha256, lock_file=lock, progress=progress))
                    print(f"{name} {precision}: {fetched[-1]}")
                except FetchError as exc:  # one unreachable file does not stop the others
                    failures.append(f"{name} {precision} {file}: {exc}")
                    print(f"{name} {precision}: {exc}", file=sys.stderr)
                finally:
                    progress.close()
    if failures:
        where = f"; the {len(fetched)} that succeeded are in {models_dir}" if fetched else ""
        raise EvaluatorError(f"{len(failures)} of {len(failures) + len(fetched)} downloads failed{where}:\n  "
                             + "\n  ".join(failures))
    return 0


class _DownloadProgress:
    """fetch_model's progress callback shown as bytes, rate and ETA (evaluator.progress)."""

    def __init__(self, desc: str):
        self.desc, self.progress = desc, None

    def __call__(self, received: int, total: int | None) -> None:
        if self.progress is None:
            self.progress = Progress(total, self.desc, sys.stderr, unit="B")
        self.progress.update(received - self.progress.done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
