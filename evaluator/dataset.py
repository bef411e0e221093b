"""ImageNet validation set in the Kaggle layout: synset map, solution CSV, image listing, subsets and fingerprint.

Layout under the root directory (the Kaggle "imagenet-object-localization-challenge" files):
    LOC_synset_mapping.txt        1000 lines "n01440764 tench, Tinca tinca"; line order = class index
    LOC_val_solution.csv          "ImageId,PredictionString"; label = first wnid of PredictionString
    ILSVRC/Data/CLS-LOC/val/      ILSVRC2012_val_00000001.JPEG ... (a partial copy is fine)
The evaluated set is every image both present on disk and listed in the CSV, sorted by id. A symbolic link that
leaves the root directory is listed but refused (Dataset.refusals), never read.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from evaluator.errors import DatasetError
from evaluator.locations import default_imagenet_dir
from evaluator.sample import check_sample, is_sample

N_FULL_VAL = 50_000
N_CLASSES = 1000
SYNSET_MAPPING = "LOC_synset_mapping.txt"
VAL_SOLUTION = "LOC_val_solution.csv"
IMAGE_SUBDIR = Path("ILSVRC", "Data", "CLS-LOC", "val")
CSV_HEADER = ["ImageId", "PredictionString"]
IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".png"})

_WNID = re.compile(r"n\d{8}")
# Image ids become file names inside image_dir, so only plain names are accepted (no separators, drives or "..").
_PLAIN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# (path under the root, how to check it exists, what goes there)
_EXPECTED_LAYOUT = (
    (Path(SYNSET_MAPPING), Path.is_file, "the 1000-line class list, 'n01440764 tench, Tinca tinca' ..."),
    (Path(VAL_SOLUTION), Path.is_file, "the ground truth, header ImageId,PredictionString and 50,000 rows"),
    (IMAGE_SUBDIR, Path.is_dir, "the validation images ILSVRC2012_val_00000001.JPEG ... ILSVRC2012_val_00050000.JPEG"),
)
_KAGGLE_HINT = (
    'These come from the Kaggle "imagenet-object-localization-challenge" files '
    "(kaggle competitions download -c imagenet-object-localization-challenge): unzip them into {root} "
    f"({SYNSET_MAPPING}, {VAL_SOLUTION} and imagenet_object_localization_patched2019.tar.gz), then run there "
    'tar -xvzf imagenet_object_localization_patched2019.tar.gz "*val*". '
    f"To use another directory, set EVALUATOR_IMAGENET_DIR or pass the directory."
)


@dataclass(frozen=True, eq=False)
class Dataset:
    """The evaluated ImageNet validation images (present on disk and listed in the CSV) with their labels."""

    root: Path
    image_dir: Path
    # classes: index = position (line order of LOC_synset_mapping.txt)
    wnids: tuple[str, ...]
    class_names: tuple[str, ...]
    # evaluated images, sorted by id; the per-image fields below are aligned with image_ids
    image_ids: tuple[str, ...]
    labels: np.ndarray  # int32 class index
    file_names: tuple[str, ...]  # name inside image_dir (the extension varies)
    file_sizes: np.ndarray  # int64 bytes, part of the fingerprint
    file_mtimes: np.ndarray  # int64 st_mtime_ns: with the size, what tells a cached result that the file changed
    refusals: tuple[str, ...]  # '' or why the file is refused without reading it (a link leaving the root)
    fingerprint: str  # 16 hex chars over (id, file size, label) of every evaluated image
    # how the evaluated set relates to the CSV and the directory
    n_listed: int  # rows in LOC_val_solution.csv
    n_missing: int  # listed but absent on disk
    unlisted_files: tuple[str, ...]  # image files present but not in the CSV (ignored)
    selection: str = ""  # how subset()/select() narrowed the present images; "" when not narrowed

    def __len__(self) -> int:
        return len(self.image_ids)

    @cached_property
    def ids_key(self) -> str:
        """16 hex chars over (id, label) of every evaluated image: what cached predictions and decoded images are
        keyed on. Sizes are left out on purpose: each image's size and mtime are checked on their own, so a changed
        file invalidates its own cached results and no others."""
        return _digest(zip(self.image_ids, self.labels.tolist()))

    def stamps(self) -> np.ndarray:
        """int64 (n, 2): size and st_mtime_ns of each image as listed."""
        return np.stack([self.file_sizes, self.file_mtimes], axis=1)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {image_id: i for i, image_id in enumerate(self.image_ids)}

    def image_path(self, image_id: str) -> Path:
        """Path of one evaluated image; refuses ids that are not plain file names or not in the dataset."""
        if not _is_plain_id(image_id):
            raise DatasetError(f"image id {image_id!r} is not a plain file name: it would leave {self.image_dir}")
        index = self._index.get(image_id)
        if index is None:
            raise DatasetError(f"image id {image_id!r} is not in the dataset ({self.describe()}, {self.root})")
        return self.image_dir / self.file_names[index]

    def image_files(self) -> list[str]:
        """Paths of all evaluated images in image_ids order, as strings (a Path per image costs more than its use)."""
        directory = os.path.join(str(self.image_dir), "")
        return [directory + name for name in self.file_names]

    def describe(self) -> str:
        """One line for logs and reports: "700 of 50,000 images present (49,300 missing, 0 unlisted files ignored)"."""
        n_present = self.n_listed - self.n_missing
        present = (
            f"{n_present:,} of {self.n_listed:,} images present "
            f"({self.n_missing:,} missing, {len(self.unlisted_files):,} unlisted files ignored)"
        )
        if not self.selection:
            return present
        return f"{len(self.image_ids):,} images, {self.selection}, from {present}"


def load_dataset(root: str | Path | None = None) -> Dataset:
    """Validate the Kaggle layout under root (None: default_imagenet_dir()) and return the evaluated images."""
    root = default_imagenet_dir() if root is None else Path(root)
    if is_sample(root):
        check_sample()
    _check_layout(root)
    image_dir = root / IMAGE_SUBDIR
    wnids, class_names = read_synset_mapping(root / SYNSET_MAPPING)
    labels_by_id = read_val_solution(root / VAL_SOLUTION, wnids)
    files = _list_image_files(image_dir)
    root_inside = os.path.realpath(root)
    image_ids = tuple(sorted(image_id for image_id in files if image_id in labels_by_id))
    if not image_ids:
        raise DatasetError(
            f"{image_dir}: none of the {len(labels_by_id):,} images listed in {root / VAL_SOLUTION} is present "
            f"({len(files):,} image files found). " + _KAGGLE_HINT.format(root=root)
        )
    labels = np.array([labels_by_id[image_id] for image_id in image_ids], dtype=np.int32)
    refusals = tuple(_refusal(files[image_id], root_inside) for image_id in image_ids)
    # DirEntry.stat() is one stat per file (cached by the entry); a refused link is described by its own lstat
    stats = [files[image_id].stat(follow_symlinks=not refused) for image_id, refused in zip(image_ids, refusals)]
    file_sizes = np.array([stat.st_size for stat in stats], dtype=np.int64)
    file_mtimes = np.array([stat.st_mtime_ns for stat in stats], dtype=np.int64)
    return Dataset(
        root=root,
        image_dir=image_dir,
        wnids=wnids,
        class_names=class_names,
        image_ids=image_ids,
        labels=_read_only(labels),
        file_names=tuple(files[image_id].name for image_id in image_ids),
        file_sizes=_read_only(file_sizes),
        file_mtimes=_read_only(file_mtimes),
        refusals=refusals,
        fingerprint=_fingerprint(image_ids, file_sizes, labels),
        n_listed=len(labels_by_id),
        n_missing=len(labels_by_id) - len(image_ids),
        unlisted_files=tuple(sorted(entry.name for image_id, entry in files.items() if image_id not in labels_by_id)),
    )


def read_synset_mapping(path: str | Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Class wnids and names from LOC_synset_mapping.txt: exactly 1000 unique lines sorted by wnid."""
    path = Path(path)
    wnids: list[str] = []
    class_names: list[str] = []
    first_line: dict[str, int] = {}
    lines = _read_lines(path)
    for line_number, text in enumerate(lines, start=1):
        wnid, _, class_name = text.rstrip().partition(" ")
        if not _WNID.fullmatch(wnid) or not class_name.strip():
            raise _error(path, line_number, f"expected '<wnid> <class name>' like 'n01440764 tench', found {text!r}")
        if wnid in first_line:
            raise _error(path, line_number, f"duplicate wnid {wnid} (first on line {first_line[wnid]})")
        if wnids and wnid < wnids[-1]:
            raise _error(
                path, line_number, f"{wnid} comes after {wnids[-1]}: lines must be sorted by wnid (class index = line)"
            )
        first_line[wnid] = line_number
        wnids.append(wnid)
        class_names.append(class_name.strip())
    if len(wnids) != N_CLASSES:
        problem = f"has {len(wnids)} synset lines, expected exactly {N_CLASSES} (one per ImageNet class)"
        raise _error(path, N_CLASSES + 1 if len(wnids) > N_CLASSES else max(len(wnids), 1), problem)
    return tuple(wnids), tuple(class_names)


