"""Run guest-marked tests inside VMs: one boot per (kernel, level) per session.

A test says where it runs with a marker; kernel and level are each a name, a
list of names, or "all" (the default):

    @pytest.mark.guest(kernel="6.12", level=["integrity", "confidentiality"])
    def test_something(guest_target: Target) -> None: ...

A guest test that changes its boot for good (seals the enforcer, raises the
kernel's level) says so, and runs after every other test of its boot, in
increasing ``step`` (then in collection order), whatever its file is called:

    @pytest.mark.one_way(step=2, why="raises the kernel's lockdown level until reboot")

Each marked test is parametrized once per target (node id suffix
``[6.12-integrity]``). On the host those items do not run their body: the
first one of a target boots the guest (tests/vm/runner.py), which runs pytest
on exactly that target's node ids with LOCKDOWNCTL_IN_GUEST=1; every item
then reports what the guest reported for its node id. A kernel splat in the
guest's dmesg fails every test of that boot.

Environment:
  LOCKDOWNCTL_REQUIRE_VM=1   missing QEMU / vng / kernel / guest pytest fails instead of skipping
  LOCKDOWNCTL_CAPTURE=1      copy each guest's dmesg and capture/ files to tests/data/guests/
  LOCKDOWNCTL_VM_RESULTS=DIR keep each boot's results in DIR/<kernel>-<level> (default: a temp dir)
  LOCKDOWNCTL_VM_TIMEOUT=S   seconds per boot (default 240 + 20 per guest test in it, or the
                             test's guest(seconds=N))
  LOCKDOWNCTL_VM_ACCEL=tcg|kvm|auto
  LOCKDOWNCTL_KERNEL_CACHE=DIR where scripts/vm-setup.sh unpacked the kernels (default /opt/lockdownctl-kernels)
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _pytest.skipping import evaluate_skip_marks

from .runner import (
    DEFAULT_TIMEOUT,
    KERNELS,
    LEVELS,
    REPO,
    Target,
    VmResult,
    VmUnavailable,
    boot,
    build_pytest_command,
    check_available,
    find_vng,
    guest_pytest_problem,
    guest_python,
)
from .splat import format_report

IN_GUEST = os.environ.get("LOCKDOWNCTL_IN_GUEST") == "1"
GUESTS_DATA = REPO / "tests" / "data" / "guests"
PER_TEST_TIMEOUT = 20.0  # seconds added to a boot's timeout per guest test in it
GUEST_REPORT = "results.json"  # per node id outcome, written by the guest side of this file


def targets_of(mark: pytest.Mark) -> list[Target]:
    def names(value: Any, choices: tuple[str, ...], what: str) -> list[str]:
        if value == "all":
            return list(choices)
        picked = [value] if isinstance(value, str) else list(value)
        for name in picked:
            if name not in choices:
                raise pytest.UsageError(f"guest marker: unknown {what} {name!r}; choose from {choices} or 'all'")
        return picked

    if mark.args:
        raise pytest.UsageError("guest marker takes keywords only: guest(kernel=..., level=...)")
    kernels = names(mark.kwargs.get("kernel", "all"), tuple(KERNELS), "kernel")
    levels = names(mark.kwargs.get("level", "all"), LEVELS, "level")
    return [Target(k, lv) for k in kernels for lv in levels]


def guest_env_target() -> Target:
    return Target(os.environ["LOCKDOWNCTL_GUEST_KERNEL"], os.environ["LOCKDOWNCTL_GUEST_LEVEL"])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    mark = metafunc.definition.get_closest_marker("guest")
    if mark is not None:
        targets = targets_of(mark)
        metafunc.parametrize("guest_target", targets, ids=[t.name for t in targets], indirect=True)


@pytest.fixture(autouse=True)
def guest_target(request: pytest.FixtureRequest) -> Target | None:
    """The (kernel, level) a guest test runs in; None for other tests."""
    target: Target | None = getattr(request, "param", None)
    if target is not None:
        # Only reached in a guest: on the host these items are GuestResultItems.
        assert target == guest_env_target(), f"{request.node.nodeid} routed to guest {guest_env_target().name}"
        assert os.uname().release.startswith(target.kernel + "."), f"booted {os.uname().release}"
    return target


@pytest.fixture(scope="session")
def guest_capture() -> Path:
    """Directory for files the host copies to tests/data/guests/<target>/ (LOCKDOWNCTL_CAPTURE=1)."""
    path = Path(os.environ["LOCKDOWNCTL_GUEST_RESULTS"]) / "capture"
    path.mkdir(exist_ok=True)
    return path


def item_target(item: pytest.Item) -> Target | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("guest_target") if callspec is not None else None


def one_way_step(item: pytest.Item) -> int:
    """0 for an ordinary test; the marker's step (>= 1) for one that changes its boot for good."""
    mark = item.get_closest_marker("one_way")
    if mark is None:
        return 0
    step = mark.kwargs.get("step")
    if not isinstance(step, int) or step < 1 or not mark.kwargs.get("why") or mark.args:
        raise pytest.UsageError(f"{item.nodeid}: write one_way(step=N >= 1, why='what it changes until reboot')")
    return step


