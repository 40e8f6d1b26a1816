#!/usr/bin/env bash
# The project's test command: installs into .venv if needed, then lint + format checks + pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q -c requirements.lock -e ".[test,slurm]"
# the report test opens the HTML report in Debian's headless Chromium
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing chromium (apt)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
        >/dev/null 2>&1 || echo "chromium could not be installed: the browser test will skip"
fi
echo "== ruff"
ruff check scripts tests tools
ruff format --check scripts tests tools
echo "== snakefmt"
snakefmt --check Snakefile workflow/rules/
echo "== snakemake --lint"
lint_dir=$(mktemp -d)
snakemake --lint --config results="$lint_dir/results" > "$lint_dir/lint.txt" 2>&1 || { cat "$lint_dir/lint.txt"; exit 1; }
if grep -qiE "^(Lints for|Rule )" "$lint_dir/lint.txt"; then cat "$lint_dir/lint.txt"; exit 1; fi
rm -rf "$lint_dir"
echo "== pytest"
python -m pytest -q -p no:cacheprovider "$@"
