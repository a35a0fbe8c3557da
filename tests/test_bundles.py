"""Leaderboard bundles (lnlbench.report.bundles): a bundle made from one directory merges; a bundle whose noisy-label
hash was changed is rejected with the reason (changed after export: the member hash check; exported that way: the
protocol check); the page links each entry to its provenance."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lnlbench.harness import execute_run, resolve_config
from lnlbench.report.bundles import BundleError, export_bundle, read_bundle


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two finished lp runs (two seeds) on digits at 8 px."""
    root = tmp_path_factory.mktemp("bundles")
    for seed in (0, 1):
        config = resolve_config(dataset="digits", noise="sym", rate=0.4, method="lp", backbone="test_efficientnet",
                                weights="random", image_size=8, hparams={"epochs": 1}, seed=seed,
                                cache_dir=root / "cache")
        record = execute_run(config, root / "runs", cache_dir=root / "cache", device="cpu", verbose=False)
        assert record["status"] == "done", record.get("error")
    return root / "runs"


def lnlbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lnlbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def rewrite_member(bundle: Path, out: Path, change, *, fix_manifest: bool) -> None:
    """A copy of `bundle` with every result.json passed through `change`; the manifest kept or recomputed."""
    import hashlib

    with tarfile.open(bundle) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    for name in files:
        if name.endswith("result.json"):
            record = json.loads(files[name])
            change(record)
            files[name] = json.dumps(record).encode()
    if fix_manifest:
        manifest = json.loads(files["manifest.json"])
        manifest["members"] = {n: hashlib.sha256(d).hexdigest() for n, d in files.items() if n != "manifest.json"}
        files["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(out, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def other_labels(record: dict) -> None:
    record["noise"]["labels_sha256"] = "0" * 64


def test_a_bundle_from_one_directory_merges_with_its_provenance(runs, tmp_path):
    made = lnlbench("export", str(runs), "--out", str(tmp_path / "a.tar.gz"), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "2 finished runs packed" in made.stdout
    bundle = read_bundle(tmp_path / "a.tar.gz")
    assert sorted(r["seed"] for r in bundle.records) == [0, 1] and bundle.digest in made.stdout

    report = lnlbench("report", "--leaderboard", str(tmp_path / "a.tar.gz"), "--out", str(tmp_path / "rep"),
                      "--no-plots", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "2 runs accepted, 0 rejected" in report.stdout
    assert len(list((tmp_path / "rep" / "submissions").rglob("result.json"))) == 2
    page = (tmp_path / "rep" / "submissions.html").read_text()
    record = bundle.records[0]
    assert 'href="#prov-0"' in page and 'id="prov-0"' in page
    for value in (record["env"]["code_sha256"], str(record["env"]["git"]), record["cost"]["device"], "seeds"):
        assert value in page
    assert "Rejected entries (0)" in page
    assert "submissions.html" in (tmp_path / "rep" / "index.html").read_text()


def test_a_bundle_changed_after_export_is_refused_naming_the_member(runs, tmp_path):
    export_bundle(runs, tmp_path / "a.tar.gz")
    rewrite_member(tmp_path / "a.tar.gz", tmp_path / "tampered.tar.gz", other_labels, fix_manifest=False)
    with pytest.raises(BundleError, match=r"altered after export \(member hash mismatch\): runs/\w+/result.json"):
        read_bundle(tmp_path / "tampered.tar.gz")
    report = lnlbench("report", "--leaderboard", str(tmp_path / "a.tar.gz"), str(tmp_path / "tampered.tar.gz"),
                      "--out", str(tmp_path / "rep"), "--no-plots", cwd=tmp_path)
    assert report.returncode == 2 and "member hash mismatch" in report.stderr
    assert not (tmp_path / "rep" / "submissions.html").exists()


def test_a_bundle_with_another_noisy_label_hash_is_rejected_with_the_reason(runs, tmp_path):
    export_bundle(runs, tmp_path / "a.tar.gz")
    rewrite_member(tmp_path / "a.tar.gz", tmp_path / "other.tar.gz", other_labels, fix_manifest=True)
    read_bundle(tmp_path / "other.tar.gz")  # a consistent bundle: it is the protocol check that refuses it
    report = lnlbench("report", "--leaderboard", str(tmp_path / "a.tar.gz"), str(tmp_path / "other.tar.gz"),
                      "--out", str(tmp_path / "rep"), "--no-plots", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "2 runs accepted, 2 rejected" in report.stdout
    assert report.stderr.count("noisy-label hash 0000000000000000... differs from the reference protocol's") == 2
    page = (tmp_path / "rep" / "submissions.html").read_text()
    assert "Rejected entries (2)" in page and "noisy-label hash 0000000000000000... differs" in page
    # With the other bundle as the protocol, it is the original that is rejected.
    swapped = lnlbench("report", "--leaderboard", str(tmp_path / "a.tar.gz"), str(tmp_path / "other.tar.gz"),
                       "--protocol", str(tmp_path / "other.tar.gz"), "--out", str(tmp_path / "rep2"), "--no-plots",
                       cwd=tmp_path)
    assert swapped.returncode == 0 and "a.tar.gz run" in swapped.stderr and "other.tar.gz run" not in swapped.stderr


def test_a_different_budget_and_a_duplicate_are_rejected(runs, tmp_path):
    export_bundle(runs, tmp_path / "a.tar.gz")
    shutil.copy(tmp_path / "a.tar.gz", tmp_path / "copy.tar.gz")
    rewrite_member(tmp_path / "a.tar.gz", tmp_path / "longer.tar.gz",
                   lambda r: r["hparams"].update(epochs=5), fix_manifest=True)
    from lnlbench.report.bundles import Protocol, judge

    a, copy, longer = (read_bundle(tmp_path / n) for n in ("a.tar.gz", "copy.tar.gz", "longer.tar.gz"))
    entries = judge([a, copy, longer], Protocol.of(a))
    reasons = [e.reasons for e in entries]
    assert reasons[:2] == [[], []]
    assert all("duplicate of run" in r[0] for r in reasons[2:4])
    assert all("budget {'epochs': 5} differs from the reference protocol's {'epochs': 1}" in r[0] for r in reasons[4:])


def test_export_of_a_directory_without_finished_runs_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    made = lnlbench("export", str(tmp_path / "empty"), "--out", str(tmp_path / "b.tar.gz"), cwd=tmp_path)
    assert made.returncode == 2 and "no finished run" in made.stderr and not (tmp_path / "b.tar.gz").exists()
