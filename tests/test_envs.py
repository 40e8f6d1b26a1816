"""Conda environments of the rules: they exist, parse, are pinned, agree with requirements.lock,
and list every third-party package the rule's script imports (docs/cluster.md, "Conda")."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "workflow" / "rules"
ENVS = REPO / "envs"
SCRIPTS = REPO / "scripts"

# conda-forge / bioconda package name -> PyPI distribution name, where they differ
CONDA_TO_PIP = {
    "matplotlib-base": "matplotlib",
    "pytables": "tables",
    "snakemake-minimal": "snakemake",
    "pytorch": "torch",
    "python-kaleido": "kaleido",
}
# conda packages that are not Python distributions: pinned, but not in requirements.lock
NOT_PYPI = re.compile(r"^(python|pip|r-.*|bioconductor-.*|r|openjdk|hdf5|libblas|liblapack)$")


def norm(name: str) -> str:
    """PyPI-normalised distribution name (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path = REPO / "requirements.lock") -> dict[str, str]:
    """requirements.lock as {normalised name: version}."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"requirements.lock: '{line}' is not pinned with =="
        out[norm(name)] = version.strip()
    return out


def parse_spec(spec: str) -> tuple[str, str | None]:
    """A conda MatchSpec 'name=1.2' / 'name==1.2' / 'channel::name=1.2' -> (name, version)."""
    spec = spec.split("::")[-1].strip()
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(?:(==|=)\s*([^\s=<>!,|*]+))?", spec)
    if not m:
        return spec, None  # ranges, wildcards, build strings: not a plain pin
    return m.group(1), m.group(3)


def env_packages(env: dict) -> list[tuple[str, str | None, str]]:
    """(name, version, source) for every dependency: source is 'conda' or 'pip'."""
    out = []
    for dep in env.get("dependencies") or []:
        if isinstance(dep, dict):
            for spec in dep.get("pip", []):
                name, _, version = spec.partition("==")
                out.append((name.strip(), version.strip() or None, "pip"))
        else:
            name, version = parse_spec(str(dep))
            out.append((name, version, "conda"))
    return out


def rule_blocks(smk: Path) -> dict[str, str]:
    """Rule name -> text of its block, for one .smk file."""
    text = smk.read_text()
    parts = re.split(r"^(?:rule|checkpoint)\s+(\w+)\s*:", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def directive(block: str, name: str) -> str | None:
    """The quoted string of a directive (`conda:` / `script:`), inline or on the next line."""
    m = re.search(rf"^\s+{name}:\s*\n?\s*[\"']([^\"']+)[\"']", block, flags=re.M)
    return m.group(1) if m else None


def rule_envs() -> list[tuple[str, Path, Path | None]]:
    """(rule, env file, script or None) for every rule with a conda directive."""
    out = []
    for smk in sorted(RULES.glob("*.smk")):
        for rule, block in rule_blocks(smk).items():
            env = directive(block, "conda")
            if env is None:
                continue
            script = directive(block, "script")
            out.append(
                (
                    f"{smk.name}:{rule}",
                    (smk.parent / env).resolve(),
                    (smk.parent / script).resolve() if script else None,
                )
            )
    return out


def _module_level(tree: ast.Module):
    """Nodes executed on import: module body, descending into if/try/with but not defs."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        todo.extend(ast.iter_child_nodes(node))


