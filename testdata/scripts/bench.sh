#!/usr/bin/env bash
# make bench: ferry's save and upload side by side with regctl and skopeo on
# the same ~500 MB, 5-layer image and a loopback docker-registry.
#
#   save:   ferry save            vs regctl image export, skopeo copy docker:// -> oci-archive:
#   upload: ferry upload (empty)  vs regctl image import, skopeo copy oci-archive: -> docker://
#
# Each tool runs once to warm up, then RUNS times; the median wall time and
# the largest peak RSS are reported, with the ratio peer/ferry (above 1:
# ferry is faster). Targets: ferry's wall time at most the fastest peer's,
# peak RSS under 64 MB, bundle within 0.5% of the blob bytes.
#
# Settings: BENCH_LAYERS (5), BENCH_LAYER_SIZE (104857600), RUNS (3),
# BENCH_DIR (a temp dir, removed unless KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/sbin:/sbin:$(go env GOPATH)/bin
LAYERS=${BENCH_LAYERS:-5}
LAYER_SIZE=${BENCH_LAYER_SIZE:-104857600}
RUNS=${RUNS:-3}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/ferry-bench.XXXXXX)}
DIR=$WORK
mkdir -p "$DIR"
source testdata/scripts/lib.sh
trap cleanup EXIT INT TERM

missing=()
for tool in docker-registry skopeo regctl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ -x /usr/bin/time ] || missing+=("/usr/bin/time (apt-get install time)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench needs: ${missing[*]}" >&2
  echo "  apt-get install -y docker-registry skopeo time" >&2
  echo "  go install github.com/regclient/regclient/cmd/regctl@v0.11.7" >&2
  exit 1
fi

echo "building ferry"
go build -trimpath -o "$DIR/ferry" ./cmd/ferry
go build -trimpath -o "$DIR/ferry-seed" ./cmd/ferry-seed

SRC_PORT=$(free_port 5710); SRC=127.0.0.1:$SRC_PORT
start_registry src "$SRC_PORT"
DST_PORT=$(free_port $(( SRC_PORT + 1 ))); DST=127.0.0.1:$DST_PORT
IMG=bench/big:1
echo "seeding $SRC/$IMG: $LAYERS layers of $LAYER_SIZE bytes"
"$DIR/ferry-seed" --registry "$SRC" --big "$IMG" --layers "$LAYERS" --layer-size "$LAYER_SIZE" >/dev/null

# regctl keeps its registry settings in $HOME/.regctl
export HOME="$DIR/home"; mkdir -p "$HOME"
regctl registry set "$SRC" --tls disabled >/dev/null 2>&1 || true
regctl registry set "$DST" --tls disabled >/dev/null 2>&1 || true

declare -A WALL RSS
# measure OP TOOL PREP -- CMD...: PREP runs before every run, untimed (in
# this shell, so registries it starts are cleaned up); records the median
# wall time and the largest peak RSS (KB) of RUNS runs after a warm-up.
measure() {
  local op=$1 tool=$2 prep=$3; shift 4
  local walls=() rss=0 i out
  for i in $(seq 0 "$RUNS"); do
    eval "$prep"
    if ! /usr/bin/time -o "$DIR/time" -f '%e %M' "$@" >/dev/null 2>"$DIR/err"; then
      echo "FAILED: $*" >&2; cat "$DIR/err" >&2; exit 1
    fi
    out=$(tail -n1 "$DIR/time")
    [ "$i" = 0 ] && continue # warm-up
    walls+=("${out% *}")
    if [ "${out#* }" -gt "$rss" ]; then rss=${out#* }; fi
  done
  WALL[$op/$tool]=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  RSS[$op/$tool]=$rss
  echo "  $op $tool: ${WALL[$op/$tool]} s, $((rss / 1024)) MB"
}

echo "save: $RUNS runs each after a warm-up"
OUT="$DIR/out"
measure save ferry 'rm -rf "$OUT"; mkdir -p "$OUT"' -- "$DIR/ferry" -q --no-progress save "$SRC/$IMG" -o "$OUT"
measure save regctl 'rm -f "$DIR/regctl.tar"' -- regctl image export "$SRC/$IMG" "$DIR/regctl.tar"
measure save skopeo 'rm -f "$DIR/skopeo.tar"' -- skopeo copy -q --src-tls-verify=false "docker://$SRC/$IMG" "oci-archive:$DIR/skopeo.tar"

META=$(ls "$OUT"/*_meta.yaml)
BLOB_BYTES=$(awk '/^blobs:/{b=1;next} /^[a-zA-Z]/{b=0} b && $1=="size:"{s+=$2} END{print s}' "$META")
BUNDLE_BYTES=$(cat "$OUT"/* | wc -c)

echo "upload into an empty registry: $RUNS runs each after a warm-up"
fresh='stop_registry dst 2>/dev/null || true; start_registry dst "$DST_PORT"'
measure upload ferry "$fresh" -- "$DIR/ferry" -q --no-progress upload "$META" --target "$DST"
measure upload regctl "$fresh" -- regctl image import "$DST/$IMG" "$DIR/regctl.tar"
measure upload skopeo "$fresh" -- skopeo copy -q --dest-tls-verify=false "oci-archive:$DIR/skopeo.tar" "docker://$DST/$IMG"

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); image: $LAYERS x $LAYER_SIZE bytes"
printf '%-7s %-7s %10s %10s %14s\n' op tool "wall s" "RSS MB" "peer/ferry"
results=()
verdict() { if [ "$1" = 1 ]; then echo "PASS $2"; else echo "MISS $2"; fi; }
for op in save upload; do
  fw=${WALL[$op/ferry]}
  best=""
  for tool in ferry regctl skopeo; do
    w=${WALL[$op/$tool]}; r=${RSS[$op/$tool]}
    printf '%-7s %-7s %10.2f %10.1f %14s\n' "$op" "$tool" "$w" "$(awk "BEGIN{print $r/1024}")" "$(awk "BEGIN{printf \"%.2f\", $w/$fw}")"
    if [ "$tool" != ferry ] && { [ -z "$best" ] || awk "BEGIN{exit !($w < $best)}"; }; then best=$w; fi
  done
  results+=("$(verdict "$(awk "BEGIN{print ($fw <= $best) ? 1 : 0}")" "$op: ferry ${fw}s vs fastest peer ${best}s")")
  results+=("$(verdict "$(awk "BEGIN{print (${RSS[$op/ferry]} < 65536) ? 1 : 0}")" "$op: ferry peak RSS $(awk "BEGIN{printf \"%.1f\", ${RSS[$op/ferry]}/1024}") MB < 64 MB")")
done
overhead=$(awk "BEGIN{printf \"%.3f\", ($BUNDLE_BYTES - $BLOB_BYTES) * 100 / $BLOB_BYTES}")
results+=("$(verdict "$(awk "BEGIN{print ($overhead <= 0.5) ? 1 : 0}")" "bundle: $BUNDLE_BYTES bytes for $BLOB_BYTES blob bytes, overhead ${overhead}% <= 0.5%")")
echo
printf '%s\n' "${results[@]}"
