"""The conformance checks that need no run: hyperparameter declarations and override validation."""

from __future__ import annotations

import math
from typing import Any

from lnlbench.errors import ConfigError
from lnlbench.methods import HParam, Method

# The setting the override checks resolve hyperparameters for (any registered one would do).
SETTING = ("digits", "sym", 0.4)


def hparam_problems(cls: type[Method]) -> list[str]:
    """Every way `cls.hparam_space` falls short of: a default, a source and bounds for each hyperparameter.

    Bounds: a number needs `low` or `high`, a string needs `choices`; a bool is its own choice; a null default
    ("chosen per run") needs numeric bounds or choices, so a value passed for it can still be checked.
    """
    problems: list[str] = []
    if not cls.description:
        problems.append("the method has no description (one line naming its source paper)")
    if not isinstance(cls.hparam_space, dict):
        return problems + [f"hparam_space is a {type(cls.hparam_space).__name__}, not a dict of HParam"]
    for key, hp in cls.hparam_space.items():
        if not isinstance(hp, HParam):
            problems.append(f"{key}: declared as {hp!r}, not an lnlbench.methods.HParam (default, source, bounds)")
            continue
        if not str(hp.source or "").strip():
            problems.append(f"{key}: no source for its default {hp.default!r} (paper section, official code file, "
                            "or 'lnlbench choice' with the reason)")
        numeric = hp.low is not None or hp.high is not None
        if isinstance(hp.default, bool):
            pass
        elif hp.default is None:
            if not numeric and hp.choices is None:
                problems.append(f"{key}: a null default with neither bounds nor choices; a value passed for it "
                                "cannot be checked")
        elif isinstance(hp.default, (int, float)):
            if not numeric and hp.choices is None:
                problems.append(f"{key}: numeric default {hp.default!r} without bounds (set low= and/or high=)")
            elif isinstance(hp.default, float) and not math.isfinite(hp.default):
                problems.append(f"{key}: default {hp.default!r} is not finite")
        elif isinstance(hp.default, str):
            if hp.choices is None:
                problems.append(f"{key}: string default {hp.default!r} without choices (set choices=(...))")
        elif hp.choices is None:
            problems.append(f"{key}: default of type {type(hp.default).__name__} without choices")
        if isinstance(hp, HParam) and hp.default is not None:
            try:
                hp.check(key, hp.default)
            except ConfigError as exc:
                problems.append(f"{key}: its own default is rejected: {exc}")
    return problems


def out_of_bounds_value(hp: HParam) -> Any | None:
    """A value `hp` must reject: just outside a bound, or a value not among its choices; None if it has neither."""
    kind = float if hp.default is None or isinstance(hp.default, float) else type(hp.default)
    if isinstance(hp.default, bool):
        return None
    if hp.low is not None:
        return kind(hp.low) if hp.low_open else kind(hp.low - 1)
    if hp.high is not None:
        return kind(hp.high) if hp.high_open else kind(hp.high + 1)
    if hp.choices is not None:
        return "not-one-of-the-choices"
    return None


def override_problems(cls: type[Method]) -> list[str]:
    """An unknown and an out-of-bounds override must raise ConfigError; the defaults must resolve."""
    dataset, noise, rate = SETTING
    problems: list[str] = []
    try:
        cls.resolve_hparams(dataset, noise, rate, {})
    except ConfigError as exc:
        return [f"the defaults do not resolve: {exc}"]
    unknown = "no_such_hparam_lnlbench_kit"
    try:
        cls.resolve_hparams(dataset, noise, rate, {unknown: 1})
        problems.append(f"an unknown override {unknown}=1 was accepted; it must raise ConfigError")
    except ConfigError:
        pass
    tried = 0
    for key, hp in cls.hparam_space.items():
        if not isinstance(hp, HParam):
            continue
        bad = out_of_bounds_value(hp)
        if bad is None:
            continue
        tried += 1
        try:
            cls.resolve_hparams(dataset, noise, rate, {key: bad})
            problems.append(f"the out-of-bounds override {key}={bad!r} was accepted; it must raise ConfigError")
        except ConfigError:
            pass
    if tried == 0 and cls.hparam_space:
        problems.append("no hyperparameter has bounds or choices, so no out-of-bounds override could be tried")
    return problems
