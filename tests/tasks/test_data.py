"""Data loading: digits, .npz and .csv files, the split, fingerprint and cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.data import (
    DataError,
    fingerprint_arrays,
    load_dataset,
    make_data_ref,
    split_arrays,
)
from tasks.spec import DataSpec


def test_digits_scaled_to_unit_range() -> None:
    ref = make_data_ref(DataSpec(source="digits"), seed=0)

    dataset = load_dataset(ref)

    assert ref.num_samples == 1797
    assert dataset.x_train.shape == (1438, 64)
    assert dataset.x_val.shape == (359, 64)
    assert dataset.x_train.dtype == np.float32
    assert dataset.x_train.min() == 0.0
    assert dataset.x_train.max() == 1.0
    assert dataset.y_train.shape == (1438, 1)


def test_digits_sample_shape_applied() -> None:
    ref = make_data_ref(DataSpec(source="digits", sample_shape=[8, 8, 1]), seed=0)

    dataset = load_dataset(ref)

    assert dataset.x_train.shape[1:] == (8, 8, 1)


def test_split_depends_only_on_seed() -> None:
    spec = DataSpec(source="digits", validation_split=0.25)

    first = load_dataset(make_data_ref(spec, seed=5))
    again = load_dataset(make_data_ref(spec, seed=5))
    other = load_dataset(make_data_ref(spec, seed=6))

    assert np.array_equal(first.x_val, again.x_val)
    assert not np.array_equal(first.x_val, other.x_val)
    assert len(first.x_val) == round(1797 * 0.25)
    assert len(first.x_train) + len(first.x_val) == 1797


def test_split_without_seed_is_recorded() -> None:
    ref = make_data_ref(DataSpec(source="digits"), seed=None)

    assert isinstance(ref.seed, int)


def test_dataset_loaded_once_per_process() -> None:
    ref = make_data_ref(DataSpec(source="digits"), seed=11)

    assert load_dataset(ref) is load_dataset(ref)


def test_fingerprint_tracks_content() -> None:
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.arange(6, dtype=np.int32)

    changed = x.copy()
    changed[0, 0] = 99

    assert fingerprint_arrays(x, y) == fingerprint_arrays(x.copy(), y.copy())
    assert fingerprint_arrays(x, y) != fingerprint_arrays(changed, y)
    assert fingerprint_arrays(x, y) != fingerprint_arrays(x.reshape(6, 2, 1), y)


def test_npz_loaded_with_keys(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, features=np.ones((20, 3)), target=np.arange(20) % 2)

    ref = make_data_ref(
        DataSpec(path=path, x_key="features", y_key="target", validation_split=0.5),
        seed=0,
    )
    dataset = load_dataset(ref)

    assert ref.source == "npz"
    assert dataset.x_train.shape == (10, 3)
    assert dataset.y_train.dtype == np.int32
    assert dataset.y_train.shape == (10, 1)


def test_csv_loaded_with_label_column(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    rows = "".join(f"{2 * i + 1},{i % 2},{2 * i + 2}\n" for i in range(20))
    path.write_text("f1,y,f2\n" + rows, encoding="utf-8")

    ref = make_data_ref(
        DataSpec(path=path, label_column="y", validation_split=0.5), seed=0
    )
    dataset = load_dataset(ref)
    features = np.concatenate([dataset.x_train, dataset.x_val])

    assert ref.source == "csv"
    assert features.shape == (20, 2)
    assert sorted(features[:, 0].tolist()) == [2.0 * i + 1 for i in range(20)]
    assert dataset.y_train.dtype == np.int32


def test_csv_non_numeric_cell_named(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("f1,label\n1,0\nseven,1\n", encoding="utf-8")

    with pytest.raises(
        DataError,
        match=r"data\.path: line 3, column 'f1' of .* is not a finite number\. "
        r"Received: 'seven'\. Encode every feature",
    ):
        make_data_ref(DataSpec(path=path), seed=0)


def test_changed_file_detected(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros((50, 2)), y=np.arange(50))
    ref = make_data_ref(DataSpec(path=path), seed=0)
    stale = ref.model_copy(update={"fingerprint": "0" * 64})

    with pytest.raises(
        DataError, match=r"data\.path: the data changed since the search"
    ):
        load_dataset(stale)


def test_split_too_few_validation_rejected(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros((40, 2)), y=np.arange(40) % 2)

    with pytest.raises(
        DataError,
        match=r"data\.validation_split: holds out only 8 of 40 samples for "
        r"validation, too few to choose the best trial on\. Received: "
        r"validation_split=0\.2\. Set validation_split between 0\.25 and 0\.75, "
        r"which keeps at least 10 samples on each side\.$",
    ):
        make_data_ref(DataSpec(path=path, validation_split=0.2), seed=0)


@pytest.mark.parametrize(
    ("num_samples", "split", "pattern"),
    [
        (
            40,
            0.9,
            r"data\.validation_split: holds out 36 of 40 samples for validation "
            r"and leaves only 4 for training\. Received: validation_split=0\.9\.",
        ),
        (
            12,
            0.5,
            r"data\.validation_split: 12 sample\(s\) are too few to hold out 10 "
            r"for validation and keep 10 for training; this split holds out 6 of "
            r"12\. Received: validation_split=0\.5\. Provide at least 20 samples\.",
        ),
    ],
    ids=["too-few-training", "too-few-samples"],
)
def test_split_too_small_rejected(
    tmp_path: Path, num_samples: int, split: float, pattern: str
) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros((num_samples, 2)), y=np.arange(num_samples) % 2)

    with pytest.raises(DataError, match=pattern):
        make_data_ref(DataSpec(path=path, validation_split=split), seed=0)


def test_split_limits_accepted() -> None:
    positions = np.arange(20)

    x_train, _, x_val, _ = split_arrays(positions, positions, 0.5, seed=0)

    assert len(x_train) == 10
    assert len(x_val) == 10
    with pytest.raises(DataError, match=r"holds out only 9 of 20 samples"):
        split_arrays(positions, positions, 0.45, seed=0)


def test_csv_binary_file_named(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, x=np.ones((30, 2), np.float32), y=np.ones(30, np.int64))

    with pytest.raises(
        DataError,
        match=r"data\.path: '.*data\.npz' is not UTF-8 text, so it cannot be read "
        r"as a \.csv file: byte 0x[0-9a-f]{2} at line \d+ is not valid UTF-8\. "
        r"Received: path='.*data\.npz' with source='csv'\. For a NumPy archive "
        r"written by numpy\.savez, set source = 'npz'; for a \.csv file, save it "
        r"with the UTF-8 encoding\.",
    ):
        make_data_ref(DataSpec(path=path, source="csv"), seed=0)


def test_csv_not_utf8_names_line(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes("f1,label\n1,0\ncaf\xe9,1\n".encode("latin-1"))

    with pytest.raises(
        DataError, match=r"byte 0xe9 at line 3 is not valid UTF-8"
    ):
        make_data_ref(DataSpec(path=path), seed=0)
