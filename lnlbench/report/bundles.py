"""Leaderboard bundles: records packed with their provenance, checked against a reference protocol, and merged.

A bundle (`lnlbench export DIR --out B.tar.gz`) holds `runs/<run_id>/result.json` and `config.json` for every
finished run below DIR (each record carries its env: versions, host, git commit, dirty flag and code hash) and
`manifest.json` with the SHA-256 of each member. Reading a bundle recomputes every hash: a member that changed, is
missing or is not listed makes the whole bundle unreadable (tampered or damaged). The manifest itself is not signed;
its own SHA-256 (the bundle digest, printed by export and shown on the page) is what a submitter announces.

The reference protocol is the `--protocol` bundle when one is given, else the first bundle on the command line. A
setting is (dataset, noise model, rate, noise seed, backbone, weights, image size); in each setting the reference
fixes the dataset fingerprint, the noisy-label hash and the backbone weights hash, and per method the budget (its
hyperparameters named `epochs` or `*_epochs`). An entry is accepted only when all four match the reference's; every
other entry is listed with the reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from lnlbench.errors import ConfigError

FORMAT = "lnlbench-bundle"
VERSION = 1
MANIFEST = "manifest.json"


class BundleError(ConfigError):
    """A bundle that cannot be used: unreadable, not a bundle, or altered after export."""


@dataclass
class Bundle:
    """One read and verified bundle."""

    path: Path
    digest: str  # SHA-256 of its manifest
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".tar.gz").removesuffix(".tgz")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_bundle(src: Path, out: Path) -> tuple[int, str]:
    """Pack every finished record below `src` into the bundle `out`; returns (runs packed, bundle digest)."""
    import lnlbench

    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise ConfigError(f"{src} is not a directory; pass the --out directory of your runs or sweep")
    members: dict[str, bytes] = {}
    for path in sorted(src.rglob("result.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # `lnlbench report` names unreadable records; a bundle holds only finished ones
        if not isinstance(record, dict) or record.get("status") != "done" or not record.get("run_id"):
            continue
        base = f"runs/{record['run_id']}"
        members[f"{base}/result.json"] = path.read_bytes()
        config = path.with_name("config.json")
        if config.is_file():
            members[f"{base}/config.json"] = config.read_bytes()
    if not members:
        raise ConfigError(f"no finished run (result.json with status done) below {src}; nothing to export")
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "lnlbench": lnlbench.__version__,
        "members": {name: sha256(data) for name, data in sorted(members.items())},
    }
    manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for name, data in [(MANIFEST, manifest_bytes), *sorted(members.items())]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 0  # the same runs make the same archive members
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return sum(n.endswith("result.json") for n in members), sha256(manifest_bytes)


def read_bundle(path: Path) -> Bundle:
    """Read `path` and verify every member against the manifest; BundleError naming what is wrong."""
    path = Path(path)
    try:
        with tarfile.open(path, "r:gz") as tar:
            files = {}
            for info in tar.getmembers():
                if not info.isfile():
                    raise BundleError(f"bundle {path} holds {info.name!r}, which is not a plain file; a bundle from "
                                      "`lnlbench export` holds files only")
                files[info.name] = tar.extractfile(info).read()  # type: ignore[union-attr]
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BundleError(f"cannot read bundle {path} ({exc}); pass a .tar.gz made by `lnlbench export`") from None
    if MANIFEST not in files:
        raise BundleError(f"{path} has no {MANIFEST}: not a bundle made by `lnlbench export`")
    try:
        manifest = json.loads(files[MANIFEST])
        listed = dict(manifest["members"])
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{path}: unreadable {MANIFEST} ({exc}); export the bundle again") from None
    problems = []
    for name in sorted(set(files) - {MANIFEST} - set(listed)):
        problems.append(f"{name} is not in the manifest")
    for name, expected in sorted(listed.items()):
        if name not in files:
            problems.append(f"{name} is listed but missing")
        elif sha256(files[name]) != expected:
            problems.append(f"{name} has SHA-256 {sha256(files[name])[:16]}..., the manifest says {expected[:16]}...")
    if problems:
        raise BundleError(f"bundle {path} was altered after export (member hash mismatch): {'; '.join(problems)}; "
                          "ask its submitter for a fresh `lnlbench export`")
    records = []
    for name in sorted(files):
        parts = PurePosixPath(name).parts
        if len(parts) == 3 and parts[0] == "runs" and parts[2] == "result.json":
            try:
                records.append(json.loads(files[name]))
            except ValueError as exc:
                raise BundleError(f"bundle {path}: {name} is not JSON ({exc})") from None
    return Bundle(path, sha256(files[MANIFEST]), records)


def setting_of(record: dict[str, Any]) -> tuple:
    """The setting a record belongs to: dataset, noise model, rate, noise seed, backbone, weights, image size."""
    noise = record.get("noise") or {}
    backbone = record.get("backbone") or {}
    return (record.get("dataset"), noise.get("model"), noise.get("rate"), noise.get("seed"), backbone.get("name"),
            backbone.get("weights"), record.get("image_size"))


def setting_text(setting: tuple) -> str:
    dataset, model, rate, noise_seed, backbone, weights, size = setting
    return f"{dataset} {model} {rate} (noise seed {noise_seed}), {backbone} [{weights}] {size} px"


def budget_of(record: dict[str, Any]) -> dict[str, Any]:
    """A record's budget: its hyperparameters named `epochs` or ending in `_epochs`."""
    return {k: v for k, v in sorted((record.get("hparams") or {}).items()) if k == "epochs" or k.endswith("_epochs")}


