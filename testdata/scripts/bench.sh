#!/usr/bin/env bash
# make bench: ferry's save and upload side by side with regctl, skopeo and
# (when installed) crane, on the same big image and loopback docker-registry
# instances.
#
#   save:   registry -> files   ferry save (bundle dir)    regctl image export (tar)
#                               skopeo copy (oci-archive)  crane pull --format=oci (layout dir)
#   upload: files -> registry   the output of each tool's save, pushed into an
#                               EMPTY registry (a fresh one for every run)
#   reupload: the same again into the registry that has the image (a no-op:
#                               ferry upload, crane push) with a COLD page
#                               cache for the files read (dd iflag=nocache)
#
# Every run is checked (untimed): the saved files and the uploaded image
# must carry the seeded manifest digest. skopeo gets --preserve-digests, as
# by default it gzips the uncompressed layers (a different image, and CPU
# time the others do not spend).
#
# Each tool runs once to warm up, then BENCH_RUNS times; the table shows
# the median wall time, the largest peak RSS (GNU time) and peer/ferry
# (above 1: ferry is faster). Targets: ferry's wall time at most 0.9x crane's
# for save (crane pull --format=oci) and upload (crane push), at most 3x
# crane's for the cold no-op re-upload (without crane: at most the fastest
# peer's); ferry's peak RSS under 64 MB; and the bundle (parts + meta.yaml)
# within 0.5% of the blob bytes. A missed target is reported (MISS), not an
# error: the exit status is non-zero only when something broke.
#
# Settings (environment):
#   BENCH_LAYERS      layers of the image (5)
#   BENCH_LAYER_SIZE  bytes per layer (104857600)
#   BENCH_RUNS        measured runs per tool and op (3)
#   BENCH_DIR         work dir (/tmp/ferry-bench), removed at the end unless KEEP=1
#   BENCH_PORT        first loopback port to try for the registries (5710)

# measure's PREP and CHECK arguments are eval'd: single quotes on purpose.
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/../.."

LAYERS=${BENCH_LAYERS:-5}
LAYER_SIZE=${BENCH_LAYER_SIZE:-104857600}
RUNS=${BENCH_RUNS:-${RUNS:-3}}
WORK=${BENCH_DIR:-/tmp/ferry-bench}
IMG=bench/big:1
RSS_LIMIT_MB=64
OVERHEAD_LIMIT_PCT=0.5

die() { echo "bench: $*" >&2; exit 1; }

# ---------------------------------------------------------------- tools

# check_tools: every tool the bench needs, looked up in PATH plus
# $(go env GOPATH)/bin; stops with install hints when one is missing.
# crane is optional: without it its rows are left out.
check_tools() {
  command -v go >/dev/null || die "go is not in PATH"
  local gopath missing=() hints=()
  gopath=$(go env GOPATH)
  export PATH=$PATH:/usr/sbin:/sbin:$gopath/bin
  command -v docker-registry >/dev/null || { missing+=(docker-registry); hints+=("apt-get install -y docker-registry"); }
  command -v skopeo >/dev/null || { missing+=(skopeo); hints+=("apt-get install -y skopeo"); }
  [ -x /usr/bin/time ] || { missing+=(/usr/bin/time); hints+=("apt-get install -y time"); }
  command -v regctl >/dev/null || { missing+=(regctl); hints+=("go install github.com/regclient/regclient/cmd/regctl@v0.11.7"); }
  if command -v crane >/dev/null; then HAVE_CRANE=1; else
    HAVE_CRANE=0
    echo "bench: crane not found (go install github.com/google/go-containerregistry/cmd/crane@latest): its rows are skipped" >&2
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: missing: ${missing[*]}" >&2
    printf '  %s\n' "${hints[@]}" >&2
    exit 1
  fi
}

# ---------------------------------------------------------------- work dir and processes