def imported_modules(script: Path, lib: Path = SCRIPTS / "rhlh") -> set[str]:
    """Third-party top-level modules a script needs: all of the script's own imports, plus the
    module-level imports of the rhlh modules it loads (a function's lazy import is only needed
    when that function runs, so it is not counted)."""
    seen, todo, found = set(), [(script, True)], set()
    while todo:
        path, is_script = todo.pop()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree) if is_script else _module_level(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import inside rhlh
                    names = [f"rhlh.{node.module}"] if node.module else []
                    names += [f"rhlh.{a.name}" for a in node.names if not node.module]
                elif node.module:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                top, *rest = name.split(".")
                if top == "rhlh":
                    todo.append((lib / "__init__.py", False))
                    if rest:
                        todo.append((lib / f"{rest[0]}.py", False))
                elif top not in sys.stdlib_module_names and top != "__future__":
                    found.add(top)
    return found


_DISTS = metadata.packages_distributions()


def module_distribution(module: str) -> str:
    """The installed distribution (normalised) that provides an importable module."""
    dists = _DISTS.get(module)
    return norm(dists[0]) if dists else norm(module)


ALL_RULE_ENVS = rule_envs()
ENV_FILES = sorted(ENVS.glob("*.y*ml"))
LOCK = read_lock()


# --- the helpers themselves ----------------------------------------------------------------


def test_parse_spec_forms():
    assert parse_spec("pandas=2.3.3") == ("pandas", "2.3.3")
    assert parse_spec("conda-forge::numpy==2.4.6") == ("numpy", "2.4.6")
    assert parse_spec("pip") == ("pip", None)
    assert parse_spec("scipy>=1.13") == ("scipy>=1.13", None)
    assert parse_spec("numpy=2.*") == ("numpy=2.*", None)


def test_directive_and_imports(tmp_path):
    block = (
        '\n    input:\n        "a"\n    conda:\n        "../../envs/x.yaml"\n    script: "s.py"\n'
    )
    assert directive(block, "conda") == "../../envs/x.yaml"
    assert directive(block, "script") == "s.py"
    lib = tmp_path / "rhlh"
    lib.mkdir()
    (lib / "__init__.py").write_text("")
    # module level (even under try) counts; a function's lazy import does not
    (lib / "io.py").write_text(
        "try:\n    import pandas as pd\nexcept ImportError:\n    pd = None\n"
        "def f():\n    import sklearn\n"
    )
    script = tmp_path / "s.py"
    script.write_text(
        "import os\nimport numpy as np\nfrom scipy import stats\nfrom rhlh.io import f\n"
        "def g():\n    import yaml\n"
    )
    assert imported_modules(script, lib) == {"numpy", "scipy", "yaml", "pandas"}
    assert module_distribution("yaml") == "pyyaml"
    assert module_distribution("sklearn") == "scikit-learn"


def test_lock_reader_rejects_unpinned(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==2.4.6\npandas>=2\n")
    with pytest.raises(AssertionError, match="pandas"):
        read_lock(lock)


# --- the project's files --------------------------------------------------------------------


def test_rules_have_conda_envs():
    assert ALL_RULE_ENVS, "no conda: directive found in workflow/rules/*.smk"


@pytest.mark.parametrize("rule,env,script", ALL_RULE_ENVS, ids=[r[0] for r in ALL_RULE_ENVS])
def test_conda_directive_points_at_env_file(rule, env, script):
    assert env.is_file(), f"{rule}: conda env {env} does not exist"
    assert env.parent == ENVS, f"{rule}: conda env {env} is not under envs/"


@pytest.mark.parametrize("path", ENV_FILES, ids=[p.name for p in ENV_FILES])
def test_env_parses_and_is_pinned(path):
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict), f"{path.name}: not a YAML mapping"
    assert env.get("channels"), f"{path.name}: no channels"
    assert "defaults" not in env["channels"], f"{path.name}: 'defaults' channel (licence)"
    pkgs = env_packages(env)
    assert pkgs, f"{path.name}: no dependencies"
    unpinned = [name for name, version, _ in pkgs if not version]
    assert not unpinned, f"{path.name}: not pinned to a version (name=X.Y.Z): {unpinned}"


@pytest.mark.parametrize("path", ENV_FILES, ids=[p.name for p in ENV_FILES])
def test_env_versions_agree_with_lock(path):
    env = yaml.safe_load(path.read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    problems = []
    for name, version, source in env_packages(env):
        if version is None:
            continue  # reported by test_env_parses_and_is_pinned
        if name == "python":
            floor = re.search(r">=\s*([\d.]+)", project["requires-python"]).group(1)
            as_tuple = [int(x) for x in version.split(".")[:2]]
            if as_tuple < [int(x) for x in floor.split(".")[:2]]:
                problems.append(f"python={version} below requires-python {floor}")
            continue
        if source == "conda" and NOT_PYPI.match(name):
            continue
        pip_name = norm(CONDA_TO_PIP.get(name, name) if source == "conda" else name)
        if pip_name not in LOCK:
            problems.append(f"{name}: not in requirements.lock (add it, or map its conda name)")
        elif LOCK[pip_name] != version:
            problems.append(f"{name}={version} but requirements.lock has {LOCK[pip_name]}")
    assert not problems, f"{path.name}: " + "; ".join(problems)


RULES_WITH_SCRIPTS = [r for r in ALL_RULE_ENVS if r[2] is not None]


@pytest.mark.parametrize(
    "rule,env,script", RULES_WITH_SCRIPTS, ids=[r[0] for r in RULES_WITH_SCRIPTS]
)
def test_env_provides_script_imports(rule, env, script):
    assert script.is_file(), f"{rule}: script {script} does not exist"
    if not env.is_file():
        pytest.fail(f"{rule}: conda env {env} does not exist")
    listed = set()
    for name, _, source in env_packages(yaml.safe_load(env.read_text())):
        listed.add(norm(CONDA_TO_PIP.get(name, name) if source == "conda" else name))
    needed = {module_distribution(m) for m in imported_modules(script)}
    # the snakemake object is injected by the script directive; the module is not imported
    needed.discard("snakemake")
    missing = sorted(needed - listed)
    assert not missing, (
        f"{rule}: {script.relative_to(REPO)} imports {missing} but {env.name} does not list them"
    )
