"""Published numbers to compare with: the `--reference` CSV (format in docs/reference-format.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lnlbench.errors import ConfigError

REFERENCE_COLUMNS = ["dataset", "backbone", "noise", "rate", "method", "accuracy", "source"]
MATCH_KEYS = ["dataset", "backbone", "noise", "rate", "method"]


def read_reference(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """The reference table with `rate` a fraction and `accuracy` in percent; ConfigError naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"reference file {path} does not exist; pass a CSV as described in docs/reference-format.md")
    try:
        ref = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"reference file {path} is not a readable CSV ({exc}); see docs/reference-format.md"
        ) from None
    ref.columns = [str(c).strip().lower() for c in ref.columns]
    missing = [c for c in REFERENCE_COLUMNS if c not in ref.columns]
    if missing:
        raise ConfigError(
            f"reference file {path} lacks the column(s) {', '.join(missing)}; its header must name "
            f"{', '.join(REFERENCE_COLUMNS)} (see docs/reference-format.md)"
        )
    ref = ref[REFERENCE_COLUMNS].apply(lambda s: s.str.strip())
    for col in ("rate", "accuracy"):
        values = pd.to_numeric(ref[col], errors="coerce")
        bad = ref.loc[values.isna(), col]
        if len(bad):
            raise ConfigError(
                f"reference file {path}: column {col} holds {bad.iloc[0]!r} (line {bad.index[0] + 2}), not a number"
            )
        ref[col] = values.astype(float)
    out_of_range = ref[(ref["rate"] < 0) | (ref["rate"] > 1)]
    if len(out_of_range):
        r = out_of_range.iloc[0]["rate"]
        raise ConfigError(
            f"reference file {path}: rate {r:g} (line {out_of_range.index[0] + 2}) is outside [0, 1]; write noise "
            f"rates as fractions, e.g. {r / 100:g} for {r:g}%"
        )
    bad_acc = ref[(ref["accuracy"] < 0) | (ref["accuracy"] > 100)]
    if len(bad_acc):
        raise ConfigError(
            f"reference file {path}: accuracy {bad_acc.iloc[0]['accuracy']:g} (line {bad_acc.index[0] + 2}) is "
            "outside [0, 100]; write accuracies in percent, as papers print them"
        )
    warnings = []
    if len(ref) and (ref["accuracy"] <= 1).all():
        warnings.append(
            f"reference file {path}: every accuracy is at most 1; they are read as percent (write 91.3, not 0.913)"
        )
    ref["rate_key"] = ref["rate"].round(6)
    dup = ref.duplicated(["dataset", "backbone", "noise", "rate_key", "method"], keep=False)
    if dup.any():
        first = ref[dup].iloc[0]
        raise ConfigError(
            f"reference file {path} has more than one number for {first['method']} on {first['dataset']} / "
            f"{first['backbone']} / {first['noise']} {first['rate']:g}; keep one row per setting"
        )
    return ref, warnings


def attach_reference(groups: pd.DataFrame, ref: pd.DataFrame | None) -> tuple[pd.DataFrame, list[str]]:
    """Add `published`, `published_source` and `diff` (ours minus published, percentage points) to the groups."""
    groups = groups.copy()
    if ref is None:
        groups["published"] = float("nan")
        groups["published_source"] = ""
        groups["diff"] = float("nan")
        return groups, []
    groups["rate_key"] = groups["rate"].astype(float).round(6)
    keys = ["dataset", "backbone", "noise", "rate_key", "method"]
    right = ref[keys + ["accuracy", "source"]].rename(columns={"accuracy": "published", "source": "published_source"})
    merged = groups.merge(right, on=keys, how="left")
    merged["published_source"] = merged["published_source"].fillna("")
    merged["diff"] = 100 * merged["acc_mean"] - merged["published"]
    used = ref.merge(groups[keys].drop_duplicates(), on=keys, how="inner")
    warnings = []
    unused = len(ref) - len(used)
    if unused:
        warnings.append(f"{unused} reference row(s) match no reported setting (dataset, backbone, noise, rate, method)")
    return merged.drop(columns=["rate_key"]), warnings
