"""Reports over a frozen set of result records: numbers checked against values computed by hand."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from lnlbench.cli import main
from lnlbench.errors import ConfigError
from lnlbench.report import build_report
from lnlbench.report.plots import pareto_front

BACKBONE = "tf_efficientnet_lite0"
CPU = "cpu:2 threads"
GPU = "cuda:NVIDIA H100 80GB HBM3"


def make_record(
    method: str,
    noise: str,
    rate: float,
    seed: int,
    acc: float | None,
    *,
    hparams: dict | None = None,
    noise_seed: int = 0,
    status: str = "done",
    device: str = CPU,
    wall: float = 100.0,
    best: float | None = None,
    selection: tuple[float, float] | None = None,
    version: str = "0.1.0",
    dataset: str = "cifar10",
) -> dict:
    """A result record as lnlbench/harness.py writes it (schema 1), with the fields the report reads."""
    hparams = {"epochs": 30, "lr": 0.1} if hparams is None else hparams
    config = {
        "dataset": dataset, "noise": noise, "rate": rate, "method": method, "hparams": hparams, "image_size": 224,
        "noise_seed": noise_seed, "seed": seed, "backbone": BACKBONE, "weights": "packaged",
        "dataset_options": {}, "noise_options": {}, "amp": "auto", "compile": False, "schema": 1,
    }
    run_id = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    labels = hashlib.sha256(f"{dataset}{noise}{rate}{noise_seed}".encode()).hexdigest()
    rec = {
        "schema": 1, "run_id": run_id, "status": status, "method": method, "hparams": hparams, "dataset": dataset,
        "dataset_options": {}, "image_size": 224, "seed": seed,
        "backbone": {"name": BACKBONE, "weights": "packaged", "weights_sha256": "ab" * 32},
        "config": config,
        "cost": {
            "wall_clock_s": wall, "phases": {"data": 5.0, "train": wall - 10.0, "test": 5.0}, "device": device,
            "device_count": 1, "gpu_hours": wall / 3600 if device.startswith("cuda") else 0.0,
            "peak_mem_mb": 2048.0 if device.startswith("cuda") else 900.0, "images_seen": 1500000,
        },
        "env": {"lnlbench": version, "torch": "2.4.0", "timm": "1.0.9", "python": "3.11.9", "host": "h", "git": ""},
    }
    if status == "failed":
        rec["error"] = "TrainingError: loss became NaN at epoch 3; lower the learning rate"
        return rec
    rec.update({"n_train": 50000, "n_test": 10000, "num_classes": 10})
    rec["noise"] = {"model": noise, "rate": rate, "seed": noise_seed, "realized_rate": rate, "labels_sha256": labels,
                    "transition_matrix": [[1.0]]}
    rec["precision"] = {"precision": "fp32", "memory_format": "contiguous", "compile": False}
    history = [{"phase": "train", "epoch": e, "test_acc": acc - 0.01 * (2 - e), "train_loss": 1.0} for e in range(3)]
    rec["metrics"] = {"test_acc": acc, "test_acc_best": acc if best is None else best, "history": history}
    if selection:
        p, r = selection
        final = {"size": 100, "fraction": 0.5, "precision": p, "recall": r, "subset_noise_rate": 1 - p}
        rec["metrics"]["selection"] = {"net1": {"final": final, "by_epoch": [{"epoch": 0, **final}]}}
    return rec


def write_run(root: Path, rec: dict, *, finished: bool = True) -> Path:
    run_dir = root / rec["run_id"]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({**rec["config"], "run_id": rec["run_id"], "data_root": None}))
    if finished:
        (run_dir / "result.json").write_text(json.dumps(rec, indent=2))
    return run_dir


# Accuracies of the frozen set (fractions), by method, setting and seed; the expected cells were computed by hand:
# mean, then sample std sqrt(sum((x - mean)^2) / (n - 1)), both in percent.
FROZEN = {
    ("lp", "sym", 0.2): [0.90, 0.92, 0.94],   # 92.00 ± 2.00
    ("lp", "sym", 0.5): [0.80, 0.81, 0.85],   # 82.00 ± sqrt((4 + 1 + 9) / 2) = 2.65
    ("lp", "asym", 0.4): [0.85, 0.86, 0.87],  # 86.00 ± 1.00
    ("turn", "sym", 0.2): [0.95, 0.96, 0.97],  # 96.00 ± 1.00 (best)
    ("turn", "sym", 0.5): [0.90, 0.92],        # 91.00 ± sqrt(2) = 1.41, n=2 (seed 2 unfinished; best)
    ("turn", "asym", 0.4): [0.88, 0.90, 0.92],  # 90.00 ± 2.00
    ("fft", "sym", 0.2): [0.93, 0.93, 0.96],   # 94.00 ± sqrt((1 + 1 + 4) / 2) = 1.73
    ("fft", "sym", 0.5): [0.70, 0.74],         # 72.00 ± sqrt(8) = 2.83, n=2 (seed 2 failed)
    ("fft", "asym", 0.4): [0.91, 0.93, 0.95],  # 93.00 ± 2.00 (best); seed 2 ran on a GPU
}


@pytest.fixture(scope="module")
def frozen(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("frozen") / "runs"
    for (method, noise, rate), accs in FROZEN.items():
        for seed, acc in enumerate(accs):
            gpu = (method, noise, seed) == ("fft", "asym", 2)
            sel = (0.9 + 0.01 * seed, 0.8) if method == "turn" else None
            write_run(root, make_record(method, noise, rate, seed, acc, device=GPU if gpu else CPU,
                                        wall=36.0 if gpu else 100.0 + 10 * seed, best=acc + 0.01, selection=sel))
    write_run(root, make_record("fft", "sym", 0.5, 2, None, status="failed"))
    write_run(root, make_record("turn", "sym", 0.5, 2, 0.5), finished=False)  # config.json only: unfinished
    write_run(root, make_record("lp", "sym", 0.2, 0, 0.80, hparams={"epochs": 30, "lr": 0.01}))  # other hparams
    return root


@pytest.fixture(scope="module")
def report(frozen, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    summary = build_report([frozen], out, requested_seeds=3)
    return out, summary


TABLE = "tables/cifar10__tf_efficientnet_lite0"


def test_markdown_table_matches_hand_computed_cells(report):
    out, _ = report
    md = (out / f"{TABLE}.md").read_text()
    assert "| method | sym 20% | sym 50% | asym 40% |" in md
    assert "| fft | 94.00 ± 1.73 | 72.00 ± 2.83 (n=2) | **93.00 ± 2.00** |" in md
    assert "| lp (lr=0.01) | 80.00 (1 seed) | – | – |" in md
    assert "| lp (lr=0.1) | 92.00 ± 2.00 | 82.00 ± 2.65 | 86.00 ± 1.00 |" in md
    assert "| turn | **96.00 ± 1.00** | **91.00 ± 1.41 (n=2)** | 90.00 ± 2.00 |" in md
    assert "final-epoch test accuracy" in md and "ddof=1" in md and "fewer than 3 runs" in md


def test_csv_table_matches_hand_computed_cells(report):
    out, _ = report
    csv = pd.read_csv(out / f"{TABLE}.csv")
    cell = csv.set_index(["row", "setting"])
    assert len(csv) == 10  # 3 rows x 3 settings + lp (lr=0.01) in one
    assert cell.loc[("turn", "sym 50%"), "acc_mean_pct"] == pytest.approx(91.0)
    assert cell.loc[("turn", "sym 50%"), "acc_std_pct"] == pytest.approx(1.4142, abs=1e-4)
    assert cell.loc[("turn", "sym 50%"), "n"] == 2
    assert cell.loc[("lp (lr=0.1)", "sym 50%"), "acc_std_pct"] == pytest.approx(2.6458, abs=1e-4)
    assert cell.loc[("fft", "sym 20%"), "acc_mean_pct"] == pytest.approx(94.0)
    assert cell.loc[("fft", "sym 20%"), "acc_std_pct"] == pytest.approx(1.7321, abs=1e-4)
    assert pd.isna(cell.loc[("lp (lr=0.01)", "sym 20%"), "acc_std_pct"])
    assert set(csv.loc[csv["best"], "row"] + "/" + csv.loc[csv["best"], "setting"]) == {
        "turn/sym 20%", "turn/sym 50%", "fft/asym 40%"}
    assert (csv["accuracy"] == "final").all() and (csv["n_requested"] == 3).all()
    assert cell.loc[("fft", "sym 50%"), "seeds"] == "0 1"


def test_failed_and_unfinished_runs_are_counted_and_listed(report):
    out, summary = report
    assert (summary.n_done, summary.n_failed, summary.n_unfinished, summary.n_skipped) == (26, 1, 1, 0)
    failures = pd.read_csv(out / "failures.csv").set_index("kind")
    assert failures.loc["failed", "method"] == "fft" and failures.loc["failed", "seed"] == 2
    assert "loss became NaN" in failures.loc["failed", "error"]
    assert failures.loc["unfinished", "method"] == "turn"
    assert failures.loc["unfinished", "path"].endswith("config.json")
    md = (out / "report.md").read_text()
    assert "## Failed and unfinished runs (2)" in md
    assert "1 failed, 1 unfinished" in md


def test_runs_differing_in_hparams_get_split_rows_and_a_warning(report):
    _, summary = report
    split = [w for w in summary.warnings if "separate rows" in w]
    assert len(split) == 1
    assert "lp / sym 20%" in split[0] and "lr: 0.01 vs 0.1" in split[0]


def test_latex_is_booktabs_with_bold_best(report):
    out, _ = report
    tex = (out / f"{TABLE}.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "\\textbf{96.00 $\\pm$ 1.00}" in tex
    assert "sym 20\\%" in tex and "tf\\_efficientnet\\_lite0" in tex
    assert "lp (lr=0.01) & 80.00 (1 seed) & -- & -- \\\\" in tex


def test_cost_table_splits_devices_and_counts_gpu_hours(report):
    out, _ = report
    cost = pd.read_csv(out / f"{TABLE}-cost.csv")
    fft_asym = cost[(cost["row"] == "fft") & (cost["setting"] == "asym 40%")].set_index("device")
    assert fft_asym.loc[CPU, "runs"] == 2 and fft_asym.loc[GPU, "runs"] == 1
    assert fft_asym.loc[CPU, "wall_clock_s_mean"] == pytest.approx(105.0)  # seeds 0, 1: 100 s and 110 s
    assert fft_asym.loc[GPU, "gpu_hours_total"] == pytest.approx(0.01)  # 36 s on one GPU
    md = (out / f"{TABLE}-cost.md").read_text()
    assert f"| fft | asym 40% | {GPU} † | 1 | 36.0 | 0.010 | 0.010 | 2048 |" in md
    assert "more than one device" in md


def test_leaderboard_ranks_per_setting_and_overall(report):
    out, _ = report
    lb = pd.read_csv(out / "leaderboard.csv")
    sym20 = lb[lb["scope"] == "sym 20%"].sort_values("rank")
    assert list(sym20["row"]) == ["turn", "fft", "lp (lr=0.1)", "lp (lr=0.01)"]
    overall = lb[lb["scope"] == "overall"].sort_values("position")
    # ranks per setting: turn 1, 1, 2; fft 2, 3, 1; lp (lr=0.1) 3, 2, 3; lp (lr=0.01) 4 in one setting only
    assert list(overall["row"]) == ["turn", "fft", "lp (lr=0.1)", "lp (lr=0.01)"]
    assert list(overall["avg_rank"].round(4)) == [1.3333, 2.0, 2.6667, 4.0]
    turn = overall.iloc[0]
    assert turn["runs"] == 8 and turn["settings"] == 3
    assert turn["labels_sha256"].count(" ") == 2  # three noisy-label sets, one per setting
    assert turn["lnlbench"] == "0.1.0"
    assert "mixed devices" in overall.set_index("row").loc["fft", "device"]


def test_plots_are_written_as_png_and_svg(report):
    out, summary = report
    for kind in ("acc-vs-time", "acc-vs-rate", "selection"):
        png = out / "plots" / f"cifar10__tf_efficientnet_lite0-{kind}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in png.with_suffix(".svg").read_text()[:2000]


def test_pareto_front_keeps_only_undominated_points():
    times = [10.0, 20.0, 15.0, 30.0, 5.0]
    accs = [80.0, 90.0, 70.0, 95.0, 60.0]
    assert list(pareto_front(pd.Series(times).to_numpy(), pd.Series(accs).to_numpy())) == [4, 0, 1, 3]


def test_html_page_is_static_with_tables_and_inlined_images(report):
    out, _ = report
    page = (out / "index.html").read_text()
    assert page.count("<table") == 5  # accuracy, cost, 2 leaderboards, failed runs
    assert page.count('src="data:image/png;base64,') == 3
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "the page must load nothing from the network"
    assert "Failed and unfinished runs (2)" in page


def test_best_epoch_accuracy_is_labelled(frozen, tmp_path):
    build_report([frozen], tmp_path, accuracy="best", requested_seeds=3, make_plots=False)
    md = (tmp_path / f"{TABLE}.md").read_text()
    assert "best-epoch test accuracy" in md and "not a reportable number" in md
    assert "| turn | **97.00 ± 1.00** |" in md  # every best-epoch accuracy is the final one + 0.01


def test_reference_adds_published_and_difference(frozen, tmp_path):
    ref = tmp_path / "ref.csv"
    ref.write_text("dataset,backbone,noise,rate,method,accuracy,source\n"
                   f"cifar10,{BACKBONE},sym,0.2,turn,95.5,test fixture (not a published number)\n")
    summary = build_report([frozen], tmp_path / "out", reference=ref, requested_seeds=3, make_plots=False)
    md = (tmp_path / "out" / f"{TABLE}.md").read_text()
    assert "| method | sym 20% | sym 20% published | sym 20% Δ | sym 50% | asym 40% |" in md
    assert "| turn | **96.00 ± 1.00** | 95.50 | +0.50 |" in md
    assert "| fft | 94.00 ± 1.73 | – | – |" in md
    csv = pd.read_csv(tmp_path / "out" / f"{TABLE}.csv").set_index(["row", "setting"])
    assert csv.loc[("turn", "sym 20%"), "diff_pct"] == pytest.approx(0.5)
    assert csv.loc[("turn", "sym 20%"), "published_source"] == "test fixture (not a published number)"
    assert not any("match no reported" in w for w in summary.warnings)


def test_reference_with_missing_columns_names_them(frozen, tmp_path):
    ref = tmp_path / "ref.csv"
    ref.write_text("dataset,noise,rate,method,acc\ncifar10,sym,0.2,turn,95.5\n")
    with pytest.raises(ConfigError, match="backbone, accuracy, source"):
        build_report([frozen], tmp_path / "out", reference=ref)


def test_reference_with_percent_rates_is_refused(frozen, tmp_path):
    ref = tmp_path / "ref.csv"
    ref.write_text(f"dataset,backbone,noise,rate,method,accuracy,source\ncifar10,{BACKBONE},sym,20,turn,95.5,x\n")
    with pytest.raises(ConfigError, match=r"outside \[0, 1\].*0\.2"):
        build_report([frozen], tmp_path / "out", reference=ref)


def test_empty_directory_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no runs under"):
        build_report([tmp_path / "empty"], tmp_path / "out")
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no runs under" in capsys.readouterr().err


def test_bad_records_are_skipped_with_a_warning_naming_the_file(tmp_path):
    root = tmp_path / "runs"
    good = write_run(root, make_record("lp", "sym", 0.2, 0, 0.9))
    truncated = root / "trunc" / "result.json"
    truncated.parent.mkdir()
    truncated.write_text((good / "result.json").read_text()[:200])
    future = make_record("lp", "sym", 0.2, 1, 0.9)
    future["schema"] = 99
    future_dir = write_run(root, future)
    no_metrics = make_record("lp", "sym", 0.2, 2, 0.9)
    del no_metrics["metrics"]
    broken_dir = write_run(root, no_metrics)
    summary = build_report([root], tmp_path / "out", make_plots=False)
    assert summary.n_done == 1 and summary.n_skipped == 3
    text = "\n".join(summary.warnings)
    assert f"skipped {truncated}: unreadable or truncated JSON" in text
    assert f"skipped {future_dir / 'result.json'}: record schema 99" in text
    assert f"skipped {broken_dir / 'result.json'}: malformed record" in text
    assert "Skipped files (3)" in (tmp_path / "out" / "index.html").read_text()


def test_pooled_noise_draws_are_said_and_duplicates_counted_once(tmp_path):
    root = tmp_path / "runs"
    for noise_seed, acc in ((0, 0.90), (1, 0.94)):
        write_run(root, make_record("lp", "sym", 0.2, 0, acc, noise_seed=noise_seed))
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    summary = build_report([root, copy], tmp_path / "out", make_plots=False)
    assert summary.n_done == 2 and summary.n_groups == 1
    assert sum("appears twice" in w for w in summary.warnings) == 2
    assert any("pool 2 noise draws" in w for w in summary.warnings)
    assert "| lp | 92.00 ± 2.83 |" in (tmp_path / "out" / f"{TABLE}.md").read_text()


def test_cli_report_writes_the_page(frozen, tmp_path, capsys):
    rc = main(["report", str(frozen), "--out", str(tmp_path / "rep"), "--seeds", "3", "--no-plots"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "26 finished runs in 10 groups; 1 failed, 1 unfinished" in captured.out
    assert "warning:" in captured.err
    assert (tmp_path / "rep" / "index.html").is_file()


def test_only_failed_runs_exit_nonzero_but_still_list_them(tmp_path):
    root = tmp_path / "runs"
    write_run(root, make_record("fft", "sym", 0.5, 0, None, status="failed"))
    assert main(["report", str(root), "--out", str(tmp_path / "rep")]) == 1
    assert "Failed and unfinished runs (1)" in (tmp_path / "rep" / "index.html").read_text()


def _chromium() -> str | None:
    for name in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if name and os.access(name, os.X_OK):
            return name
    return None


needs_chromium = pytest.mark.skipif(
    _chromium() is None, reason="Chromium not installed (Debian: apt-get install -y chromium)"
)


def _dump_dom(page: Path, profile: Path) -> str:
    """The DOM after the page's scripts ran, in headless Chromium; fails on any console message."""
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom", page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, "\n".join(console)
    return proc.stdout


