#!/usr/bin/env bash
# make demo: ferry's main job end to end on loopback.
#   two docker-registry instances (source, target), the source seeded from
#   testdata, a full and an incremental bundle saved, both verified and
#   uploaded, and every image digest checked at the target.
# Everything started here is stopped by PID on exit; DEMO_DIR is removed
# unless KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
DEMO_DIR=${DEMO_DIR:-$(mktemp -d /tmp/ferry-demo.XXXXXX)}
export PATH=$PATH:/usr/sbin:/sbin
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$DEMO_DIR"; else echo "kept $DEMO_DIR"; fi
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

command -v docker-registry >/dev/null || { echo "demo needs docker-registry: apt-get install docker-registry" >&2; exit 1; }
[ -x "$BIN/ferry" ] || { echo "run make build first" >&2; exit 1; }

free_port() {
  local p
  for p in $(seq "$1" $(( $1 + 200 ))); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port" >&2; exit 1
}

start_registry() { # name port
  local dir="$DEMO_DIR/$1"
  mkdir -p "$dir/data"
  cat > "$dir/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$2}
YML
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return
    sleep 0.05
  done
  echo "registry $1 did not start:" >&2; cat "$dir/log" >&2; exit 1
}

SRC=127.0.0.1:$(free_port 5310)
start_registry source "${SRC#*:}"
DST=127.0.0.1:$(free_port $(( ${SRC#*:} + 1 )))
start_registry target "${DST#*:}"
echo "source registry $SRC, target registry $DST, work dir $DEMO_DIR"

step "seed the source from testdata"
"$BIN/ferry-seed" --registry "$SRC" --fixtures

cat > "$DEMO_DIR/cfg.yaml" <<YML
registries:
  - name: src
    registry: $SRC
  - name: dst
    registry: $DST
    namespace: mirror
source: src
target: dst
platforms: [linux/amd64, linux/arm64]
jobs: 4
output:
  dir: $DEMO_DIR/out
  prefix: demo
YML
cat > "$DEMO_DIR/full.txt" <<'TXT'
# monthly full bundle
library/base:1
team/app:1
library/multi:1
TXT
F="$BIN/ferry --config $DEMO_DIR/cfg.yaml --no-progress"

step "ferry save: full bundle (multi-arch index filtered to linux/amd64 + linux/arm64)"
$F save --list "$DEMO_DIR/full.txt" --compress zstd
FULL=$(ls "$DEMO_DIR"/out/demo_full_*_meta.yaml)
$F inspect "$FULL"

step "a day later: a new release and a new image appear at the source"
sleep 1 # bundle ids carry the second
"$BIN/ferry-seed" --registry "$SRC" --extra 2
printf 'team/app:2\nteam/tools:1 -> tools/tools:1\n' > "$DEMO_DIR/daily.txt"

step "ferry save: incremental bundle (skips every blob the full carried)"
$F save --list "$DEMO_DIR/daily.txt" --inc "$FULL" --compress zstd
INCR=$(ls "$DEMO_DIR"/out/demo_incr_*_meta.yaml)
$F inspect "$INCR"

step "ferry verify both bundles (offline)"
$F verify "$FULL"
$F verify "$INCR"

step "ferry upload: the increment first must be refused (its base is not at the target)"
if $F upload "$INCR"; then echo "expected a refusal" >&2; exit 1; fi
echo "refused, as it should be"

step "ferry upload: full, then incremental"
$F upload "$FULL"
$F upload "$INCR"

step "check every image digest at the target against the meta files"
"$BIN/ferry-seed" --registry "$DST" --check "$FULL" --namespace mirror
"$BIN/ferry-seed" --registry "$DST" --check "$INCR" --namespace mirror

step "demo OK"