# lib.sh: free_port, start_registry, stop_registry, cleanup (stops every
# registry started here by PID, removes WORK unless KEEP=1), prepare_work,
# measure.
source testdata/scripts/lib.sh
cleaned=""
on_exit() {
  [ -n "$cleaned" ] && return
  cleaned=1
  cleanup
}
# set_traps: installed once WORK is ours (cleanup removes it).
set_traps() {
  trap on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# fresh_registry NAME PORT: stops registry NAME if it runs and starts it
# again on empty storage (the stopped PID is dropped from cleanup's list).
fresh_registry() {
  local f="$WORK/reg-$1/pid" old="" p keep=()
  [ -f "$f" ] && old=$(cat "$f")
  stop_registry "$1"
  if [ -n "$old" ]; then
    for p in "${pids[@]}"; do [ "$p" = "$old" ] || keep+=("$p"); done
    pids=(${keep[@]+"${keep[@]}"})
  fi
  start_registry "$1" "$2"
}

# ---------------------------------------------------------------- measuring

declare -A WALL RSS OUTSIZE
TOOLS=(ferry regctl skopeo)

# bytes PATH...: total size in bytes of the files at or under PATHs.
bytes() { find "$@" -type f -printf '%s\n' | awk '{s+=$1} END{printf "%.0f\n", s}'; }

# has_digest PATH: PATH (a ferry bundle dir, an OCI layout dir or tar) holds
# the seeded image's manifest digest.
has_digest() {
  local index
  if [ -d "$1" ]; then
    grep -qs "$DIGEST" "$1"/*_meta.yaml "$1"/index.json
  else
    index=$(tar -xOf "$1" --occurrence=1 index.json)
    [[ $index == *"$DIGEST"* ]]
  fi
}

# meta_blob_bytes META: the sum of blobs[].size in a meta file.
meta_blob_bytes() {
  awk '/^[^ #-]/ {inblobs = ($0 ~ /^blobs:/); next}
       inblobs && /^[ -]*size:/ {sub(/^[ -]*size:[ ]*/, ""); s += $0}
       END {printf "%.0f\n", s}' "$1"
}

# ---------------------------------------------------------------- run

check_tools
prepare_work
set_traps
if [ "$HAVE_CRANE" = 1 ]; then TOOLS+=(crane); fi

echo "building ferry and ferry-seed into $WORK"
go build -trimpath -o "$WORK/ferry" ./cmd/ferry
go build -trimpath -o "$WORK/ferry-seed" ./cmd/ferry-seed
FERRY=("$WORK/ferry" -q --no-progress)

SRC_PORT=$(free_port "${BENCH_PORT:-5710}")
start_registry src "$SRC_PORT"
SRC=127.0.0.1:$SRC_PORT
DST_PORT=$(free_port $((SRC_PORT + 1)))
DST=127.0.0.1:$DST_PORT
echo "source registry $SRC, target registry $DST (fresh for every upload run)"
echo "seeding $SRC/$IMG: $LAYERS layers of $LAYER_SIZE bytes"
DIGEST=$("$WORK/ferry-seed" --registry "$SRC" --big "$IMG" --layers "$LAYERS" --layer-size "$LAYER_SIZE" | awk '{print $2}')
[[ $DIGEST == sha256:* ]] || die "ferry-seed printed no digest"

# regctl: plain HTTP through --host; its config dir ($HOME/.regctl) is a
# scratch one so the user's is neither read nor written.
REGCTL=(env HOME="$WORK/home" regctl)
regctl_host() { echo "reg=$1,tls=disabled"; }

OUT=$WORK/ferry-out
echo
echo "save $SRC/$IMG: a warm-up and $RUNS runs each"
measure save ferry 'rm -rf "$OUT"; mkdir -p "$OUT"' 'has_digest "$OUT"' -- \
  "${FERRY[@]}" save "$SRC/$IMG" -o "$OUT"
measure save regctl 'rm -f "$WORK/regctl.tar"' 'has_digest "$WORK/regctl.tar"' -- \
  "${REGCTL[@]}" --host "$(regctl_host "$SRC")" image export "$SRC/$IMG" "$WORK/regctl.tar"
measure save skopeo 'rm -f "$WORK/skopeo.tar"' 'has_digest "$WORK/skopeo.tar"' -- \
  skopeo copy -q --preserve-digests --src-tls-verify=false "docker://$SRC/$IMG" "oci-archive:$WORK/skopeo.tar"
if [ "$HAVE_CRANE" = 1 ]; then
  measure save crane 'rm -rf "$WORK/crane.oci"' 'has_digest "$WORK/crane.oci"' -- \
    crane pull --insecure --format=oci "$SRC/$IMG" "$WORK/crane.oci"
fi