@needs_chromium
def test_html_opens_in_headless_chromium_without_console_errors(report, tmp_path):
    out, _ = report
    dom = _dump_dom(out / "index.html", tmp_path / "profile")
    assert 'data-sortable-ready="5"' in dom, "the sorting script did not finish"
    assert dom.count("<table") == 5 and dom.count('src="data:image/png;base64,') == 3


@needs_chromium
def test_sorting_script_orders_numbers_and_puts_blanks_last(tmp_path):
    from lnlbench.report.html import SORT_JS

    page = tmp_path / "sort.html"
    page.write_text(
        "<!DOCTYPE html><html><body><table class='sortable'><thead><tr><th>m</th><th>acc</th></tr></thead><tbody>"
        "<tr><td>a</td><td data-sort='9.5'>9.50</td></tr><tr><td>b</td><td>–</td></tr>"
        "<tr><td>c</td><td data-sort='10'>10.00</td></tr></tbody></table>"
        f"<script>{SORT_JS}</script><script>"
        "var th = document.querySelectorAll('th')[1]; var order = [];"
        "function names() { return Array.from(document.querySelectorAll('tbody tr')).map(r => r.cells[0].textContent); }"
        "th.click(); order.push(names().join('')); th.click(); order.push(names().join(''));"
        "document.body.setAttribute('data-order', order.join(','));"
        "</script></body></html>",
        encoding="utf-8",
    )
    dom = _dump_dom(page, tmp_path / "profile")
    assert 'data-order="acb,cab"' in dom  # ascending 9.5, 10, blank; descending 10, 9.5, blank


