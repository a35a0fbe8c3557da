"""The conformance kit (lnlbench.testing, `lnlbench check-plugin`): built-in methods and the third-party fixture
pass it; each deliberately broken fixture method fails exactly the check it breaks, named, with a reason.

Speed: the static checks run on every registered method; the full kit (about eight tiny runs on digits at 8 px)
runs on `fft` and `coteaching` (a selecting method) here, on the third-party fixture and on each broken fixture.
`tests/test_resume_methods.py` covers exact resume of every built-in method.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lnlbench.plugin_manager import method_registry, plugin_manager
from lnlbench.testing import CHECKS, conformance, run_conformance
from lnlbench.testing.kit import STATIC_CHECKS

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_module(package: str, name: str):
    """A fixture package imported from its file, its directory kept off sys.path (where a build's egg-info would
    make its entry point load into every registry)."""
    spec = importlib.util.spec_from_file_location(name, FIXTURES / package / name / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lnlbench_broken = fixture_module("broken_plugin", "lnlbench_broken")
lnlbench_majority = fixture_module("thirdparty_plugin", "lnlbench_majority")

FAST = {"batch_size": 256}  # a larger batch: fewer steps, the same checks


@pytest.mark.parametrize("name", method_registry().names())
def test_every_registered_method_passes_the_static_checks(name):
    report = run_conformance(name, checks=list(STATIC_CHECKS))
    assert report.passed, report.text()


@pytest.mark.parametrize("name", ["fft", "coteaching"])
def test_builtin_methods_pass_the_whole_kit(name):
    report = conformance(name, hparams=FAST)
    assert [r.name for r in report.results] == list(CHECKS)


def test_the_thirdparty_fixture_passes_the_whole_kit():
    report = conformance(lnlbench_majority.Majority)
    assert "nothing to resume" in report.get("resume_exact").reason


@pytest.fixture(scope="module")
def broken_registered():
    """The broken fixture's methods in the registry for this module (as if installed)."""
    plugin_manager().register(lnlbench_broken, name="lnlbench-broken-test")
    method_registry.cache_clear()
    yield
    plugin_manager().unregister(lnlbench_broken)
    method_registry.cache_clear()


@pytest.mark.parametrize("name", sorted(lnlbench_broken.BROKEN))
def test_each_broken_method_fails_exactly_its_check(broken_registered, name):
    report = run_conformance(name)
    broken = lnlbench_broken.BROKEN[name]
    assert not report.passed
    assert report.get(broken).passed is False, report.text()
    assert report.failed == [broken] or (broken == "deterministic" and set(report.failed) == {
        "deterministic", "resume_exact", "no_clean_labels"}), report.text()
    if broken == "deterministic":  # the comparisons that need determinism say why they did not run
        assert report.get("resume_exact").passed is None
        assert "see deterministic" in report.get("no_clean_labels").reason
    with pytest.raises(AssertionError, match=broken):
        conformance(name)


def test_an_unknown_check_or_too_small_a_budget_is_a_configuration_error():
    from lnlbench.errors import ConfigError

    with pytest.raises(ConfigError, match="no conformance check"):
        run_conformance("fft", checks=["nosuch"])
    with pytest.raises(ConfigError, match="at least 2"):
        run_conformance("fft", epochs=1)


def test_check_plugin_names_each_failed_check_and_exits_nonzero(tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(FIXTURES / "broken_plugin")], check=True)
    env = dict(os.environ, PYTHONPATH=str(site))

    def cli(*names: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lnlbench.cli", "check-plugin", *names], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)

    bad = cli("broken-unsourced", "broken-resume")
    assert bad.returncode == 1, bad.stderr
    assert "FAIL     hparams_declared     momentum: no source" in bad.stdout
    assert "temperature: numeric default 1.0 without bounds" in bad.stdout
    assert "FAIL     resume_exact" in bad.stdout and "the record differs at" in bad.stdout
    assert "broken-resume does not conform (failed: resume_exact)" in bad.stdout
    good = cli("lp")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "8 of 8 checks passed: lp conforms" in good.stdout
    unknown = cli("nosuch")
    assert unknown.returncode == 2 and "nosuch" in unknown.stderr