def read_val_solution(path: str | Path, wnids) -> dict[str, int]:
    """Class index per image id from LOC_val_solution.csv (first wnid of PredictionString), in file order."""
    path = Path(path)
    class_index = {wnid: i for i, wnid in enumerate(wnids)}
    # row by row with the csv module, which accepts any valid quoting and lets a problem name its line
    labels = {}
    first_line: dict[str, int] = {}
    with path.open(encoding="utf-8-sig", newline="") as file:
        rows = csv.reader(file, strict=True)
        try:
            _check_header(path, next(rows, None))
            for row in rows:
                line = rows.line_num
                image_id, label = _parse_solution_row(path, line, row, class_index)
                if image_id in first_line:
                    raise _error(path, line, f"duplicate ImageId {image_id} (first on line {first_line[image_id]})")
                labels[image_id] = label
                first_line[image_id] = line
        except csv.Error as exc:
            raise _error(path, rows.line_num, f"malformed CSV ({exc})") from None
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}: not UTF-8 text ({exc})") from None
    return labels


def subset(dataset: Dataset, n: int, seed: int = 0) -> Dataset:
    """Deterministic class-stratified subset of n images (all of them when n >= len(dataset)).

    Within each class images are ordered by a seeded hash of their id, then classes are visited round-robin (in a
    seeded order) until n images are picked: class counts differ by at most one, except for classes that run out of
    images. The pick depends only on the seed and the images, not on file or CSV order.
    """
    if n <= 0:
        raise DatasetError(f"subset size must be a positive number of images, got {n}")
    if n >= len(dataset.image_ids):
        return dataset
    members_by_class: dict[int, list[tuple[bytes, int]]] = {}
    for index, (image_id, label) in enumerate(zip(dataset.image_ids, dataset.labels.tolist())):
        members_by_class.setdefault(label, []).append((_seeded_hash(seed, image_id), index))
    picking_order = []
    for label, members in members_by_class.items():
        class_key = _seeded_hash(seed, f"class {label}")
        picking_order.extend(((rank, class_key), index) for rank, (_, index) in enumerate(sorted(members)))
    picking_order.sort()
    picked = sorted(index for _, index in picking_order[:n])
    return _restrict(dataset, picked, f"class-stratified subset (seed {seed})")