def test_runs_of_different_lnlbench_versions_or_epochs_are_not_averaged(tmp_path):
    root = tmp_path / "runs"
    write_run(root, make_record("lp", "sym", 0.2, 0, 0.90, version="0.1.0"))
    write_run(root, make_record("lp", "sym", 0.2, 1, 0.80, version="0.2.0"))
    write_run(root, make_record("fft", "sym", 0.2, 0, 0.70, hparams={"epochs": 10, "lr": 0.1}))
    write_run(root, make_record("fft", "sym", 0.2, 1, 0.60, hparams={"epochs": 20, "lr": 0.1}))
    summary = build_report([root], tmp_path / "out", make_plots=False)
    assert summary.n_groups == 4
    md = (tmp_path / "out" / f"{TABLE}.md").read_text()
    assert "| lp (lnlbench=0.1.0) | **90.00 (1 seed)** |" in md and "| lp (lnlbench=0.2.0) | 80.00 (1 seed) |" in md
    assert "| fft (epochs=10) | 70.00 (1 seed) |" in md and "| fft (epochs=20) | 60.00 (1 seed) |" in md
    assert sum("separate rows" in w for w in summary.warnings) == 2


def test_bad_arguments_are_config_errors(frozen, tmp_path):
    with pytest.raises(ConfigError, match="final, best"):
        build_report([frozen], tmp_path, accuracy="last")
    with pytest.raises(ConfigError, match="at least 1"):
        build_report([frozen], tmp_path, requested_seeds=0)
    with pytest.raises(ConfigError, match="does not exist"):
        build_report([tmp_path / "nowhere"], tmp_path)


