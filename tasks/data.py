"""Loading the samples a search trains on, splitting them, and fingerprinting them.

Tasks pass a small `DataRef` around, never arrays. Each process loads a data set
once and keeps it in memory. A trial in another process loads it again from the
same reference and checks that the fingerprint still matches.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from tasks.spec import DataSpec

logger = logging.getLogger(__name__)

__all__ = ["DataError", "DataRef", "Dataset", "load_dataset", "make_data_ref"]


class DataError(ValueError):
    """Error for data that cannot be loaded as the spec describes it."""


class DataRef(BaseModel):
    """Reference to a data set: its source, its validation split and its fingerprint."""

    model_config = ConfigDict(frozen=True)

    source: str
    path: str | None = None
    x_key: str = "x"
    y_key: str = "y"
    label_column: str = "label"
    sample_shape: tuple[int, ...] | None = None
    validation_split: float
    seed: int
    fingerprint: str
    num_samples: int

    def source_key(self) -> str:
        """Return the part of the reference that decides which arrays are loaded."""
        return self.model_dump_json(
            include={"source", "path", "x_key", "y_key", "label_column", "sample_shape"}
        )


@dataclass(frozen=True)
class Dataset:
    """Training and validation arrays. Labels of one value each have shape (n, 1)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    fingerprint: str


# Reentrant, because a dataset load takes the lock again to load its arrays.
_cache_lock = threading.RLock()
_arrays: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
_datasets: dict[str, Dataset] = {}


def make_data_ref(data: DataSpec, seed: int | None) -> DataRef:
    """Load the spec's data once and return a reference to it.

    Without a seed, a random split seed is drawn and kept in the reference, so
    every trial of the search trains and validates on the same samples.

    Raises:
        DataError: the file cannot be read, lacks a key or column, or contains a
            different number of labels than samples.
    """
    sample_shape = tuple(data.sample_shape) if data.sample_shape else None
    draft = DataRef(
        source=str(data.source),
        path=str(data.path) if data.path is not None else None,
        x_key=data.x_key,
        y_key=data.y_key,
        label_column=data.label_column,
        sample_shape=sample_shape,
        validation_split=data.validation_split,
        seed=seed if seed is not None else secrets.randbelow(2**31),
        fingerprint="",
        num_samples=0,
    )
    x, _, fingerprint = _load_arrays_cached(draft)
    # Checked here, where the data is first loaded, so that the spec check and
    # `tuneflow validate` reject the split before any trial.
    _split_sizes(len(x), data.validation_split)
    return draft.model_copy(update={"fingerprint": fingerprint, "num_samples": len(x)})


def load_dataset(ref: DataRef) -> Dataset:
    """Return the split data set of `ref`, loading it at most once per process.

    Raises:
        DataError: the data cannot be loaded, or its content changed since the
            reference was made (the fingerprint differs).
    """
    key = ref.model_dump_json()
    with _cache_lock:
        cached = _datasets.get(key)
        if cached is not None:
            return cached

        x, y, fingerprint = _load_arrays_cached(ref)
        if fingerprint != ref.fingerprint:
            raise DataError(
                f"data.path: the data changed since the search started. Received: "
                f"{ref.path or ref.source!r} with fingerprint {fingerprint[:12]}, "
                f"expected {ref.fingerprint[:12]}. Restore the original file or "
                "start a new search."
            )
        x_train, y_train, x_val, y_val = split_arrays(
            x, y, ref.validation_split, ref.seed
        )
        dataset = Dataset(x_train, y_train, x_val, y_val, fingerprint)
        _datasets[key] = dataset
        return dataset


