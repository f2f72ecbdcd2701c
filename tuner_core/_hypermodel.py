"""The `HyperModel` base class and the wrapper for plain build functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuner_core._hyperparameters import HyperParameters


class HyperModel:
    """A model family: `build(hp)` returns a compiled Keras model for `hp`.

    Override `fit(hp, model, *args, **kwargs)` to tune fit arguments such as
    `batch_size`. It must return the `History` of `model.fit`, a dict of final
    metric values, or one float that is the objective.
    """

    def __init__(self, name: str | None = None, tunable: bool = True) -> None:
        self.name = name
        self.tunable = tunable

    def build(self, hp: HyperParameters) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__}.build(hp) is not implemented. Override build to "
            "return a Keras model."
        )

    def declare_hyperparameters(self, hp: HyperParameters) -> None:
        """Declare hyperparameters up front; by default there are none."""

    def fit(self, hp: HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        return model.fit(*args, **kwargs)


class _BuildFunction(HyperModel):
    def __init__(self, build_fn: Callable[[HyperParameters], Any]) -> None:
        super().__init__(name=getattr(build_fn, "__name__", None))
        self._build_fn = build_fn

    def build(self, hp: HyperParameters) -> Any:
        return self._build_fn(hp)


def resolve_hypermodel(hypermodel: Any) -> HyperModel:
    """Return `hypermodel` as a `HyperModel`, wrapping a build function."""
    if isinstance(hypermodel, HyperModel):
        return hypermodel
    if isinstance(hypermodel, type) and issubclass(hypermodel, HyperModel):
        return hypermodel()
    if callable(hypermodel):
        return _BuildFunction(hypermodel)
    raise ValueError(
        f"hypermodel must be a HyperModel or a build function taking `hp`, but got "
        f"hypermodel={hypermodel!r}. Pass a function `build_model(hp)` that returns "
        "a compiled Keras model."
    )