def select(dataset: Dataset, image_ids) -> Dataset:
    """Restrict the dataset to the given image ids; an id not in the dataset raises DatasetError."""
    wanted = set(image_ids)
    if not wanted:
        raise DatasetError("select() needs at least one image id")
    unknown = sorted(wanted.difference(dataset.image_ids))
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise DatasetError(f"{len(unknown):,} image ids are not in the dataset ({dataset.describe()}): {shown}")
    picked = [index for index, image_id in enumerate(dataset.image_ids) if image_id in wanted]
    return _restrict(dataset, picked, f"selection of {len(picked):,} ids")


def _check_layout(root: Path) -> None:
    hint = _KAGGLE_HINT.format(root=root)
    if not root.is_dir():
        raise DatasetError(f"ImageNet directory not found: {root}\n{hint}")
    missing = [
        f"{root / relative} ({what})"
        for relative, exists, what in _EXPECTED_LAYOUT
        if not exists(root / relative)
    ]
    if missing:
        raise DatasetError(f"ImageNet data incomplete, missing: {'; '.join(missing)}\n{hint}")


def _list_image_files(image_dir: Path) -> dict[str, os.DirEntry]:
    """Image files in image_dir by id (file stem); one scandir pass, no stat per file."""
    files: dict[str, os.DirEntry] = {}
    with os.scandir(image_dir) as entries:
        for entry in entries:
            stem, extension = os.path.splitext(entry.name)
            if extension.lower() not in IMAGE_EXTENSIONS or not entry.is_file():
                continue
            if stem in files:
                raise DatasetError(
                    f"{image_dir}: two files for image id {stem}: {files[stem].name} and {entry.name}; keep one"
                )
            files[stem] = entry
    return files


