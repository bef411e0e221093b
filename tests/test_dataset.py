"""Tests for evaluator/dataset.py: Kaggle layout, synset map, solution CSV, partial copies, fingerprint, subsets."""

from __future__ import annotations

import collections
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from imagenet_factory import IMAGE_SUBDIR, image_id, make_imagenet, real_imagenet_dir, synset_lines, wnid, write_image

from evaluator.dataset import (
    N_FULL_VAL,
    load_dataset,
    read_synset_mapping,
    read_val_solution,
    select,
    subset,
)
from evaluator.errors import DatasetError

WNIDS = tuple(wnid(i) for i in range(1000))
HEADER = "ImageId,PredictionString\n"


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(row + "\n" for row in rows))
    return path


def write_synsets(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


# --- layout -------------------------------------------------------------------------------------------------------


def test_load_dataset_reads_sorted_ids_labels_and_files(tmp_path):
    labels = make_imagenet(tmp_path, n_images=12)
    dataset = load_dataset(tmp_path)
    assert dataset.image_ids == tuple(image_id(i + 1) for i in range(12))
    assert dataset.labels.dtype == np.int32
    assert dataset.labels.tolist() == labels
    assert (dataset.n_listed, dataset.n_missing, dataset.unlisted_files) == (12, 0, ())
    assert dataset.wnids == WNIDS
    assert dataset.class_names[3] == "class 3, synthetic"
    assert dataset.image_dir == tmp_path / IMAGE_SUBDIR
    first = dataset.image_path(image_id(1))
    assert first == tmp_path / IMAGE_SUBDIR / f"{image_id(1)}.JPEG"
    assert dataset.file_sizes[0] == first.stat().st_size
    assert len(dataset) == 12
    assert not dataset.labels.flags.writeable


def test_missing_root_is_named_with_the_kaggle_instructions(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as error:
        load_dataset(root)
    message = str(error.value)
    assert f"ImageNet directory not found: {root}" in message
    assert "imagenet-object-localization-challenge" in message
    assert 'tar -xvzf imagenet_object_localization_patched2019.tar.gz "*val*"' in message


@pytest.mark.parametrize(
    ("relative", "what"),
    [
        ("LOC_synset_mapping.txt", "1000-line class list"),
        ("LOC_val_solution.csv", "ImageId,PredictionString"),
        (str(IMAGE_SUBDIR), "ILSVRC2012_val_00000001.JPEG"),
    ],
)
def test_each_missing_piece_is_named_with_what_goes_there(tmp_path, relative, what):
    make_imagenet(tmp_path, n_images=2)
    missing = tmp_path / relative
    if missing.is_dir():
        shutil.rmtree(missing)
    else:
        missing.unlink()
    with pytest.raises(DatasetError) as error:
        load_dataset(tmp_path)
    message = str(error.value)
    assert f"missing: {missing} (" in message
    assert what in message
    assert "imagenet-object-localization-challenge" in message


def test_load_dataset_without_root_uses_the_env_directory(tmp_path, monkeypatch):
    make_imagenet(tmp_path, n_images=3)
    monkeypatch.setenv("EVALUATOR_IMAGENET_DIR", str(tmp_path))
    assert load_dataset().root == tmp_path


# --- synset mapping -------------------------------------------------------------------------------------------------


def test_synset_mapping_reads_wnids_and_names_in_line_order(tmp_path):
    wnids, names = read_synset_mapping(write_synsets(tmp_path / "LOC_synset_mapping.txt", synset_lines()))
    assert wnids == WNIDS
    assert names[0] == "class 0, synthetic"
    assert len(names) == 1000


def test_synset_mapping_accepts_bom_and_crlf(tmp_path):
    path = tmp_path / "LOC_synset_mapping.txt"
    path.write_bytes(("\ufeff" + "\r\n".join(synset_lines()) + "\r\n").encode())
    wnids, names = read_synset_mapping(path)
    assert wnids == WNIDS
    assert names[999] == "class 999, synthetic"


def _broken_synsets(problem: str) -> list[str]:
    lines = synset_lines()
    if problem == "empty":
        return []
    if problem == "too few":
        return lines[:999]
    if problem == "too many":
        return lines + [f"{wnid(1000)} one too many"]
    if problem == "unsorted":
        lines[10], lines[11] = lines[11], lines[10]
    if problem == "duplicate":
        lines[11] = lines[10]
    if problem == "malformed":
        lines[11] = "n00000011"
    return lines


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("empty", "line 1: has 0 synset lines, expected exactly 1000"),
        ("too few", "line 999: has 999 synset lines, expected exactly 1000"),
        ("too many", "line 1001: has 1001 synset lines, expected exactly 1000"),
        ("unsorted", "line 12: n00000010 comes after n00000011"),
        ("duplicate", "line 12: duplicate wnid n00000010 (first on line 11)"),
        ("malformed", "line 12: expected '<wnid> <class name>'"),
    ],
)
def test_synset_mapping_problems_name_file_and_line(tmp_path, problem, expected):
    path = write_synsets(tmp_path / "LOC_synset_mapping.txt", _broken_synsets(problem))
    with pytest.raises(DatasetError) as error:
        read_synset_mapping(path)
    assert str(error.value).startswith(f"{path}, {expected}")


