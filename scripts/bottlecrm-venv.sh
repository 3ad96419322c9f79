#!/usr/bin/env bash
# Create .tools/bottlecrm-venv: BottleCRM (PyPI django-crm==1.35.0) + gunicorn on Python 3.12,
# pinned by tests/e2e/bottlecrm/constraints.txt. BottleCRM is the real upstream CRM for the
# end-to-end tests; it needs Python >= 3.12 while the gateway runs on 3.11, hence its own venv.
#
# Idempotent: a stamp file records the constraints hash and interpreter; when both match,
# nothing is installed. Also keeps a migrated template database in the venv
# ($VENV/migrated.sqlite3) so test sessions skip the slow migrations.
# Prints the venv's python path on the last line of stdout.
#
# Environment:
#   BOTTLECRM_VENV     target directory (default: <repo>/.tools/bottlecrm-venv)
#   BOTTLECRM_PYTHON   interpreter to use (default: python3.12 on PATH, then pyenv 3.12.*)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BOTTLECRM_VENV:-$ROOT/.tools/bottlecrm-venv}"
CONSTRAINTS="$ROOT/tests/e2e/bottlecrm/constraints.txt"
STAMP="$VENV/.bottlecrm-stamp"
TEMPLATE="$VENV/migrated.sqlite3"

find_python() {
    if [[ -n "${BOTTLECRM_PYTHON:-}" ]]; then
        echo "$BOTTLECRM_PYTHON"
        return 0
    fi
    local candidate
    # A real 3.12 binary: pyenv shims on PATH may resolve to "version not installed".
    for candidate in "$(command -v python3.12 2>/dev/null || true)" \
        /root/.pyenv/versions/3.12.*/bin/python3.12 \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.*/bin/python3.12; do
        if [[ -n "$candidate" && -x "$candidate" ]] &&
            "$candidate" -c 'import sys, venv; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if ! PYTHON="$(find_python)"; then
    echo "bottlecrm-venv: no Python 3.12 interpreter found (looked for python3.12 on PATH" \
        "and pyenv versions 3.12.*). BottleCRM 1.35.0 needs Python >= 3.12, and Debian 12" \
        "has no python3.12 package: install one with 'pyenv install 3.12' or set" \
        "BOTTLECRM_PYTHON=/path/to/python3.12." >&2
    exit 2
fi

WANT="$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1) $("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$VENV/bin/gunicorn" ]]; then
    echo "bottlecrm-venv: packages up to date ($VENV)" >&2
else
    echo "bottlecrm-venv: building $VENV with $PYTHON" >&2
    rm -f "$STAMP" "$TEMPLATE"
    if [[ ! -x "$VENV/bin/python" ]]; then
        "$PYTHON" -m venv "$VENV"
    fi
    PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input -q)
    "${PIP[@]}" install -c "$CONSTRAINTS" "django-crm==1.35.0" gunicorn >&2
    # Fail now, not in the first test, if the install is unusable.
    DJANGO_SETTINGS_MODULE=crm.test_settings "$VENV/bin/python" -c 'import django; django.setup()' >&2
    echo "$WANT" >"$STAMP"
fi

# BottleCRM's ~240 migrations take about 100 s of CPU on SQLite. Run them once per venv
# into a template database that each test session copies (see tests/e2e/bottlecrm/seed.py).
if [[ ! -f "$TEMPLATE" ]]; then
    echo "bottlecrm-venv: migrating the template database (about 100 s)" >&2
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
    (
        cd "$WORK"
        BOTTLECRM_DATA_DIR="$WORK" DJANGO_SETTINGS_MODULE=settings_sqlite \
            PYTHONPATH="$ROOT/tests/e2e/bottlecrm" \
            "$VENV/bin/django-admin" migrate --verbosity 0 --no-input >/dev/null
    )
    mv "$WORK/bottlecrm.sqlite3" "$TEMPLATE.tmp"
    mv "$TEMPLATE.tmp" "$TEMPLATE"
fi
echo "bottlecrm-venv: ready" >&2
echo "$VENV/bin/python"