def _refusal(entry: os.DirEntry, root_inside: str) -> str:
    """Why a listed file must not be read ('' when it may): a symbolic link whose target lies outside the root."""
    if not entry.is_symlink():
        return ""
    target = os.path.realpath(entry.path)
    if os.path.commonpath([target, root_inside]) == root_inside:
        return ""
    return f"{entry.path}: symbolic link to {target}, outside the dataset directory {root_inside}; refused unread"


def _check_header(path: Path, header: list[str] | None) -> None:
    if header is None:
        raise _error(path, 1, f"empty file, expected the header {','.join(CSV_HEADER)}")
    if header != CSV_HEADER:
        raise _error(path, 1, f"header is {','.join(header)!r}, expected {','.join(CSV_HEADER)!r}")


def _parse_solution_row(path: Path, line: int, row: list[str], class_index: dict[str, int]) -> tuple[str, int]:
    if len(row) != 2:
        raise _error(path, line, f"expected 2 columns ({','.join(CSV_HEADER)}), found {len(row)}: {row!r}")
    image_id, prediction = row
    if not _is_plain_id(image_id):
        raise _error(path, line, f"ImageId {image_id!r} is not a plain file name (no path separators or '..')")
    tokens = prediction.split(maxsplit=1)
    if not tokens:
        raise _error(path, line, f"empty PredictionString for {image_id}")
    label = class_index.get(tokens[0])
    if label is None:
        raise _error(path, line, f"unknown synset {tokens[0]!r} for {image_id} (not in {SYNSET_MAPPING})")
    return image_id, label


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text file ({exc})") from None


def _is_plain_id(image_id: str) -> bool:
    return bool(_PLAIN_ID.fullmatch(image_id)) and ".." not in image_id


def _error(path: Path, line: int, problem: str) -> DatasetError:
    return DatasetError(f"{path}, line {line}: {problem}")


def _fingerprint(image_ids, file_sizes: np.ndarray, labels: np.ndarray) -> str:
    return _digest(zip(image_ids, file_sizes.tolist(), labels.tolist()))


def _digest(rows) -> str:
    """16 hex chars of sha256 over the rows, one tab-separated line each."""
    text = "".join("\t".join(map(str, row)) + "\n" for row in rows)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _seeded_hash(seed: int, text: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{text}".encode(), digest_size=8).digest()


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _restrict(dataset: Dataset, indices: list[int], selection: str) -> Dataset:
    image_ids = tuple(dataset.image_ids[i] for i in indices)
    labels = _read_only(dataset.labels[indices])
    file_sizes = _read_only(dataset.file_sizes[indices])
    return replace(
        dataset,
        image_ids=image_ids,
        labels=labels,
        file_names=tuple(dataset.file_names[i] for i in indices),
        file_sizes=file_sizes,
        file_mtimes=_read_only(dataset.file_mtimes[indices]),
        refusals=tuple(dataset.refusals[i] for i in indices),
        fingerprint=_fingerprint(image_ids, file_sizes, labels),
        selection=f"{dataset.selection}, then {selection}" if dataset.selection else selection,
    )