# --- solution CSV ---------------------------------------------------------------------------------------------------


def test_solution_label_is_the_first_wnid_of_the_prediction_string(tmp_path):
    rows = [f"img_b,{wnid(7)} 1 2 3 4 {wnid(3)} 5 6 7 8", f"img_a,{wnid(0)}"]
    path = write_csv(tmp_path / "LOC_val_solution.csv", rows)
    assert read_val_solution(path, WNIDS) == {"img_b": 7, "img_a": 0}


def test_solution_accepts_bom_and_crlf(tmp_path):
    path = tmp_path / "LOC_val_solution.csv"
    path.write_bytes(f"\ufeffImageId,PredictionString\r\nimg_a,{wnid(5)} 1 2 3 4\r\nimg_b,{wnid(6)}\r\n".encode())
    assert read_val_solution(path, WNIDS) == {"img_a": 5, "img_b": 6}


def test_solution_accepts_quoting_spaces_tabs_and_no_final_newline(tmp_path):
    unusual = [f'"img_{i}","{wnid(i * 7)} 1 2 3 4"' if i % 2 else f"img_{i}, {wnid(i * 7)}\t1 2" for i in range(20)]
    expected = {f"img_{i}": i * 7 for i in range(20)}

    assert read_val_solution(write_csv(tmp_path / "unusual.csv", unusual), WNIDS) == expected
    no_final_newline = tmp_path / "no_final_newline.csv"
    no_final_newline.write_text(HEADER + "\n".join(f"img_{i},{wnid(i * 7)} 1 2 3 4" for i in range(20)))
    assert read_val_solution(no_final_newline, WNIDS) == expected


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([f"img_a,{wnid(1)}", "img_b"], "line 3: expected 2 columns (ImageId,PredictionString), found 1"),
        ([f"img_a,{wnid(1)},extra"], "line 2: expected 2 columns (ImageId,PredictionString), found 3"),
        ([f"img_a,{wnid(1)}", ""], "line 3: expected 2 columns (ImageId,PredictionString), found 0"),
        ([f"img_a,{wnid(1)}", "img_b,  "], "line 3: empty PredictionString for img_b"),
        ([f"img_a,{wnid(1)}", "img_b,n99999999 1 2 3 4"], "line 3: unknown synset 'n99999999' for img_b"),
        (
            [f"img_a,{wnid(1)}", f"img_b,{wnid(2)}", f"img_a,{wnid(3)}"],
            "line 4: duplicate ImageId img_a (first on line 2)",
        ),
    ],
)
def test_solution_row_problems_name_file_and_line(tmp_path, rows, expected):
    path = write_csv(tmp_path / "LOC_val_solution.csv", rows)
    with pytest.raises(DatasetError) as error:
        read_val_solution(path, WNIDS)
    assert str(error.value).startswith(f"{path}, {expected}")


