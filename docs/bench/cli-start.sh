#!/usr/bin/env bash
# Start-up time of the peer binary: `claudemesh version` and `claudemesh
# hook idle` (which Claude Code runs synchronously on every prompt and
# every stop) against a minimal Go binary that links net/http, in one
# hyperfine run. With a git revision as $1, that revision's claudemesh is
# measured too ("before"). No mesh is joined: the hook reads the empty
# config and exits. Needs hyperfine (apt-get install hyperfine).
#   docs/bench/cli-start.sh [before-rev] [runs]
set -euo pipefail
cd "$(dirname "$0")/../.."
rev=${1:-} runs=${2:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/minimal" "$work/config"
cat >"$work/minimal/main.go" <<'GO'
package main

import (
	"fmt"
	"net/http"
)

var _ = http.DefaultClient

func main() { fmt.Println("hello") }
GO
(cd "$work/minimal" && go mod init minimal >/dev/null 2>&1 && go build -o minimal .)
go build -o "$work/after" ./cmd/claudemesh
cmds=(-n minimal "$work/minimal/minimal" -n 'version' "$work/after version" -n 'hook idle' "$work/after hook idle")
if [ -n "$rev" ]; then
	mkdir "$work/src"
	git archive "$rev" | tar -x -C "$work/src"
	(cd "$work/src" && go build -o "$work/before" ./cmd/claudemesh)
	# A revision without a version command still measures its start-up:
	# cobra prints the unknown-command error after the same init.
	cmds+=(-n 'version (before)' "$work/before version" -n 'hook idle (before)' "$work/before hook idle")
fi
ls -l "$work"/after ${rev:+"$work/before"} "$work/minimal/minimal" | awk '{print $5, $NF}'
CLAUDEMESH_CONFIG_DIR="$work/config" hyperfine -N -i --warmup 3 --runs "$runs" --export-json "$work/out.json" "${cmds[@]}" >&2
python3 - "$work/out.json" <<'PY'
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
base = next(r["median"] for r in rs if r["command"] == "minimal")
for r in rs:
    print(f'{r["command"]:20} median {r["median"]*1000:6.2f} ms  ({r["median"]/base:4.1f}x minimal)  min {r["min"]*1000:6.2f}  max {r["max"]*1000:6.2f}')
PY
