"""The pre-built hypermodels: search spaces, real builds, training and input checks.

The expected search spaces were read from KerasTuner 1.4.8 by building each of
its hypermodels with an empty `HyperParameters` and printing the registered
hyperparameters. KerasTuner is not installed for these tests.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from keras.src.utils import file_utils

import tuner_core
from tuner_core.applications import (
    HyperEfficientNet,
    HyperImageAugment,
    HyperResNet,
    HyperXception,
)
from tuner_core.applications._augment import RandAugment, make_transform_layer


def _choice(values: list[Any], default: Any, ordered: bool) -> tuple[str, dict]:
    return "Choice", {"values": values, "default": default, "ordered": ordered}


def _int(low: int, high: int, step: int, default: int) -> tuple[str, dict]:
    return "Int", {
        "min_value": low,
        "max_value": high,
        "step": step,
        "sampling": "linear",
        "default": default,
    }


def _float(
    low: float, high: float, step: float | None, default: float
) -> tuple[str, dict]:
    return "Float", {
        "min_value": low,
        "max_value": high,
        "step": step,
        "sampling": "linear",
        "default": default,
    }


# KerasTuner 1.4.8 declares `num_dense_layers` without a default, which means
# its minimum, 1. It stores the bools of `dense_use_bn` as the ints 1 and 0.
XCEPTION_FEATURES = {
    "activation": _choice(["relu", "selu"], "relu", False),
    "conv2d_num_filters": _choice([32, 64, 128], 64, True),
    "kernel_size": _choice([3, 5], 3, True),
    "initial_strides": _choice([2], 2, True),
    "sep_num_filters": _int(128, 768, 128, 256),
    "num_residual_blocks": _int(2, 8, 1, 4),
    "pooling": _choice(["avg", "flatten", "max"], "avg", False),
}
XCEPTION = {
    **XCEPTION_FEATURES,
    "num_dense_layers": _int(1, 3, 1, 1),
    "dropout_rate": _float(0.0, 0.6, 0.1, 0.5),
    "dense_use_bn": _choice([1, 0], 1, True),
    "learning_rate": _choice([0.001, 0.0001, 1e-05], 0.001, True),
}
RESNET_FEATURES = {
    "version": _choice(["v1", "v2", "next"], "v2", False),
    "conv3_depth": _choice([4, 8], 4, True),
    "conv4_depth": _choice([6, 23, 36], 6, True),
    "pooling": _choice(["avg", "max"], "avg", False),
}
RESNET = {
    **RESNET_FEATURES,
    "optimizer": _choice(["adam", "rmsprop", "sgd"], "adam", False),
    "learning_rate": _choice([0.1, 0.01, 0.001], 0.01, True),
}
EFFICIENTNET = {
    "version": _choice([f"B{index}" for index in range(8)], "B0", False),
    "pooling": _choice(["avg", "max"], "avg", False),
    "top_dropout_rate": _float(0.2, 0.8, 0.2, 0.2),
    "learning_rate": _choice([0.1, 0.01, 0.001], 0.01, True),
}
RAND_AUGMENT = {
    "augment_layers": _int(1, 3, 1, 1),
    "factor_rotate": _float(0.0, 0.5, None, 0.0),
    "factor_translate_x": _float(0.0, 0.4, None, 0.0),
    "factor_translate_y": _float(0.0, 0.4, None, 0.0),
    "factor_contrast": _float(0.0, 0.3, None, 0.0),
}
FIXED_AUGMENT = {
    "factor_rotate": _float(0.0, 0.5, 0.05, 0.0),
    "factor_translate_x": _float(0.0, 0.4, 0.05, 0.0),
    "factor_translate_y": _float(0.0, 0.4, 0.05, 0.0),
    "factor_contrast": _float(0.0, 0.3, 0.05, 0.0),
}
RAND_AUGMENT_RANGES = {
    "augment_layers": _int(2, 4, 1, 2),
    "factor_rotate": _float(0.1, 0.2, None, 0.1),
    "factor_translate_x": _float(0.0, 0.4, None, 0.0),
    "factor_translate_y": _float(0.0, 0.4, None, 0.0),
}

SPACE_CASES = [
    pytest.param(
        lambda: HyperXception(input_shape=(28, 28, 1), classes=10),
        XCEPTION,
        id="xception",
    ),
    pytest.param(
        lambda: HyperXception(input_shape=(28, 28, 1), include_top=False),
        XCEPTION_FEATURES,
        id="xception-no-top",
    ),
    pytest.param(
        lambda: HyperResNet(input_shape=(32, 32, 3), classes=4),
        RESNET,
        id="resnet",
    ),
    pytest.param(
        lambda: HyperResNet(input_shape=(32, 32, 3), include_top=False),
        RESNET_FEATURES,
        id="resnet-no-top",
    ),
    pytest.param(
        lambda: HyperEfficientNet(input_shape=(32, 32, 3), classes=3),
        EFFICIENTNET,
        id="efficientnet",
    ),
    pytest.param(
        lambda: HyperEfficientNet(
            input_shape=(32, 32, 3),
            classes=3,
            augmentation_model=HyperImageAugment(input_shape=(32, 32, 3)),
        ),
        {**RAND_AUGMENT, **EFFICIENTNET},
        id="efficientnet-augment",
    ),
    pytest.param(
        lambda: HyperImageAugment(input_shape=(32, 32, 3)),
        RAND_AUGMENT,
        id="augment",
    ),
    pytest.param(
        lambda: HyperImageAugment(input_shape=(32, 32, 3), augment_layers=0),
        FIXED_AUGMENT,
        id="augment-fixed",
    ),
    pytest.param(
        lambda: HyperImageAugment(
            input_shape=(32, 32, 3),
            augment_layers=[2, 4],
            rotate=[0.1, 0.2],
            contrast=None,
        ),
        RAND_AUGMENT_RANGES,
        id="augment-ranges",
    ),
]


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that downloads a file or opens a network connection."""

    def fail_download(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"keras get_file was called: {args} {kwargs}")

    def fail_connect(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a socket connection was attempted: {args}")

    monkeypatch.setattr(file_utils, "get_file", fail_download)
    monkeypatch.setattr(keras.utils, "get_file", fail_download)
    monkeypatch.setattr(socket.socket, "connect", fail_connect)


def _registered_space(hp: tuner_core.HyperParameters) -> dict[str, tuple[str, dict]]:
    space = {}
    for hyperparameter in hp.space:
        config = hyperparameter.get_config()
        assert config.pop("conditions") == [], hyperparameter.name
        config.pop("name")
        space[hyperparameter.name] = (type(hyperparameter).__name__, config)
    return space


def _build(hypermodel: tuner_core.HyperModel, **overrides: Any) -> keras.Model:
    """Build with the given hyperparameter values fixed, like user overrides."""
    hp = tuner_core.HyperParameters()
    for name, value in overrides.items():
        hp.Fixed(name, value)
    hp.mark_overrides()
    return hypermodel.build(hp)


@pytest.mark.parametrize(("make_hypermodel", "expected"), SPACE_CASES)
def test_space_matches_keras_tuner(
    make_hypermodel: Callable[[], tuner_core.HyperModel],
    expected: dict[str, tuple[str, dict]],
) -> None:
    hp = tuner_core.HyperParameters()
    make_hypermodel().build(hp)
    space = _registered_space(hp)

    assert list(space) == list(expected)
    for name, definition in expected.items():
        assert space[name] == definition, name


@pytest.mark.parametrize(
    ("make_hypermodel", "overrides", "image_shape", "classes"),
    [
        pytest.param(
            lambda: HyperXception(input_shape=(28, 28, 1), classes=10),
            {},
            (28, 28, 1),
            10,
            id="xception-28x28x1",
        ),
        pytest.param(
            lambda: HyperResNet(input_shape=(32, 32, 3), classes=4),
            {},
            (32, 32, 3),
            4,
            id="resnet",
        ),
        pytest.param(
            lambda: HyperResNet(input_shape=(32, 32, 3), classes=4),
            {"version": "next"},
            (32, 32, 3),
            4,
            id="resnext",
        ),
        pytest.param(
            lambda: HyperEfficientNet(input_shape=(32, 32, 3), classes=3),
            {},
            (32, 32, 3),
            3,
            id="efficientnet",
        ),
    ],
)
def test_model_trains_one_step(
    make_hypermodel: Callable[[], tuner_core.HyperModel],
    overrides: dict[str, str],
    image_shape: tuple[int, int, int],
    classes: int,
) -> None:
    rng = np.random.default_rng(0)
    images = rng.random((2, *image_shape), dtype="float32")
    labels = keras.utils.to_categorical([0, classes - 1], classes)
    model = _build(make_hypermodel(), **overrides)
    weights_before = [weight.numpy() for weight in model.trainable_weights]

    # Tracing the graph of ResNet or EfficientNet took 15 to 30 s on a 2-core
    # CPU, against 2 to 4 s for an eager step. The Xception search below
    # trains in graph mode.
    model.run_eagerly = True
    loss, accuracy = model.train_on_batch(images, labels)
    weights_after = [weight.numpy() for weight in model.trainable_weights]

    assert model.output_shape == (None, classes)
    assert math.isfinite(loss)
    assert 0.0 <= accuracy <= 1.0
    assert any(
        not np.array_equal(before, after)
        for before, after in zip(weights_before, weights_after)
    )


def test_default_compile_settings() -> None:
    xception = HyperXception(input_shape=(28, 28, 1), classes=10)
    resnet = HyperResNet(input_shape=(32, 32, 3), classes=4)
    efficientnet = HyperEfficientNet(input_shape=(32, 32, 3), classes=3)

    for model, optimizer_class, learning_rate in [
        (_build(xception), keras.optimizers.Adam, 1e-3),
        (_build(resnet), keras.optimizers.Adam, 0.01),
        (_build(resnet, optimizer="rmsprop"), keras.optimizers.RMSprop, 0.01),
        (_build(efficientnet), keras.optimizers.SGD, 0.01),
    ]:
        assert type(model.optimizer) is optimizer_class, model.name
        assert float(model.optimizer.learning_rate) == pytest.approx(learning_rate)
        assert model.loss == "categorical_crossentropy"

    assert float(_build(efficientnet).optimizer.momentum) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("overrides", "expected_layer"),
    [
        ({"version": "v1"}, "conv2_block3_out"),
        ({"version": "next", "pooling": "max"}, "conv5_block3_out"),
    ],
)
def test_resnet_versions_build(overrides: dict[str, str], expected_layer: str) -> None:
    hypermodel = HyperResNet(input_shape=(32, 32, 3), include_top=False)

    model = _build(hypermodel, **overrides)

    assert model.get_layer(expected_layer) is not None
    assert model.output_shape == (None, 2048)
    assert not model.compiled


