"""Provenance: the commit, library versions, host and device recorded with every run."""

import platform
import re
import shutil
import socket
import subprocess
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from procs import run_captured

from linreg import provenance
from linreg.provenance import REPO_ROOT, code_version, collect, run_device


@pytest.fixture(autouse=True)
def no_deployment_version(monkeypatch):
    monkeypatch.delenv("LINREG_VERSION", raising=False)
    provenance._git_version.cache_clear()
    yield
    provenance._git_version.cache_clear()


def git(repo, *args) -> str:
    done = run_captured(["git", "-C", str(repo), *args], f"git {' '.join(args)}")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def is_checkout_root(path) -> bool:
    """Whether `path` is the top of a git checkout (what code_version records a commit for)."""
    if shutil.which("git") is None:
        return False
    done = run_captured(["git", "-C", str(path), "rev-parse", "--show-toplevel"], "git rev-parse")
    return done.returncode == 0 and Path(done.stdout.strip()).resolve() == Path(path).resolve()


@pytest.fixture
def repo(tmp_path):
    """A git repository with one commit of one tracked file."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.invalid")
    git(root, "config", "user.name", "t")
    (root / "tracked.txt").write_text("one\n")
    git(root, "add", "tracked.txt")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_a_deployment_version_wins_over_git(monkeypatch):
    monkeypatch.setenv("LINREG_VERSION", "0123456789ab-dirty")
    assert code_version() == "0123456789ab-dirty"
    monkeypatch.setenv("LINREG_VERSION", "unversioned")  # scripts/server.sh outside a checkout
    assert code_version() is None


def test_a_clean_checkout_gives_its_commit_and_a_changed_one_says_dirty(repo):
    head = git(repo, "rev-parse", "HEAD")
    assert code_version(repo) == head[:12]
    provenance._git_version.cache_clear()
    (repo / "tracked.txt").write_text("two\n")
    assert code_version(repo) == head[:12] + "-dirty"
    provenance._git_version.cache_clear()
    (repo / "tracked.txt").write_text("one\n")
    (repo / "untracked.txt").write_text("new\n")  # untracked files do not make a tree dirty, as in server.sh
    assert code_version(repo) == head[:12]


def test_outside_a_checkout_there_is_no_commit(tmp_path, repo):
    assert code_version(tmp_path / "nowhere") is None
    plain = tmp_path / "plain"
    plain.mkdir()
    assert code_version(plain) is None
    inner = repo / "venv" / "site-packages"  # an installed copy inside another checkout is not that checkout
    inner.mkdir(parents=True)
    assert code_version(inner) is None


def test_git_runs_once_per_process(repo, monkeypatch):
    calls = []
    real = subprocess.run

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(provenance.subprocess, "run", counting)
    first = code_version(repo)
    after_first = len(calls)
    assert code_version(repo) == first and after_first == 3 and len(calls) == after_first


def test_this_checkout_is_recorded_by_its_commit():
    if not is_checkout_root(REPO_ROOT):
        pytest.skip(f"{REPO_ROOT} is not a git checkout (an exported tree): there is no commit to record")
    head = git(REPO_ROOT, "rev-parse", "HEAD")
    recorded = code_version()
    assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?", recorded) and recorded[:12] == head[:12]


def test_collect_records_versions_host_and_the_cpu():
    made = collect("cpu")
    assert made.python == platform.python_version() and made.numpy == np.__version__
    assert made.torch == version("torch") and made.prefect == version("prefect")
    assert made.host == socket.gethostname()
    assert made.device == "cpu" and made.device_name == provenance.cpu_model() and made.device_name
    assert made.cores >= 1 and made.load_average >= 0


def test_a_cuda_run_records_the_gpu_name(monkeypatch):
    import torch

    asked = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: asked.append(i) or f"Fake GPU {i}")
    assert collect("cuda:1").device_name == "Fake GPU 1" and asked == [1]
    assert collect("cuda").device_name == "Fake GPU 0"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a remote Dask worker's GPU
    assert collect("cuda:0").device_name is None


def test_the_run_device_is_the_cuda_one_when_any_fit_used_it():
    assert run_device(["cpu", "cpu"]) == "cpu"
    assert run_device(["cpu", "cuda:0", "cuda:0"]) == "cuda:0"
    assert run_device([]) == "cpu"