PROTOCOL_FIELDS = {  # name shown in a reason -> how to read it from a record
    "dataset fingerprint": lambda r: r.get("data_fingerprint"),
    "noisy-label hash": lambda r: (r.get("noise") or {}).get("labels_sha256"),
    "backbone weights hash": lambda r: (r.get("backbone") or {}).get("weights_sha256"),
}


@dataclass
class Protocol:
    """What the reference fixes: per setting the three hashes, per (setting, method) the budget."""

    source: str
    hashes: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    budgets: dict[tuple, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, bundle: Bundle) -> Protocol:
        protocol = cls(f"{bundle.path.name} (digest {bundle.digest[:12]})")
        for record in bundle.records:
            setting = setting_of(record)
            protocol.hashes.setdefault(setting, {k: read(record) for k, read in PROTOCOL_FIELDS.items()})
            protocol.budgets.setdefault((setting, record.get("method")), budget_of(record))
        return protocol

    def reasons(self, record: dict[str, Any]) -> list[str]:
        """Why `record` does not follow this protocol; empty when it does."""
        setting = setting_of(record)
        if setting not in self.hashes:
            return [f"setting {setting_text(setting)} is not in the reference protocol {self.source}"]
        out = []
        for name, read in PROTOCOL_FIELDS.items():
            ours, ref = read(record), self.hashes[setting][name]
            if ours != ref:
                out.append(f"{name} {str(ours)[:16]}... differs from the reference protocol's {str(ref)[:16]}...")
        method = record.get("method")
        if (setting, method) not in self.budgets:
            out.append(f"the reference protocol has no run of {method} in this setting, so its budget cannot be "
                       "checked (add one to the protocol bundle)")
        elif budget_of(record) != self.budgets[(setting, method)]:
            out.append(f"budget {budget_of(record)} differs from the reference protocol's "
                       f"{self.budgets[(setting, method)]}")
        return out


@dataclass
class Entry:
    """One record from one bundle, accepted or rejected."""

    bundle: Bundle
    record: dict[str, Any]
    reasons: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.reasons


def judge(bundles: list[Bundle], protocol: Protocol) -> list[Entry]:
    """Every record of every bundle, with the reasons it is rejected (none: accepted). A run id seen before is
    rejected as a duplicate, so no run counts twice."""
    seen: dict[str, str] = {}
    entries = []
    for bundle in bundles:
        for record in bundle.records:
            entry = Entry(bundle, record, protocol.reasons(record))
            run_id = str(record.get("run_id"))
            if entry.accepted and run_id in seen:
                entry.reasons.append(f"duplicate of run {run_id} already accepted from {seen[run_id]}")
            if entry.accepted:
                seen[run_id] = bundle.path.name
            entries.append(entry)
    return entries


def write_accepted(entries: list[Entry], root: Path) -> None:
    """The accepted records as `root/<bundle>/<run_id>/result.json`: a results directory `build_report` reads."""
    for entry in entries:
        if entry.accepted:
            path = root / entry.bundle.name / str(entry.record["run_id"]) / "result.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(entry.record, indent=1))


def provenance(records: list[dict[str, Any]]) -> dict[str, str]:
    """Commit, code hash, hardware, contended flag and seeds of the runs of one leaderboard entry."""
    def values(read: Any) -> str:
        found = sorted({str(read(r)) for r in records})
        return ", ".join(found)

    env = lambda r: r.get("env") or {}  # noqa: E731
    cost = lambda r: r.get("cost") or {}  # noqa: E731
    return {
        "commit": values(lambda r: f"{env(r).get('git')}{' (dirty)' if env(r).get('git_dirty') else ''}"),
        "code hash": values(lambda r: env(r).get("code_sha256")),
        "hardware": values(lambda r: f"{cost(r).get('device')} x{cost(r).get('device_count', 1)}, "
                                     f"{(r.get('numerics') or {}).get('cpu_threads')} threads, host "
                                     f"{env(r).get('host')}"),
        "contended": values(lambda r: cost(r).get("contended")),
        "seeds": values(lambda r: r.get("seed")),
        "runs": values(lambda r: r.get("run_id")),
    }