def test_xception_selu_flatten_builds() -> None:
    hypermodel = HyperXception(input_shape=(28, 28, 1), classes=10)

    model = _build(hypermodel, activation="selu", pooling="flatten", num_dense_layers=3)

    assert model.get_layer("flatten").output.shape == (None, 7 * 7 * 512)
    assert model.get_layer("dense3").activation.__name__ == "selu"
    assert model.output_shape == (None, 10)


def test_user_learning_rate_overrides_xception() -> None:
    hp = tuner_core.HyperParameters()
    hp.Choice("learning_rate", values=[1e-2, 1e-3, 1e-4])
    hp.mark_overrides()

    model = HyperXception(input_shape=(28, 28, 1), classes=10).build(hp)
    declared = [entry for entry in hp.space if entry.name == "learning_rate"]

    assert len(declared) == 1
    assert declared[0].values == [0.01, 0.001, 0.0001]
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)


GUIDE_SUMMARY = """\
Search space summary
Default search space size: 1
learning_rate (Choice)
{'default': 0.01, 'conditions': [], 'values': [0.01, 0.001, 0.0001], 'ordered': True}
"""


def test_guide_xception_search_runs(tmp_path: Path, capsys: Any) -> None:
    rng = np.random.default_rng(0)
    images = rng.random((24, 28, 28, 1), dtype="float32")
    labels = rng.integers(0, 10, size=24)
    hp = tuner_core.HyperParameters()
    hp.Choice("learning_rate", values=[1e-2, 1e-3, 1e-4])
    tuner = tuner_core.RandomSearch(
        HyperXception(input_shape=(28, 28, 1), classes=10),
        hyperparameters=hp,
        tune_new_entries=False,
        objective="val_accuracy",
        max_trials=1,
        overwrite=True,
        directory=tmp_path,
        project_name="helloworld",
        loss=keras.losses.SparseCategoricalCrossentropy(),
    )

    tuner.search_space_summary()
    summary = capsys.readouterr().out
    tuner.search(
        images[:16],
        labels[:16],
        epochs=1,
        batch_size=8,
        validation_data=(images[16:], labels[16:]),
        verbose=0,
    )
    trials = tuner.oracle.trials.values()

    assert summary == GUIDE_SUMMARY
    assert len(trials) == 1
    for trial in trials:
        assert trial.status == tuner_core.TrialStatus.COMPLETED
        assert trial.values["learning_rate"] in [1e-2, 1e-3, 1e-4]
        assert trial.values["sep_num_filters"] == 256