@pytest.mark.parametrize("header", ["ImageId,Label\n", "image_id,PredictionString\n", ""])
def test_solution_header_must_be_the_kaggle_one(tmp_path, header):
    path = write_csv(tmp_path / "LOC_val_solution.csv", [] if not header else [f"img_a,{wnid(1)}"], header=header)
    with pytest.raises(DatasetError) as error:
        read_val_solution(path, WNIDS)
    assert str(error.value).startswith(f"{path}, line 1: ")
    assert "ImageId,PredictionString" in str(error.value)


@pytest.mark.parametrize("bad_id", ["../escape", "sub/image", "sub\\image", "/etc/passwd", "C:image", "..", "a..b"])
def test_solution_refuses_ids_that_are_not_plain_file_names(tmp_path, bad_id):
    path = write_csv(tmp_path / "LOC_val_solution.csv", [f"img_a,{wnid(1)}", f'"{bad_id}",{wnid(2)}'])
    with pytest.raises(DatasetError) as error:
        read_val_solution(path, WNIDS)
    assert str(error.value).startswith(f"{path}, line 3: ImageId {bad_id!r} is not a plain file name")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"ImageId,PredictionString\nimg_a,n00000001\nimg_\xff,n00000002\n", ": not UTF-8 text"),
        (b"ImageId,PredictionString\nimg_a,n00000001\nimg_b,\"n00000002\"x\n", ", line 3: malformed CSV"),
    ],
)
def test_solution_that_is_not_utf8_csv_is_refused(tmp_path, content, expected):
    path = tmp_path / "LOC_val_solution.csv"
    path.write_bytes(content)
    with pytest.raises(DatasetError) as error:
        read_val_solution(path, WNIDS)
    assert str(error.value).startswith(f"{path}{expected}")


def test_solution_with_50000_rows_parses(tmp_path):  # its speed: bench/dataset.py
    rows = [f"{image_id(i + 1)},{wnid(i % 1000)} 85 1 499 272 {wnid(i % 1000)} 1 2 3 4" for i in range(N_FULL_VAL)]
    path = write_csv(tmp_path / "LOC_val_solution.csv", rows)
    labels = read_val_solution(path, WNIDS)
    assert len(labels) == N_FULL_VAL
    assert labels[image_id(1234)] == 233


# --- partial copies and listing -------------------------------------------------------------------------------------


def test_partial_copy_evaluates_present_and_listed_images(tmp_path):
    labels = make_imagenet(tmp_path, n_images=7, n_listed=20)
    dataset = load_dataset(tmp_path)
    assert dataset.image_ids == tuple(image_id(i + 1) for i in range(7))
    assert dataset.labels.tolist() == labels[:7]
    assert (dataset.n_listed, dataset.n_missing) == (20, 13)
    assert dataset.describe() == "7 of 20 images present (13 missing, 0 unlisted files ignored)"


def test_unlisted_and_non_image_files_are_ignored(tmp_path):
    make_imagenet(tmp_path, n_images=5, n_listed=3)
    image_dir = tmp_path / IMAGE_SUBDIR
    (image_dir / "notes.txt").write_text("not an image")
    (image_dir / "folder.JPEG").mkdir()
    dataset = load_dataset(tmp_path)
    assert dataset.image_ids == (image_id(1), image_id(2), image_id(3))
    assert dataset.unlisted_files == (f"{image_id(4)}.JPEG", f"{image_id(5)}.JPEG")
    assert dataset.describe() == "3 of 3 images present (0 missing, 2 unlisted files ignored)"


def test_image_extensions_are_matched_case_insensitively(tmp_path):
    make_imagenet(tmp_path, n_images=4)
    image_dir = tmp_path / IMAGE_SUBDIR
    for number, extension in [(1, ".jpg"), (2, ".PNG"), (3, ".jpeg")]:
        os.replace(image_dir / f"{image_id(number)}.JPEG", image_dir / f"{image_id(number)}{extension}")
    dataset = load_dataset(tmp_path)
    assert len(dataset.image_ids) == 4
    assert dataset.image_path(image_id(2)).name == f"{image_id(2)}.PNG"