def split_arrays(
    x: np.ndarray, y: np.ndarray, validation_split: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle with `seed` and hold out `validation_split` of the samples.

    Raises:
        DataError: the split would leave fewer than MIN_SPLIT_SAMPLES samples for
            validation or for training.
    """
    num_samples = len(x)
    _, num_val = _split_sizes(num_samples, validation_split)
    order = np.random.default_rng(seed).permutation(num_samples)
    val_index, train_index = order[:num_val], order[num_val:]
    return x[train_index], y[train_index], x[val_index], y[val_index]


# Minimum number of samples the split leaves for validation, and for training. The
# best trial is chosen on the validation samples, so one or two would decide by chance.
MIN_SPLIT_SAMPLES = 10


def _split_sizes(num_samples: int, validation_split: float) -> tuple[int, int]:
    """Return the numbers of training and validation samples of the split.

    Raises:
        DataError: either number is below MIN_SPLIT_SAMPLES.
    """
    num_val = min(max(1, round(num_samples * validation_split)), num_samples - 1)
    num_val = max(num_val, 0)
    num_train = num_samples - num_val
    if num_val >= MIN_SPLIT_SAMPLES and num_train >= MIN_SPLIT_SAMPLES:
        return num_train, num_val

    received = f"Received: validation_split={validation_split!r}."
    if num_samples < 2 * MIN_SPLIT_SAMPLES:
        raise DataError(
            f"data.validation_split: {num_samples} sample(s) are too few to hold out "
            f"{MIN_SPLIT_SAMPLES} for validation and keep {MIN_SPLIT_SAMPLES} for "
            f"training; this split holds out {num_val} of {num_samples}. {received} "
            f"Provide at least {2 * MIN_SPLIT_SAMPLES} samples."
        )
    if num_val < MIN_SPLIT_SAMPLES:
        problem = (
            f"holds out only {num_val} of {num_samples} samples for validation, too "
            "few to choose the best trial on"
        )
    else:
        problem = (
            f"holds out {num_val} of {num_samples} samples for validation and leaves "
            f"only {num_train} for training"
        )
    # The splits that keep enough samples on both sides, rounded inwards.
    lowest = math.ceil(MIN_SPLIT_SAMPLES / num_samples * 1000) / 1000
    highest = math.floor((num_samples - MIN_SPLIT_SAMPLES) / num_samples * 1000) / 1000
    example = ", e.g. validation_split = 0.2" if lowest <= 0.2 <= highest else ""
    raise DataError(
        f"data.validation_split: {problem}. {received} Set validation_split between "
        f"{lowest:g} and {highest:g}, which keeps at least {MIN_SPLIT_SAMPLES} "
        f"samples on each side{example}."
    )


def fingerprint_arrays(x: np.ndarray, y: np.ndarray) -> str:
    """Return the sha256 of both arrays' dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for array in (x, y):
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
        digest.update(contiguous.tobytes())
    return digest.hexdigest()


def _load_arrays_cached(ref: DataRef) -> tuple[np.ndarray, np.ndarray, str]:
    key = ref.source_key()
    with _cache_lock:
        cached = _arrays.get(key)
        if cached is not None:
            return cached

        x, y = _load_arrays(ref)
        if ref.sample_shape is not None:
            x = _reshape_samples(x, ref.sample_shape)
        if y.ndim == 1:
            # A column of labels broadcasts against a multi-unit output for losses
            # such as "mse", where Keras 3 rejects shapes (n,) against (n, k).
            y = y.reshape(-1, 1)
        entry = (x, y, fingerprint_arrays(x, y))
        logger.info(
            "Loaded %s data: x %s %s, y %s %s, fingerprint %s.",
            ref.source,
            x.shape,
            x.dtype,
            y.shape,
            y.dtype,
            entry[2][:12],
        )
        _arrays[key] = entry
        return entry


def _load_arrays(ref: DataRef) -> tuple[np.ndarray, np.ndarray]:
    if ref.source == "digits":
        return _load_digits()
    if ref.path is None:
        raise DataError(f"data.path: source {ref.source!r} needs a path. Add path.")
    path = Path(ref.path)
    if not path.is_file():
        raise DataError(
            f"data.path: data file not found: {ref.path!r}. Fix the path or create "
            "the file."
        )
    if ref.source == "npz":
        return _load_npz(path, ref.x_key, ref.y_key)
    return _load_csv(path, ref.label_column)


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Return scikit-learn's 1,797 8x8 digit images as (n, 64) floats in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    return x, y


def _load_npz(path: Path, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(
            f"data.path: cannot read {str(path)!r} as a .npz archive ({error}). Save "
            "the arrays with numpy.savez(path, x=..., y=...)."
        ) from error

    with archive:
        for field, key in (("x_key", x_key), ("y_key", y_key)):
            if key not in archive.files:
                raise DataError(
                    f"data.{field}: no array named {key!r} in {str(path)!r}. "
                    f"Received: {field}={key!r}. Use one of {sorted(archive.files)}."
                )
        x = archive[x_key]
        y = archive[y_key]

    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise DataError(
            f"data.y_key: the number of labels differs from the number "
            f"of samples. Received: {x_key!r} with shape {x.shape} and {y_key!r} "
            f"with shape {y.shape} in {str(path)!r}. Give exactly one label per "
            "sample along the first axis."
        )
    return _as_features(x, f"{x_key!r} in {str(path)!r}"), _as_labels(y)


def _load_csv(path: Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"data.path: {str(path)!r} is not UTF-8 text, so it cannot be read as a "
            f".csv file: byte {data[error.start]:#04x} at line {line} is not valid "
            f"UTF-8. Received: path={str(path)!r} with source='csv'. For a NumPy "
            "archive written by numpy.savez, set source = 'npz'; for a .csv file, "
            "save it with the UTF-8 encoding."
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    rows = list(reader)

    if not header:
        raise DataError(
            f"data.path: {str(path)!r} is empty. Write a header row, then one row "
            "per sample."
        )
    if label_column not in header:
        raise DataError(
            f"data.label_column: no column named {label_column!r} in {str(path)!r}. "
            f"Received: label_column={label_column!r}. Use one of {header}."
        )

    label_index = header.index(label_column)
    features: list[list[float]] = []
    labels: list[float] = []
    unlabeled: list[int] = []
    for line_number, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(
                f"data.path: line {line_number} of {str(path)!r} has {len(row)} "
                f"values but the header has {len(header)}. Make every row as long "
                "as the header."
            )
        cell = row[label_index].strip()
        if cell:
            labels.append(_parse_cell(cell, line_number, label_column, path))
        else:
            unlabeled.append(line_number)
        features.append(
            [
                _parse_cell(value, line_number, name, path)
                for name, value in zip(header, row, strict=True)
                if name != label_column
            ]
        )

    if unlabeled:
        shown = ", ".join(str(n) for n in unlabeled[:5])
        raise DataError(
            f"data.label_column: the number of labels ({len(labels)}) differs from "
            f"the number of samples ({len(features)}) in {str(path)!r}: column "
            f"{label_column!r} is empty on line(s) {shown}. Fill in those labels or "
            "remove the rows."
        )
    if not features:
        raise DataError(
            f"data.path: {str(path)!r} has a header but no rows. Add one row per "
            "sample."
        )
    return np.asarray(features, dtype=np.float32), _as_labels(np.asarray(labels))


def _parse_cell(value: str, line_number: int, column: str, path: Path) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise DataError(
            f"data.path: line {line_number}, column {column!r} of {str(path)!r} is "
            f"not a finite number. Received: {value!r}. Encode every feature and "
            "label as a number."
        )
    return number


def _as_features(x: np.ndarray, where: str) -> np.ndarray:
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(
        x.dtype, np.complexfloating
    ):
        raise DataError(
            f"data.x_key: the samples must be real numbers. Received: dtype {x.dtype} "
            f"for {where}. Convert them to numbers before saving."
        )
    return x.astype(np.float32)


def _as_labels(y: np.ndarray) -> np.ndarray:
    """Return integral labels as int32 and others as float32."""
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return y.astype(np.int32)
    if not np.issubdtype(y.dtype, np.floating):
        raise DataError(
            f"data.y_key: the labels must be numbers. Received: dtype {y.dtype}. "
            "Encode class labels as integers 0..k-1."
        )
    if y.size and np.all(np.isfinite(y)) and np.all(np.mod(y, 1) == 0):
        return y.astype(np.int32)
    return y.astype(np.float32)


def _reshape_samples(x: np.ndarray, sample_shape: tuple[int, ...]) -> np.ndarray:
    sample_size = math.prod(x.shape[1:])
    if math.prod(sample_shape) != sample_size:
        raise DataError(
            f"data.sample_shape: {list(sample_shape)} contains "
            f"{math.prod(sample_shape)} values but each sample has {sample_size}. "
            f"Received: sample_shape={list(sample_shape)}. Use sizes whose product "
            f"is {sample_size}, e.g. [{sample_size}]."
        )
    return x.reshape((len(x), *sample_shape))