def test_input_tensor_becomes_model_input() -> None:
    image = keras.Input(shape=(28, 28, 1))
    scaled = keras.layers.Rescaling(1 / 255)(image)

    direct = _build(HyperXception(input_tensor=image, include_top=False))
    chained = _build(HyperXception(input_tensor=scaled, include_top=False))

    assert direct.inputs[0] is image
    assert chained.inputs[0] is image
    assert any(isinstance(layer, keras.layers.Rescaling) for layer in chained.layers)


# Keras 3.15 saves each variable through np.array(), which numpy 2 reports
# with this warning once per variable.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_efficientnet_loads_local_weights(tmp_path: Path) -> None:
    backbone = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(224, 224, 3)
    )
    weights_path = tmp_path / "b0.weights.h5"
    backbone.save_weights(weights_path)

    hypermodel = HyperEfficientNet(
        input_shape=(32, 32, 3), classes=3, weights=weights_path
    )
    loaded = _build(hypermodel).get_layer("efficientnetb0")

    assert len(loaded.weights) == len(backbone.weights)
    for expected, actual in zip(backbone.weights, loaded.weights):
        np.testing.assert_array_equal(actual.numpy(), expected.numpy())


def test_efficientnet_weights_missing_version(tmp_path: Path) -> None:
    weights_path = tmp_path / "b1.weights.h5"
    weights_path.write_bytes(b"")
    hypermodel = HyperEfficientNet(
        input_shape=(32, 32, 3), classes=3, weights={"B1": weights_path}
    )

    with pytest.raises(ValueError, match="no file for version 'B0'"):
        _build(hypermodel)


