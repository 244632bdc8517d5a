#!/usr/bin/env bash
# Runs the whole test suite the way CI does, on a fresh machine with Go.
#
#   scripts/test.sh            # vet, gofmt check, golangci-lint, go test -race ./...
#   scripts/test.sh -run Foo   # extra arguments go to go test
#
# Store and end-to-end tests need a real redis-server. When REDIS_URL is not
# set, this script installs redis-server from Debian's packages if it is
# missing, starts a private one on a free port and stops it afterwards.
# TIMGUARD_REQUIRE_REDIS=1 (the default here) makes a missing Redis fail the
# run instead of skipping those tests.
#
# The console's browser tests drive Debian's chromium; the script installs
# it when missing. TIMGUARD_REQUIRE_BROWSER=1 (the default here) makes a
# missing chromium fail the run instead of skipping those tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export TIMGUARD_REQUIRE_REDIS="${TIMGUARD_REQUIRE_REDIS:-1}"
export TIMGUARD_REQUIRE_BROWSER="${TIMGUARD_REQUIRE_BROWSER:-1}"

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  $SUDO apt-get install -y -qq "$@" >/dev/null
}

if ! command -v redis-server >/dev/null 2>&1; then
  echo "test.sh: redis-server not found; installing it from Debian's packages" >&2
  apt_install redis-server
fi

if ! command -v chromium >/dev/null 2>&1; then
  echo "test.sh: chromium not found; installing it from Debian's packages (for the console's browser tests)" >&2
  apt_install chromium
fi

redis_pid=""
redis_dir=""
cleanup() {
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  if [ -n "$redis_dir" ]; then rm -rf "$redis_dir"; fi
}
trap cleanup EXIT

if [ -z "${REDIS_URL:-}" ]; then
  redis_dir=$(mktemp -d)
  for _ in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null || echo $((20000 + RANDOM % 20000)))
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$redis_dir" \
      --databases 64 --logfile "$redis_dir/redis.log" &
    redis_pid=$!
    for _ in $(seq 1 50); do
      if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
      sleep 0.1
    done
    if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
    kill "$redis_pid" 2>/dev/null || true; redis_pid=""
  done
  if [ -z "$redis_pid" ]; then echo "test.sh: could not start redis-server" >&2; cat "$redis_dir/redis.log" >&2 || true; exit 1; fi
  export REDIS_URL="redis://127.0.0.1:$port/0"
  echo "test.sh: started redis-server on port $port" >&2
fi

echo "test.sh: go vet" >&2
go vet ./...
# The Go files as they are in the working tree: tracked and new ones, not
# those deleted since the last commit.
go_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard '*.go' | while IFS= read -r f; do
      if [ -e "$f" ]; then printf '%s\n' "$f"; fi
    done
  else
    find . -name '*.go'
  fi
}
unformatted=$(go_files | xargs -r gofmt -l)
if [ -n "$unformatted" ]; then echo "test.sh: gofmt would change:" >&2; echo "$unformatted" >&2; exit 1; fi

# golangci-lint, pinned; built once into GOPATH/bin (about 3 minutes on a
# fresh machine, from the Go module proxy). .golangci.yml says what it runs.
lint_version=v2.15.0
lint_bin="$(go env GOPATH)/bin/golangci-lint"
if ! "$lint_bin" version 2>/dev/null | grep -q "${lint_version#v}"; then
  echo "test.sh: installing golangci-lint $lint_version" >&2
  GOBIN="$(go env GOPATH)/bin" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$lint_version"
fi
echo "test.sh: golangci-lint" >&2
"$lint_bin" run ./...

echo "test.sh: go test -race ./..." >&2
go test -race -count=1 -timeout 8m "$@" ./...
