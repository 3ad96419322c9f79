#!/usr/bin/env bash
# pip install with one line per package fetched or built, not pip's full chatter and
# not minutes of silence; pip's own exit status. Usage: pip-progress.sh PIP ARGS...
set -euo pipefail
"$@" --disable-pip-version-check --no-input --progress-bar off 2>&1 |
  { grep --line-buffered -E '^(Collecting|Building wheel|Successfully installed|ERROR|error)' || true; } |
  sed -u -E 's/ \(from .*\)$//; s/^Successfully installed (.{0,100}).*/installed: \1 .../; s/^/  /'