def run_order(items: list[pytest.Item]) -> list[pytest.Item]:
    """Ordinary tests first, then one-way ones by step; stable otherwise."""
    return sorted(items, key=one_way_step)


@pytest.hookimpl(trylast=True)  # after -k / -m deselection, which reads the original items
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items[:] = run_order(items)
    if IN_GUEST:
        # Drop tests meant for another guest (`pytest tests/vm` run by hand in a guest).
        here = guest_env_target()
        keep = [it for it in items if item_target(it) in (None, here)]
        if len(keep) < len(items):
            config.hook.pytest_deselected(items=[it for it in items if item_target(it) not in (None, here)])
            items[:] = keep
        return
    # A test skipped here (an opt-in one: a switch read on the host) stays an
    # ordinary item, so pytest reports its skip and no guest runs it: in the
    # guest its condition reads differently, and it would run (and could seal
    # the guest under later tests).
    items[:] = [
        GuestResultItem.from_parent(it.parent, name=it.name, original=it, target=t)
        if (t := item_target(it)) is not None and it.parent is not None and evaluate_skip_marks(it) is None
        else it
        for it in items
    ]


def pytest_configure(config: pytest.Config) -> None:
    if IN_GUEST:
        config.pluginmanager.register(GuestReporter(), "lockdownctl-guest-reporter")
    else:
        config.stash[RUNS] = GuestRuns()


# --- host side ---------------------------------------------------------------


@dataclass
class Boot:
    target: Target
    unavailable: str = ""  # why this host cannot run the guest
    result: VmResult | None = None
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    node_ids: list[str] = field(default_factory=list)


class GuestRuns:
    """The boots of one pytest session, made on first use and shared by their tests."""

    def __init__(self) -> None:
        self.boots: dict[Target, Boot] = {}

    def get(self, target: Target, session: pytest.Session) -> Boot:
        if target not in self.boots:
            self.boots[target] = self._boot(target, session)
        return self.boots[target]

    def _boot(self, target: Target, session: pytest.Session) -> Boot:
        python, env = guest_python()
        try:
            check_available(target)
        except VmUnavailable as exc:
            return Boot(target, unavailable=str(exc))
        if missing := guest_pytest_problem(python, env):
            return Boot(target, unavailable=missing)
        node_ids = guest_node_ids(session.items, target)
        results = results_dir(target)
        # A hang guard, not a budget: the boot's allowance plus some per test, so
        # that later issues adding guest tests (or a busy host) do not hit it.
        timeout = float(os.environ.get("LOCKDOWNCTL_VM_TIMEOUT", DEFAULT_TIMEOUT + allowance(session.items, target)))
        result = boot(target, build_pytest_command(python, node_ids, results), results, timeout=timeout)
        report = results / GUEST_REPORT
        outcomes = json.loads(report.read_text()) if report.exists() else {}
        if os.environ.get("LOCKDOWNCTL_CAPTURE") == "1":
            capture(result)
        return Boot(target, result=result, outcomes=outcomes, node_ids=node_ids)