@pytest.mark.parametrize(
    ("transform", "training", "changed"),
    [
        ("rotate", True, True),
        ("translate_y", True, True),
        ("rotate", False, False),
        ("contrast", False, False),
    ],
)
def test_augment_acts_only_in_training(
    transform: str, training: bool, changed: bool
) -> None:
    arguments = dict.fromkeys(["rotate", "translate_x", "translate_y", "contrast"])
    arguments[transform] = 0.5
    images = np.random.default_rng(0).random((4, 16, 16, 3), dtype="float32")

    for augment_layers in [0, 2]:
        hypermodel = HyperImageAugment(
            input_shape=(16, 16, 3), augment_layers=augment_layers, **arguments
        )
        model = _build(hypermodel, **{f"factor_{transform}": 0.5, "augment_layers": 2})
        outputs = keras.ops.convert_to_numpy(model(images, training=training))

        assert outputs.shape == images.shape
        assert (not np.allclose(outputs, images)) == changed, augment_layers


def test_translate_x_shifts_along_width() -> None:
    # Every row is constant, so a horizontal shift with reflected borders
    # leaves the image unchanged, but a vertical one does not.
    rows = np.linspace(0.0, 1.0, 16, dtype="float32")
    images = np.broadcast_to(rows[None, :, None, None], (4, 16, 16, 1)).copy()

    horizontal = make_transform_layer("translate_x", 0.4, seed=1)(images, training=True)
    vertical = make_transform_layer("translate_y", 0.4, seed=1)(images, training=True)

    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(horizontal), images, atol=1e-5
    )
    assert not np.allclose(keras.ops.convert_to_numpy(vertical), images)


def test_rand_augment_config_round_trip() -> None:
    layer = RandAugment(["rotate", "contrast"], [0.25, 0.0], seed=3)

    restored = RandAugment.from_config(layer.get_config())

    assert restored.transforms == ["rotate", "contrast"]
    assert restored.factors == [0.25, 0.0]
    assert restored.seed == 3
    assert restored.transform_indices == [0]


IMAGE = {"input_shape": (28, 28, 1)}

