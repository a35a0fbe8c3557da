"""The method contract: hyperparameter declarations, the context a method receives and what it returns."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from lnlbench.errors import ConfigError, Problems

if TYPE_CHECKING:
    from lnlbench.context import MethodContext


@dataclass(frozen=True)
class HParam:
    """One hyperparameter: its default, where that default comes from, and what values it accepts."""

    default: Any
    source: str
    help: str = ""
    low: float | None = None  # inclusive bounds unless *_open
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None

    def like(self, source: str | None = None, *, prefix: str = "", suffix: str = "", **changes: Any) -> HParam:
        """This hyperparameter for another method: same default, bounds and choices unless `changes` name them.

        The source becomes `prefix + (source or this one's source) + suffix`, so a method that reuses `fft`'s
        learning rate writes `FFT_HPARAMS["lr"].like(prefix="as `fft`: ")` and follows any change made to it.
        """
        return replace(self, source=prefix + (self.source if source is None else source) + suffix, **changes)

    def check(self, name: str, value: Any) -> Any:
        """Coerce `value` to the default's type and check bounds/choices; raise ConfigError naming the fix."""
        if self.default is None and isinstance(value, str) and (self.low is not None or self.high is not None):
            value = _coerce(name, value, 0.0)  # a null default with numeric bounds takes numbers ("1e-3" from YAML)
        value = _coerce(name, value, self.default)
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"hyperparameter {name}={value!r} is not one of {list(self.choices)}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
            above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
            if below or above:
                lo = "(" if self.low_open else "["
                hi = ")" if self.high_open else "]"
                rng = f"{lo}{self.low if self.low is not None else '-inf'}, {self.high if self.high is not None else 'inf'}{hi}"
                raise ConfigError(f"hyperparameter {name}={value!r} is outside {rng}; pass a value in that range")
        return value


def _coerce(name: str, value: Any, default: Any) -> Any:
    if default is None or value is None:
        return value
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"hyperparameter {name}={value!r} must be true or false")
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ConfigError(f"hyperparameter {name}={value!r} must be a whole number (int(value) would train on {int(value)})")
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"hyperparameter {name}={value!r} must be of type {kind.__name__}") from None


SCALING_RULE = (
    "budget scaling (one rule for every method): an element of the reference schedule of length e, in a reference run "
    "of E epochs, becomes e * N / E in a run of N epochs; an element counted in whole epochs is rounded to the "
    "nearest epoch (halves up), is at least 1 when the reference schedule has it, and leaves at least one epoch for "
    "the phase that follows it"
)


def scale_epochs(
    element: float, reference_total: float, epochs: int, *, whole: bool = True, low: int = 1, high: int | None = None
) -> float:
    """`element` (epochs of a reference run of `reference_total` epochs) scaled to a run of `epochs` (SCALING_RULE)."""
    value = element * epochs / reference_total
    if not whole:
        return value
    out = max(low, math.floor(value + 0.5))
    return min(out, high) if high is not None else out


@dataclass(frozen=True)
class ScheduleItem:
    """One element of a method's schedule at a run's budget: the reference value and the value this run uses."""

    name: str
    value: Any
    reference: str  # e.g. "10 of 300 epochs (official Train_cifar.py: warm_up = 10, --num_epochs 300)"
    note: str = ""


@dataclass
class MethodOutput:
    """What `Method.fit` returns: the model to test and anything the method wants recorded.

    `predict` maps a preprocessed float batch (B x 3 x S x S on the context's device) to logits. The harness tests it
    on the clean test set; that number is `metrics.test_acc`.
    """

    predict: Callable[[torch.Tensor], torch.Tensor] | torch.nn.Module
    diagnostics: dict = field(default_factory=dict)


class Method:
    """Base class of every noisy-label method. Subclasses set the class attributes and implement `fit`.

    `hparam_space` declares the defaults; `hparam_overrides` returns per-setting changes (dataset, noise model, rate)
    taken from the method's official code or paper, as DomainBed's `hparams_registry` does.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""  # one line, naming the source paper
    needs: ClassVar[frozenset[str]] = frozenset()  # e.g. {"features"}, {"two_networks"}
    selects: ClassVar[bool] = False  # reports a clean-sample selection
    hparam_space: ClassVar[dict[str, HParam]] = {}
    source: ClassVar[str] = ""  # set by the plugin manager: the distribution that provided the method

    @classmethod
    def hparam_overrides(cls, dataset: str, noise: str, rate: float) -> dict[str, tuple[Any, str]]:
        """Per-setting defaults as {name: (value, source)}; empty unless the method's official code has them."""
        return {}

    @classmethod
    def resolve_hparams(cls, dataset: str, noise: str, rate: float, user: dict[str, Any] | None = None) -> dict:
        """Defaults, then per-setting overrides, then the user's `--set` values; every value checked."""
        user = dict(user or {})
        problems = Problems()
        unknown = sorted(set(user) - set(cls.hparam_space))
        if unknown:
            problems.add(
                f"method {cls.name!r} has no hyperparameter {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(cls.hparam_space))} (see `lnlbench methods --show {cls.name}`)"
            )
        resolved = {k: hp.default for k, hp in cls.hparam_space.items()}
        for k, (v, _src) in cls.hparam_overrides(dataset, noise, rate).items():
            resolved[k] = v
        resolved.update({k: v for k, v in user.items() if k in cls.hparam_space})
        checked = {}
        for k, v in resolved.items():
            with problems.check():
                checked[k] = cls.hparam_space[k].check(k, v)
        problems.raise_any()
        cls.validate(checked, rate)
        return checked

    @classmethod
    def validate(cls, hparams: dict, rate: float) -> None:
        """Cross-parameter checks; raise ConfigError. Default: none."""

    @classmethod
    def budget_hparams(cls, epochs: int) -> dict[str, Any]:
        """The hyperparameters a budget of `epochs` sets (default: `epochs`, when the method has it)."""
        return {"epochs": epochs} if "epochs" in cls.hparam_space else {}

    @classmethod
    def schedule(cls, hparams: dict, dataset: str) -> list[ScheduleItem]:
        """The method's schedule elements under resolved `hparams` (scaled by SCALING_RULE). Default: none."""
        return []

    def fit(self, ctx: MethodContext) -> MethodOutput:
        raise NotImplementedError