RUNS = pytest.StashKey[GuestRuns]()


def results_dir(target: Target) -> Path:
    base = os.environ.get("LOCKDOWNCTL_VM_RESULTS")
    if base:
        path = Path(base).resolve() / target.name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path
    return Path(tempfile.mkdtemp(prefix=f"lockdownctl-vm-{target.name}-"))


def allowance(items: list[pytest.Item], target: Target) -> float:
    """Seconds a boot's tests add to its hang guard: PER_TEST_TIMEOUT each, or a slow
    test's own figure, ``guest(..., seconds=N)`` (ansible-playbook under TCG)."""
    total = 0.0
    for it in items:
        if isinstance(it, GuestResultItem) and it.target == target:
            mark = it.get_closest_marker("guest")
            total += float(mark.kwargs.get("seconds", PER_TEST_TIMEOUT) if mark else PER_TEST_TIMEOUT)
    return total


def guest_node_ids(items: list[pytest.Item], target: Target) -> list[str]:
    """The node ids a boot of ``target`` runs: its guest tests the host did not skip."""
    return [it.nodeid for it in items if isinstance(it, GuestResultItem) and it.target == target]


class GuestResultItem(pytest.Item):
    """Stands for a guest test on the host: reports the guest's outcome for its node id."""

    def __init__(self, *, original: pytest.Item, target: Target, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self._location = original.reportinfo()
        self.own_markers.extend(original.own_markers)
        self.keywords.update(original.keywords)

    def reportinfo(self) -> Any:
        return self._location

    def runtest(self) -> None:
        boot_ = self.config.stash[RUNS].get(self.target, self.session)
        if boot_.unavailable:
            message = f"VM guest {self.target.name} cannot run here: {boot_.unavailable}"
            if os.environ.get("LOCKDOWNCTL_REQUIRE_VM") == "1":
                pytest.fail(message + " (LOCKDOWNCTL_REQUIRE_VM=1)", pytrace=False)
            pytest.skip(message)
        result = boot_.result
        assert result is not None
        where = f"guest {self.target.name} (results: {result.results})"
        if result.splats:
            pytest.fail(f"kernel splat in {where}:\n{format_report(result.splats)}", pytrace=False)
        if result.dmesg is None:  # hang or crash: the wrapper never finished
            pytest.fail(result.problems(), pytrace=False)
        outcome = boot_.outcomes.get(self.nodeid)
        if outcome is None:
            pytest.fail(
                f"{where} did not report this test; exit status {result.exit_status}\n{result.console_tail()}",
                pytrace=False,
            )
        if outcome["outcome"] == "skipped":
            pytest.skip(f"in {where}: {outcome['text']}")
        if outcome["outcome"] == "failed":
            pytest.fail(f"in {where}, {outcome['when']}:\n{outcome['text']}", pytrace=False)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return str(excinfo.value)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Clean boots leave nothing behind; failed ones keep their results for reading.
    runs = session.config.stash.get(RUNS, None)
    if runs is None or os.environ.get("LOCKDOWNCTL_VM_RESULTS"):
        return
    for boot_ in runs.boots.values():
        r = boot_.result
        if r is not None and r.ok:  # exit status 0: every guest test passed or skipped
            shutil.rmtree(r.results, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    runs = config.stash.get(RUNS, None)
    if not runs or not runs.boots:
        return
    terminalreporter.section("VM guests")
    for boot_ in runs.boots.values():
        if boot_.result is None:
            terminalreporter.write_line(f"{boot_.target.name}: not run: {boot_.unavailable}")
            continue
        r = boot_.result
        terminalreporter.write_line(
            f"{r.target.name}: {r.duration:.1f} s ({r.accel}, {' '.join(kernel_package(r.target))}), "
            f"{len(boot_.node_ids)} tests, exit status {r.exit_status}, "
            f"{len(r.splats)} splat lines" + (f", results in {r.results}" if r.results.exists() else "")
        )


def capture(result: VmResult) -> None:
    """Refresh tests/data/guests/<kernel>-<level>/ from a boot (LOCKDOWNCTL_CAPTURE=1 only)."""
    if result.dmesg is None or result.splats:
        return  # keep the previous clean capture rather than a broken one
    out = GUESTS_DATA / result.target.name
    out.mkdir(parents=True, exist_ok=True)
    package, version = kernel_package(result.target)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    how = (
        f"LOCKDOWNCTL_CAPTURE=1 pytest tests/vm: tests/vm/runner.py booted {result.kernel_image} "
        f"with {tool_versions()} ({'TCG, vng --disable-kvm' if result.accel == 'tcg' else 'KVM'}); "
        "the guest ran its tests, then `dmesg`"
    )
    header = [
        f"# kernel: {package} {version}",
        f"# appended command line: {result.append}",
        f"# captured: {when}",
        f"# produced by: {how}",
        "# The lines below are the guest's dmesg, unedited.",
    ]
    (out / "dmesg.txt").write_text("\n".join(header) + "\n" + result.dmesg)
    captured = sorted(p.name for p in (result.results / "capture").glob("*") if p.is_file())
    for name in captured:
        shutil.copyfile(result.results / "capture" / name, out / name)
    (out / "README").write_text(
        f"Real output of guest {result.target.name}; refreshed by `LOCKDOWNCTL_CAPTURE=1 scripts/test.sh tests/vm`.\n"
        f"kernel: {package} {version}\n"
        f"appended command line: {result.append}\n"
        f"captured: {when}\n"
        f"produced by: {how}\n"
        "dmesg.txt: the guest's full dmesg after its tests, with the same facts as '# ' header lines.\n"
        + "".join(f"{name}: written by the guest tests (tests/vm/test_guest_*.py), unedited.\n" for name in captured)
    )


def tool_versions() -> str:
    """"virtme-ng 1.42, QEMU 7.2.x" as installed here."""
    out = []
    for cmd in ([find_vng(), "--version"], ["qemu-system-x86_64", "--version"]):
        try:
            out.append(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[0])
        except (OSError, IndexError, subprocess.CalledProcessError):
            out.append(f"{Path(cmd[0]).name} (version unknown)")
    return ", ".join(out)


def kernel_package(target: Target) -> tuple[str, str]:
    """(Debian packages, version) the guest's kernel was unpacked from (tests/vm/kernels.txt)."""
    pin = KERNELS[target.kernel]
    return " ".join(pin.packages), pin.version


# --- guest side --------------------------------------------------------------


class GuestReporter:
    """Writes each test's outcome by node id for the host (junit names are lossy)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, dict[str, Any]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        previous = self.outcomes.get(report.nodeid)
        if previous is not None and previous["outcome"] != "passed":
            return  # keep the first failure or skip (a teardown error after a failed call)
        if report.failed or report.skipped or previous is None:
            if report.skipped and hasattr(report, "wasxfail"):
                text = f"xfail: {report.wasxfail}"
            elif report.skipped and isinstance(report.longrepr, tuple):
                text = report.longrepr[2]  # (file, line, "Skipped: reason")
            else:
                sections = "".join(f"\n--- {title} ---\n{content}" for title, content in report.sections)
                text = report.longreprtext + sections
            self.outcomes[report.nodeid] = {"outcome": report.outcome, "when": report.when, "text": text}

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        results = Path(os.environ["LOCKDOWNCTL_GUEST_RESULTS"])
        (results / GUEST_REPORT).write_text(json.dumps(self.outcomes, indent=1))