def test_two_files_for_one_id_are_refused(tmp_path):
    make_imagenet(tmp_path, n_images=2)
    write_image(tmp_path / IMAGE_SUBDIR / f"{image_id(1)}.png", seed=0, image_format="PNG")
    with pytest.raises(DatasetError) as error:
        load_dataset(tmp_path)
    assert f"two files for image id {image_id(1)}" in str(error.value)


def test_no_listed_image_present_is_an_error(tmp_path):
    make_imagenet(tmp_path, n_images=0, n_listed=5)
    with pytest.raises(DatasetError) as error:
        load_dataset(tmp_path)
    assert "none of the 5 images listed" in str(error.value)
    assert str(tmp_path / "LOC_val_solution.csv") in str(error.value)


# --- image paths ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["../LOC_val_solution", "/etc/passwd", "..", "a/../../b", ""])
def test_image_path_refuses_ids_that_leave_the_image_dir(tmp_path, bad_id):
    make_imagenet(tmp_path, n_images=2)
    dataset = load_dataset(tmp_path)
    with pytest.raises(DatasetError) as error:
        dataset.image_path(bad_id)
    assert "would leave" in str(error.value)


def test_image_path_refuses_unknown_ids(tmp_path):
    make_imagenet(tmp_path, n_images=2, n_listed=3)
    dataset = load_dataset(tmp_path)
    with pytest.raises(DatasetError) as error:
        dataset.image_path(image_id(3))
    assert f"image id '{image_id(3)}' is not in the dataset" in str(error.value)


# --- fingerprint ----------------------------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_short_hex(tmp_path):
    make_imagenet(tmp_path, n_images=6)
    fingerprint = load_dataset(tmp_path).fingerprint
    assert fingerprint == load_dataset(tmp_path).fingerprint
    assert len(fingerprint) == 16
    assert int(fingerprint, 16) >= 0


def _append_one_byte(root: Path) -> None:
    with (root / IMAGE_SUBDIR / f"{image_id(1)}.JPEG").open("ab") as file:
        file.write(b"\0")


def _change_one_label(root: Path) -> None:
    csv_path = root / "LOC_val_solution.csv"
    text = csv_path.read_text()
    csv_path.write_text(text.replace(f"{image_id(2)},{wnid(1)}", f"{image_id(2)},{wnid(2)}"))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda root: (root / IMAGE_SUBDIR / f"{image_id(3)}.JPEG").unlink(), id="image removed"),
        pytest.param(lambda root: write_image(root / IMAGE_SUBDIR / f"{image_id(7)}.JPEG", seed=7), id="image added"),
        pytest.param(_append_one_byte, id="size changed"),
        pytest.param(_change_one_label, id="label changed"),
    ],
)
def test_fingerprint_changes_with_images_sizes_and_labels(tmp_path, change):
    make_imagenet(tmp_path, n_images=6, n_listed=8)
    before = load_dataset(tmp_path).fingerprint
    change(tmp_path)
    assert load_dataset(tmp_path).fingerprint != before


def test_fingerprint_ignores_unlisted_files(tmp_path):
    make_imagenet(tmp_path, n_images=6)
    before = load_dataset(tmp_path).fingerprint
    write_image(tmp_path / IMAGE_SUBDIR / "extra.JPEG", seed=99)
    assert load_dataset(tmp_path).fingerprint == before


# --- subset and select ----------------------------------------------------------------------------------------------


def test_subset_is_deterministic_sorted_and_has_its_own_fingerprint(tmp_path):
    make_imagenet(tmp_path, n_images=40)
    dataset = load_dataset(tmp_path)
    picked = subset(dataset, 10, seed=3)
    assert picked.image_ids == subset(dataset, 10, seed=3).image_ids
    assert picked.image_ids != subset(dataset, 10, seed=4).image_ids
    assert list(picked.image_ids) == sorted(picked.image_ids)
    assert len(picked.image_ids) == 10
    assert picked.labels.tolist() == [dataset.labels[dataset.image_ids.index(i)] for i in picked.image_ids]
    assert picked.fingerprint != dataset.fingerprint
    assert picked.fingerprint == select(dataset, picked.image_ids).fingerprint
    assert picked.describe() == (
        "10 images, class-stratified subset (seed 3), "
        "from 40 of 40 images present (0 missing, 0 unlisted files ignored)"
    )


