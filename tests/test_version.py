"""The workflow's version is written once (rhlh.__version__) and is the release tag: the
package metadata, the methods page and the deployment docs all show it."""

from __future__ import annotations

import re
import subprocess
import tomllib
from importlib import metadata

import pytest

import rhlh
from rhlh.report import methods_html
from rhlh.versions import collect_versions

from .conftest import REPO

VERSION = rhlh.__version__
# the docs that name the release a user deploys
DOCS = ["config/README.md", "docs/cluster.md"]


def test_version_is_a_release_number():
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION), VERSION


def test_pyproject_reads_the_version_from_rhlh():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"], "the version is written in rhlh/__init__.py"
    assert "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "rhlh.__version__"


def test_installed_metadata_has_the_same_version():
    try:
        installed = metadata.version("rhlh-workflow")
    except metadata.PackageNotFoundError:
        pytest.skip("rhlh-workflow is not installed (pip install -e .)")
    assert installed == VERSION


def test_methods_page_names_the_version():
    page = methods_html({}, collect_versions([]))
    assert f"version <b>{VERSION}</b>" in page
    assert f"v{VERSION}" in page


@pytest.mark.parametrize("doc", DOCS)
def test_deployment_docs_name_the_tag_of_this_version(doc):
    text = (REPO / doc).read_text()
    tags = re.findall(r"--tag ([^\s`]+)", text)
    assert tags, f"{doc} shows no snakedeploy --tag"
    assert set(tags) == {f"v{VERSION}"}, tags
    # an image tag (docker build -t .../rhlh:<version>) is the version too
    assert set(re.findall(r"rhlh:(\d[\w.]*)", text)) <= {VERSION}


def test_latest_git_tag_is_the_version():
    r = subprocess.run(
        ["git", "tag", "--list", "v*", "--sort=-v:refname"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip("not a git checkout")
    tags = r.stdout.split()
    if not tags:
        pytest.skip("no release tag yet")
    assert tags[0] == f"v{VERSION}", f"latest tag {tags[0]}, rhlh.__version__ {VERSION}"