# fft: 60% at sym 20%, 50% at sym 50% (mean 55%), 100 s per run. lp ranks the other way round in both cases, so both
# have average rank 1.5; the name order (fft before lp) is what the tie-break must override.
LP_TIES = {
    "by-mean-accuracy": {"sym 0.2": 0.55, "sym 0.5": 0.56, "wall": 100.0},  # mean 55.5% > 55%, same cost
    "by-cost": {"sym 0.2": 0.50, "sym 0.5": 0.60, "wall": 10.0},  # mean 55% as fft's, a tenth of the cost
}


@pytest.mark.parametrize("lp", list(LP_TIES.values()), ids=list(LP_TIES))
def test_leaderboard_breaks_equal_average_ranks_by_mean_accuracy_then_cost(tmp_path, lp):
    root = tmp_path / "runs"
    write_run(root, make_record("fft", "sym", 0.2, 0, 0.60, wall=100.0))
    write_run(root, make_record("fft", "sym", 0.5, 0, 0.50, wall=100.0))
    write_run(root, make_record("lp", "sym", 0.2, 0, lp["sym 0.2"], wall=lp["wall"]))
    write_run(root, make_record("lp", "sym", 0.5, 0, lp["sym 0.5"], wall=lp["wall"]))
    build_report([root], tmp_path / "out", make_plots=False)
    overall = pd.read_csv(tmp_path / "out" / "leaderboard.csv").query("scope == 'overall'").sort_values("position")
    assert overall["avg_rank"].nunique() == 1
    assert list(overall["row"]) == ["lp", "fft"]
    rule = "ties broken by higher mean accuracy, then lower wall-clock per run"
    assert rule in (tmp_path / "out" / "leaderboard.md").read_text()


def test_captions_are_grammatical_for_single_runs(tmp_path):
    root = tmp_path / "runs"
    write_run(root, make_record("lp", "sym", 0.2, 0, 0.90))
    write_run(root, make_record("fft", "sym", 0.2, 0, 0.80))
    build_report([root], tmp_path / "out", make_plots=False)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "one run per cell" in md
    assert not re.search(r"\b1 runs\b", md), "a count of one takes the singular"
    build_report([root], tmp_path / "out2", requested_seeds=1, make_plots=False)
    assert not re.search(r"\b1 runs\b", (tmp_path / "out2" / "report.md").read_text())