CONSTRUCTOR_ERRORS = [
    (HyperResNet, {"classes": 10}, r"`input_shape` or `input_tensor` is required"),
    (HyperXception, IMAGE, r"`classes` is required .*classes=None"),
    (HyperResNet, {**IMAGE, "classes": 0}, r"`classes` must be an int .* classes=0"),
    (HyperXception, {**IMAGE, "classes": 2.5}, r"classes=2.5"),
    (HyperXception, {**IMAGE, "classes": True}, r"classes=True"),
    (
        HyperResNet,
        {"input_shape": (28, 28), "classes": 10},
        r"\(height, width, channels\).*input_shape=\(28, 28\)",
    ),
    (
        HyperResNet,
        {"input_shape": (28, -1, 1), "classes": 10},
        r"positive int or None.*\(28, -1, 1\)",
    ),
    (
        HyperXception,
        {"input_tensor": np.zeros((1, 28, 28, 1)), "classes": 10},
        r"`input_tensor` must be a Keras tensor.*ndarray",
    ),
    (
        HyperXception,
        {**IMAGE, "input_tensor": keras.Input(shape=(32, 32, 1)), "classes": 10},
        r"same image shape",
    ),
    (
        HyperEfficientNet,
        {"input_tensor": keras.Input(shape=(32,)), "classes": 3},
        r"\(batch, height, width, channels\)",
    ),
    (HyperEfficientNet, IMAGE, r"`classes` is required"),
    (
        HyperEfficientNet,
        {**IMAGE, "classes": 3, "augmentation_model": "flip"},
        r"`augmentation_model` must be .*'flip'",
    ),
    (
        HyperEfficientNet,
        {**IMAGE, "classes": 3, "weights": "imagenet"},
        r"never downloads weights",
    ),
    (
        HyperEfficientNet,
        {**IMAGE, "classes": 3, "weights": "/nonexistent/b0.weights.h5"},
        r"'/nonexistent/b0.weights.h5' is not a file",
    ),
    (
        HyperEfficientNet,
        {**IMAGE, "classes": 3, "weights": {"B9": "/nonexistent"}},
        r"keys of `weights` .*'B9'",
    ),
    (HyperEfficientNet, {**IMAGE, "classes": 3, "weights": 7}, r"weights=7"),
    (HyperImageAugment, {}, r"`input_shape` or `input_tensor` is required"),
    (HyperImageAugment, {**IMAGE, "rotate": 1.5}, r"from 0 to 1.*rotate=1.5"),
    (HyperImageAugment, {**IMAGE, "rotate": -0.1}, r"rotate=-0.1"),
    (HyperImageAugment, {**IMAGE, "contrast": [0.3, 0.1]}, r"min <= max"),
    (HyperImageAugment, {**IMAGE, "translate_x": "wide"}, r"translate_x='wide'"),
    (
        HyperImageAugment,
        {**IMAGE, "translate_y": [0.1, 0.2, 0.3]},
        r"pair of numbers.*translate_y=\[0.1, 0.2, 0.3\]",
    ),
    (HyperImageAugment, {**IMAGE, "augment_layers": -1}, r"at least 0"),
    (HyperImageAugment, {**IMAGE, "augment_layers": 2.5}, r"augment_layers=2.5"),
    (HyperImageAugment, {**IMAGE, "augment_layers": [3, 1]}, r"min <= max"),
    (
        HyperImageAugment,
        {
            **IMAGE,
            "rotate": None,
            "translate_x": None,
            "translate_y": 0,
            "contrast": None,
        },
        r"At least one of .* must be enabled",
    ),
]


@pytest.mark.parametrize(("hypermodel_class", "kwargs", "match"), CONSTRUCTOR_ERRORS)
def test_constructor_rejects_bad_input(
    hypermodel_class: type[tuner_core.HyperModel], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        hypermodel_class(**kwargs)


@pytest.mark.parametrize(
    ("hypermodel", "overrides", "match"),
    [
        (
            HyperResNet(input_shape=(32, 32, 3), classes=4),
            {"version": "v3"},
            r"'version' must be one of \['v1', 'v2', 'next'\].*'v3'",
        ),
        (
            HyperEfficientNet(input_shape=(32, 32, 3), classes=3),
            {"version": "B9"},
            r"'version' must be one of .*'B9'",
        ),
        (
            HyperXception(input_shape=(28, 28, 1), classes=10),
            {"activation": "tanh"},
            r"'activation' must be one of \['relu', 'selu'\]",
        ),
        (
            HyperResNet(input_shape=(32, 32, 3), classes=4),
            {"version": "v1", "optimizer": "adagrad"},
            r"'optimizer' must be one of .*'adagrad'",
        ),
    ],
    ids=["resnet-version", "efficientnet-version", "xception-activation", "optimizer"],
)
def test_build_rejects_unknown_override(
    hypermodel: tuner_core.HyperModel, overrides: dict[str, str], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        _build(hypermodel, **overrides)