def leaderboard_rows(entries: list[Entry]) -> list[dict[str, Any]]:
    """Accepted entries grouped per (setting, method, bundle, hyperparameters), ranked per setting by mean final
    test accuracy over their seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for entry in entries:
        if entry.accepted:
            r = entry.record
            key = (setting_of(r), r.get("method"), entry.bundle.name, json.dumps(r.get("hparams"), sort_keys=True))
            groups.setdefault(key, []).append(r)
    rows = []
    for (setting, method, bundle, _), records in groups.items():
        accs = [float(r["metrics"]["test_acc"]) for r in records]
        rows.append({"setting": setting_text(setting), "method": method, "bundle": bundle,
                     "acc": sum(accs) / len(accs), "n": len(accs), "provenance": provenance(records)})
    rows.sort(key=lambda row: (row["setting"], -row["acc"]))
    rank, last = 0, None
    for row in rows:
        rank = 1 if row["setting"] != last else rank + 1
        row["rank"], last = rank, row["setting"]
    return rows


def write_page(out: Path, bundles: list[Bundle], protocol: Protocol, entries: list[Entry]) -> Path:
    """`out/submissions.html`: the ranked entries, each linked to its provenance, then the rejected ones with
    their reasons; and `out/submissions.csv` with one row per record."""
    import csv
    from html import escape

    from lnlbench.report.html import CSS, SORT_JS

    rows = leaderboard_rows(entries)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>lnlbench leaderboard</title><style>{CSS}</style></head><body>",
             "<h1>lnlbench leaderboard (merged bundles)</h1>",
             f"<p>Reference protocol: {escape(protocol.source)}. An entry is accepted when its dataset fingerprint, "
             "noisy-label hash, backbone weights hash and budget match the reference's in its setting. Accuracy: "
             "final-epoch clean test accuracy, mean over the entry's seeds. "
             '<a href="index.html">Full report of the accepted runs</a>.</p>',
             "<h2>Bundles</h2><ul>"]
    parts += [f"<li>{escape(b.path.name)}: {len(b.records)} runs, digest <code>{b.digest}</code></li>" for b in bundles]
    parts += ["</ul>", "<h2>Ranking</h2>", '<div class="scroll"><table class="sortable" id="ranking"><thead><tr>'
              + "".join(f"<th>{c}</th>" for c in ("setting", "rank", "method", "bundle", "accuracy", "seeds",
                                                 "provenance")) + "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        parts.append(f"<tr><td>{escape(row['setting'])}</td><td class=\"r\">{row['rank']}</td>"
                     f"<td>{escape(str(row['method']))}</td><td>{escape(row['bundle'])}</td>"
                     f"<td class=\"r\">{row['acc']:.4f}</td><td class=\"r\">{row['n']}</td>"
                     f'<td><a href="#prov-{i}">provenance</a></td></tr>')
    parts.append("</tbody></table></div>")
    parts.append("<h2>Provenance</h2>")
    for i, row in enumerate(rows):
        items = "".join(f"<li>{escape(k)}: <code>{escape(v)}</code></li>" for k, v in row["provenance"].items())
        parts.append(f'<h3 id="prov-{i}">{escape(str(row["method"]))} · {escape(row["bundle"])} · '
                     f"{escape(row['setting'])}</h3><ul>{items}</ul>")
    rejected = [e for e in entries if not e.accepted]
    parts.append(f'<h2 id="rejected">Rejected entries ({len(rejected)})</h2>')
    if rejected:
        parts.append('<div class="scroll"><table class="sortable list" id="rejected-runs"><thead><tr><th>bundle</th>'
                     "<th>run</th><th>method</th><th>setting</th><th>reason</th></tr></thead><tbody>")
        parts += [f"<tr><td>{escape(e.bundle.path.name)}</td><td>{escape(str(e.record.get('run_id')))}</td>"
                  f"<td>{escape(str(e.record.get('method')))}</td><td>{escape(setting_text(setting_of(e.record)))}"
                  f"</td><td>{escape('; '.join(e.reasons))}</td></tr>" for e in rejected]
        parts.append("</tbody></table></div>")
    else:
        parts.append("<p>None.</p>")
    parts += [f"<script>{SORT_JS}</script>", "</body></html>"]
    page = out / "submissions.html"
    page.write_text("\n".join(parts) + "\n", encoding="utf-8")
    with open(out / "submissions.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["bundle", "run_id", "method", "setting", "status", "reason"])
        for e in entries:
            writer.writerow([e.bundle.path.name, e.record.get("run_id"), e.record.get("method"),
                             setting_text(setting_of(e.record)), "accepted" if e.accepted else "rejected",
                             "; ".join(e.reasons)])
    return page


def build_leaderboard(paths: list[Path], out: Path, protocol_path: Path | None = None) -> tuple[Path, list[Entry]]:
    """Read and verify the bundles, judge every record against the reference protocol, write the accepted runs
    under `out/submissions/` and the page; returns the page and the entries."""
    bundles = [read_bundle(Path(p)) for p in paths]
    reference = read_bundle(protocol_path) if protocol_path is not None else bundles[0]
    protocol = Protocol.of(reference)
    entries = judge(bundles, protocol)
    out.mkdir(parents=True, exist_ok=True)
    write_accepted(entries, out / "submissions")
    return write_page(out, bundles, protocol, entries), entries