META=$(ls "$OUT"/*_meta.yaml)
BLOB_BYTES=$(meta_blob_bytes "$META")
[ "$BLOB_BYTES" -gt 0 ] || die "no blob sizes in $META"
OUTSIZE[ferry]=$(bytes "$OUT")
OUTSIZE[regctl]=$(bytes "$WORK/regctl.tar")
OUTSIZE[skopeo]=$(bytes "$WORK/skopeo.tar")
if [ "$HAVE_CRANE" = 1 ]; then OUTSIZE[crane]=$(bytes "$WORK/crane.oci"); fi

echo
echo "upload into an empty $DST: a warm-up and $RUNS runs each"
fresh='fresh_registry dst "$DST_PORT"'
# every upload must leave the image with the digest the bundle recorded
check='"$WORK/ferry-seed" --registry "$DST" --check "$META"'
measure upload ferry "$fresh" "$check" -- \
  "${FERRY[@]}" upload "$META" --target "$DST"
measure upload regctl "$fresh" "$check" -- \
  "${REGCTL[@]}" --host "$(regctl_host "$DST")" image import "$DST/$IMG" "$WORK/regctl.tar"
measure upload skopeo "$fresh" "$check" -- \
  skopeo copy -q --preserve-digests --dest-tls-verify=false "oci-archive:$WORK/skopeo.tar" "docker://$DST/$IMG"
if [ "$HAVE_CRANE" = 1 ]; then
  measure upload crane "$fresh" "$check" -- \
    crane push --insecure "$WORK/crane.oci" "$DST/$IMG"
fi

# Cold no-op re-upload: dst holds the image (the last upload run); the files
# each tool reads are dropped from the page cache before every run.
cold() { find "$@" -type f -exec dd if={} iflag=nocache count=0 status=none \; ; }
echo
echo "re-upload into $DST that has the image, cold page cache: a warm-up and $RUNS runs each"
measure reupload ferry 'cold "$OUT"' "$check" -- \
  "${FERRY[@]}" upload "$META" --target "$DST"
if [ "$HAVE_CRANE" = 1 ]; then
  measure reupload crane 'cold "$WORK/crane.oci"' "$check" -- \
    crane push --insecure "$WORK/crane.oci" "$DST/$IMG"
fi
if command -v fincore >/dev/null; then
  cold "$OUT"
  echo "  page cache after the drop: $(fincore -n -o RES "$OUT"/*.tar* | awk '{s+=$1} END{print s+0}') bytes of the parts resident"
fi

# ---------------------------------------------------------------- sync
# registry -> registry, no files: ferry sync, regctl image copy, skopeo
# copy, crane copy into an empty DST; then ferry with two targets (DST and
# DST2), whose source reads must be one copy of the image (bytesRead of
# its --json result), against regctl copying twice.
echo
echo "sync $SRC/$IMG into an empty $DST: a warm-up and $RUNS runs each"
DST2_PORT=$(free_port $((DST_PORT + 1)))
DST2=127.0.0.1:$DST2_PORT
# PREP also flushes dirty pages (untimed): the runs before must not make
# the next tool pay for their disk writeback
fresh1='fresh_registry dst "$DST_PORT"; command sync'
measure sync ferry "$fresh1" "$check" -- \
  "${FERRY[@]}" sync "$SRC/$IMG" --target "$DST"
measure sync regctl "$fresh1" "$check" -- \
  "${REGCTL[@]}" --host "$(regctl_host "$SRC")" --host "$(regctl_host "$DST")" image copy "$SRC/$IMG" "$DST/$IMG"
measure sync skopeo "$fresh1" "$check" -- \
  skopeo copy -q --preserve-digests --src-tls-verify=false --dest-tls-verify=false "docker://$SRC/$IMG" "docker://$DST/$IMG"
if [ "$HAVE_CRANE" = 1 ]; then
  measure sync crane "$fresh1" "$check" -- \
    crane copy --insecure "$SRC/$IMG" "$DST/$IMG"
fi
fresh2='fresh_registry dst "$DST_PORT"; fresh_registry dst2 "$DST2_PORT"; command sync'
check2='"$WORK/ferry-seed" --registry "$DST" --check "$META" && "$WORK/ferry-seed" --registry "$DST2" --check "$META"'
measure sync2 ferry "$fresh2" "$check2" -- \
  "${FERRY[@]}" sync --json "$SRC/$IMG" --target "$DST" --target "$DST2"
SYNC2_READ=$(grep -o '"bytesRead":[0-9]*' "$WORK/out.log" | cut -d: -f2)
measure sync2 regctl "$fresh2" "$check2" -- \
  env HOME="$WORK/home" bash -c 'regctl --host "$1" --host "$2" --host "$3" image copy "$4" "$5" && regctl --host "$1" --host "$2" --host "$3" image copy "$4" "$6"' _ \
  "$(regctl_host "$SRC")" "$(regctl_host "$DST")" "$(regctl_host "$DST2")" "$SRC/$IMG" "$DST/$IMG" "$DST2/$IMG"
# a whole repository (every tag): ferry's repo:* against skopeo sync
REPO=${IMG%%:*}
measure synctags ferry "$fresh1" "$check" -- \
  "${FERRY[@]}" sync "$SRC/$REPO:*" --target "$DST"
measure synctags skopeo "$fresh1" "$check" -- \
  skopeo sync --preserve-digests --src docker --dest docker --src-tls-verify=false --dest-tls-verify=false "$SRC/$REPO" "$DST/${REPO%/*}"

# ---------------------------------------------------------------- report

mb() { awk -v b="$1" 'BEGIN{printf "%.1f", b / 1048576}'; }
version() {
  case $1 in
    ferry) "$WORK/ferry" --version 2>&1 | awk '{print $NF; exit}' ;;
    regctl) regctl version --format '{{.VCSTag}}' 2>/dev/null || echo "?" ;;
    skopeo) skopeo --version | awk '{print $3}' ;;
    crane) crane version 2>/dev/null || echo "?" ;;
  esac
}

echo
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1), $(free -g | awk '/^Mem:/{print $2}') GB RAM; $(go version | awk '{print $3}')"
echo "image:   $LAYERS layers x $LAYER_SIZE bytes (uncompressed tar, incompressible), $BLOB_BYTES blob bytes"
tools=""
for t in "${TOOLS[@]}"; do tools+="${tools:+, }$t $(version "$t")"; done
echo "tools:   $tools"
echo "median of $RUNS runs after a warm-up; RSS: largest peak of those runs"
echo
printf '%-9s %-9s %8s %8s %11s %10s\n' tool op "wall s" "RSS MB" "peer/ferry" "output MB"
results=()
verdict() { if [ "$1" = 1 ]; then results+=("PASS $2"); else results+=("MISS $2"); fi; }
# sync: ferry at most 0.9x the fastest peer; sync2 (two targets) has
# regctl copying once per target as its peer; synctags (repo:*) has skopeo
# sync
declare -A FACTOR=([save]=0.9 [upload]=0.9 [reupload]=3 [sync]=0.9 [sync2]=0.9 [synctags]=0.9)
for op in save upload reupload sync sync2 synctags; do
  fw=${WALL[$op/ferry]}
  best="" best_tool=""
  for tool in "${TOOLS[@]}"; do
    [ -n "${WALL[$op/$tool]:-}" ] || continue
    w=${WALL[$op/$tool]}
    ratio=$(awk -v w="$w" -v f="$fw" 'BEGIN{if (f > 0) printf "%.2f", w / f; else print "-"}')
    size="" label=$tool
    if [ "$op" = save ]; then size=$(mb "${OUTSIZE[$tool]}"); fi
    if [ "$op" = sync2 ] && [ "$tool" != ferry ]; then label="$tool x2"; fi
    printf '%-9s %-9s %8s %8s %11s %10s\n' "$label" "$op" "$w" "$(mb $((RSS[$op/$tool] * 1024)))" "$ratio" "$size"
    if [ "$tool" != ferry ] && { [ -z "$best" ] || awk -v w="$w" -v b="$best" 'BEGIN{exit !(w < b)}'; }; then
      best=$w best_tool=$tool
    fi
  done
  if [ -n "${WALL[$op/crane]:-}" ]; then
    cw=${WALL[$op/crane]} f=${FACTOR[$op]}
    verdict "$(awk -v a="$fw" -v c="$cw" -v f="$f" 'BEGIN{print (a <= c * f) ? 1 : 0}')" \
      "$op: ferry wall ${fw}s <= ${f}x crane ($(awk -v c="$cw" -v f="$f" 'BEGIN{printf "%.3f", c * f}')s; ferry/crane $(awk -v a="$fw" -v c="$cw" 'BEGIN{printf "%.2f", a / c}'))"
  elif [ -n "$best" ]; then
    k=1
    case $op in sync*) k=${FACTOR[$op]} ;; esac
    verdict "$(awk -v f="$fw" -v b="$best" -v k="$k" 'BEGIN{print (f <= k * b) ? 1 : 0}')" \
      "$op: ferry wall ${fw}s <= ${k}x fastest peer ($best_tool ${best}s)"
  fi
  verdict "$(( RSS[$op/ferry] < RSS_LIMIT_MB * 1024 ? 1 : 0 ))" \
    "$op: ferry peak RSS $(mb $((RSS[$op/ferry] * 1024))) MB < $RSS_LIMIT_MB MB"
done
verdict "$(( SYNC2_READ == BLOB_BYTES ? 1 : 0 ))" \
  "sync2: ferry read ${SYNC2_READ} bytes from the source for two targets; one copy is $BLOB_BYTES"
overhead=$(awk -v o="${OUTSIZE[ferry]}" -v b="$BLOB_BYTES" 'BEGIN{printf "%.3f", (o - b) * 100 / b}')
verdict "$(awk -v o="$overhead" -v l="$OVERHEAD_LIMIT_PCT" 'BEGIN{print (o <= l) ? 1 : 0}')" \
  "bundle: ${OUTSIZE[ferry]} bytes (parts + meta.yaml) for $BLOB_BYTES blob bytes: overhead ${overhead}% <= ${OVERHEAD_LIMIT_PCT}%"
echo
printf '%s\n' "${results[@]}"

# ---------------------------------------------------------------- serve (pull)
# crane pull (OCI layout) from `ferry serve` of the saved bundle vs from the
# source docker-registry holding the same image. Target: ferry serve's
# throughput >= 0.9x docker-registry's (its wall time <= 1/0.9 of it).
if [ "$HAVE_CRANE" = 1 ]; then
  SERVE_PORT=$(free_port $((DST_PORT + 1)))
  "$WORK/ferry" -q serve "$META" --addr "127.0.0.1:$SERVE_PORT" >"$WORK/serve.log" 2>&1 &
  SERVE_PID=$!
  pids+=($SERVE_PID)
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$SERVE_PORT") 2>/dev/null && break; sleep 0.05; done
  echo
  echo "crane pull from ferry serve (127.0.0.1:$SERVE_PORT) and from docker-registry ($SRC): a warm-up and $RUNS runs each"
  measure pull ferry-serve 'rm -rf "$WORK/pull.oci"' 'has_digest "$WORK/pull.oci"' -- \
    crane pull --insecure --format=oci "127.0.0.1:$SERVE_PORT/$IMG" "$WORK/pull.oci"
  measure pull registry 'rm -rf "$WORK/pull.oci"' 'has_digest "$WORK/pull.oci"' -- \
    crane pull --insecure --format=oci "$SRC/$IMG" "$WORK/pull.oci"
  fs=${WALL[pull/ferry-serve]} rg=${WALL[pull/registry]}
  mbps() { awk -v b="$BLOB_BYTES" -v w="$1" 'BEGIN{printf "%.0f", b / 1048576 / w}'; }
  ratio=$(awk -v f="$fs" -v r="$rg" 'BEGIN{printf "%.2f", r / f}')
  echo
  printf '%-22s %8s %8s\n' "crane pull from" "wall s" "MB/s"
  printf '%-22s %8s %8s\n' "ferry serve" "$fs" "$(mbps "$fs")" "docker-registry" "$rg" "$(mbps "$rg")"
  if awk -v x="$ratio" 'BEGIN{exit !(x >= 0.9)}'; then v=PASS; else v=MISS; fi
  echo "$v serve: crane pull throughput from ferry serve ${ratio}x docker-registry's (>= 0.9x)"
  serve_rss=$(awk '/^VmHWM/{print $2}' "/proc/$SERVE_PID/status")
  if [ "$serve_rss" -lt $((RSS_LIMIT_MB * 1024)) ]; then v=PASS; else v=MISS; fi
  echo "$v serve: ferry serve peak RSS $(mb $((serve_rss * 1024))) MB < $RSS_LIMIT_MB MB"
fi
