# Sourced by scripts/demo and scripts/test: make .venv with everything installed, once.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pick_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Digital Village needs Python 3.11 or newer; none found on PATH" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$(pick_python)" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "== installing Digital Village and its dependencies into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test,postgres]"
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