def test_subset_spreads_evenly_over_classes(tmp_path):
    make_imagenet(tmp_path, n_images=40, n_classes=4)
    dataset = load_dataset(tmp_path)
    assert collections.Counter(subset(dataset, 8).labels.tolist()) == {0: 2, 1: 2, 2: 2, 3: 2}
    counts = collections.Counter(subset(dataset, 10).labels.tolist())
    assert sorted(counts.values()) == [2, 2, 3, 3]


def test_subset_seed_decides_images_within_a_class_and_classes_in_the_last_round(tmp_path):
    make_imagenet(tmp_path, n_images=40, n_classes=4)
    dataset = load_dataset(tmp_path)
    balanced = {subset(dataset, 8, seed=seed).image_ids for seed in range(5)}
    assert len(balanced) == 5
    classes_with_an_extra = set()
    for seed in range(10):
        counts = collections.Counter(subset(dataset, 10, seed=seed).labels.tolist())
        classes_with_an_extra.add(frozenset(label for label, count in counts.items() if count == 3))
    assert len(classes_with_an_extra) > 1


def test_subset_takes_all_of_a_small_class_first(tmp_path):
    make_imagenet(tmp_path, n_images=21, labels=[0] + [1] * 10 + [2] * 10)
    counts = collections.Counter(subset(load_dataset(tmp_path), 5, seed=1).labels.tolist())
    assert counts == {0: 1, 1: 2, 2: 2}


def test_subset_larger_than_the_dataset_keeps_everything(tmp_path):
    make_imagenet(tmp_path, n_images=5)
    dataset = load_dataset(tmp_path)
    assert subset(dataset, 50).fingerprint == dataset.fingerprint
    with pytest.raises(DatasetError, match="positive"):
        subset(dataset, 0)


def test_select_restricts_to_the_given_ids(tmp_path):
    labels = make_imagenet(tmp_path, n_images=6)
    dataset = load_dataset(tmp_path)
    chosen = select(dataset, [image_id(5), image_id(2)])
    assert chosen.image_ids == (image_id(2), image_id(5))
    assert chosen.labels.tolist() == [labels[1], labels[4]]
    assert chosen.image_path(image_id(5)) == dataset.image_path(image_id(5))
    assert chosen.describe().startswith("2 images, selection of 2 ids, from 6 of 6 images present")


def test_select_refuses_unknown_and_empty_ids(tmp_path):
    make_imagenet(tmp_path, n_images=3)
    dataset = load_dataset(tmp_path)
    with pytest.raises(DatasetError) as error:
        select(dataset, [image_id(1), "ILSVRC2012_val_99999999"])
    assert "1 image ids are not in the dataset" in str(error.value)
    assert "ILSVRC2012_val_99999999" in str(error.value)
    with pytest.raises(DatasetError, match="at least one"):
        select(dataset, [])


# --- the real 700-image slice ---------------------------------------------------------------------------------------


def test_real_slice_is_a_partial_copy_with_csv_labels():
    root = real_imagenet_dir()
    dataset = load_dataset(root)
    assert (len(dataset.image_ids), dataset.n_listed, dataset.n_missing) == (700, N_FULL_VAL, N_FULL_VAL - 700)
    assert dataset.describe() == "700 of 50,000 images present (49,300 missing, 0 unlisted files ignored)"
    assert dataset.image_ids[0] == "ILSVRC2012_val_00000001"
    expected = _labels_read_independently(root, dataset.image_ids[:20])
    assert dataset.labels[:20].tolist() == expected
    assert dataset.wnids[dataset.labels[0]] == "n01751748"  # val image 1 is a sea snake


def _labels_read_independently(root: Path, image_ids) -> list[int]:
    class_by_wnid = {line.split()[0]: i for i, line in enumerate(_lines(root / "LOC_synset_mapping.txt"))}
    wnid_by_id = dict(line.strip().split(",")[:2] for line in _lines(root / "LOC_val_solution.csv"))
    return [class_by_wnid[wnid_by_id[i].split()[0]] for i in image_ids]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()
