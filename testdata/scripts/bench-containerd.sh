#!/usr/bin/env bash
# make bench-containerd: loading a bundle straight into containerd
# (ferry upload --target containerd) beside what users do without it:
# ferry export of the same images to an OCI archive, then
# ctr images import of that archive.
#
#   upload:   ferry upload META --target containerd://SOCK
#   import:   ctr images import --no-unpack --all-platforms ARCHIVE
#             (neither unpacks: the kubelet's CRI plugin unpacks an image
#             when it first starts a container from it)
#   export:   ferry export META --all --format oci-archive (what the
#             import needs first; export+import is the whole way without
#             the containerd target)
#   reupload: the same again into the containerd that has the image, with
#             a COLD page cache for the files read (ferry: a no-op;
#             ctr import reads and checks the whole archive again)
#
# Every upload and import runs into a FRESH containerd (its own root,
# state and socket; CRI off) started before the run, untimed, and is
# checked (untimed): `ctr -n k8s.io images ls` shows the seeded image's
# digest. Each op runs once to warm up, then BENCH_RUNS times; the table
# shows the median wall time, the largest peak RSS (GNU time) and
# peer/ferry (above 1: ferry is faster). Needs root (containerd).
#
# Settings (environment):
#   BENCH_LAYERS      layers of the image (5)
#   BENCH_LAYER_SIZE  bytes per layer (104857600)
#   BENCH_RUNS        measured runs per op (3)
#   BENCH_DIR         work dir (/tmp/ferry-bench-ctr), removed at the end unless KEEP=1
#   BENCH_PORT        first loopback port to try for the source registry (5760)

# measure's PREP and CHECK arguments are eval'd: single quotes on purpose.
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/../.."

LAYERS=${BENCH_LAYERS:-5}
LAYER_SIZE=${BENCH_LAYER_SIZE:-104857600}
RUNS=${BENCH_RUNS:-${RUNS:-3}}
WORK=${BENCH_DIR:-/tmp/ferry-bench-ctr}
IMG=bench/big:1
NS=k8s.io

die() { echo "bench-containerd: $*" >&2; exit 1; }

export PATH=$PATH:/usr/sbin:/sbin
[ "$(id -u)" = 0 ] || die "needs root (containerd)"
for t in go containerd ctr docker-registry; do command -v "$t" >/dev/null || die "$t is not installed (make deps)"; done
[ -x /usr/bin/time ] || die "/usr/bin/time is not installed (apt-get install time)"
# lib.sh: free_port, start_registry, cleanup (stops what was started here
# by PID, removes WORK unless KEEP=1), prepare_work, measure (records
# WALL and RSS).
source testdata/scripts/lib.sh
declare -A WALL RSS
prepare_work
CTRD=$WORK/ctrd
SOCK=$CTRD/c.sock
CTRD_PID=""
on_exit() {
  stop_containerd
  cleanup
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop_containerd: ends the containerd started here, by its PID.
stop_containerd() {
  [ -n "$CTRD_PID" ] || return 0
  kill "$CTRD_PID" 2>/dev/null || true
  wait "$CTRD_PID" 2>/dev/null || true
  CTRD_PID=""
}

# fresh_containerd: a containerd on an empty root, state and socket under
# CTRD; waits until ctr reaches it.
fresh_containerd() {
  stop_containerd
  rm -rf "$CTRD"
  mkdir -p "$CTRD"
  printf 'version = 2\nroot = "%s/root"\nstate = "%s/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s"\n' \
    "$CTRD" "$CTRD" "$SOCK" >"$CTRD/config.toml"
  containerd --config "$CTRD/config.toml" >"$CTRD/log" 2>&1 &
  CTRD_PID=$!
  for _ in $(seq 300); do ctr --address "$SOCK" version >/dev/null 2>&1 && return; sleep 0.05; done
  cat "$CTRD/log" >&2
  die "containerd did not start"
}

# has_image: containerd's k8s.io namespace names the seeded image at its
# source digest.
has_image() { ctr --address "$SOCK" -n "$NS" images ls | grep -q "$DIGEST"; }

# cold PATH...: drops the files from the page cache.
cold() { find "$@" -type f -exec dd if={} iflag=nocache count=0 status=none \; ; }

echo "building ferry and ferry-seed into $WORK"
go build -trimpath -o "$WORK/ferry" ./cmd/ferry
go build -trimpath -o "$WORK/ferry-seed" ./cmd/ferry-seed
FERRY=("$WORK/ferry" -q --no-progress)

PORT=$(free_port "${BENCH_PORT:-5760}")
start_registry src "$PORT"
SRC=127.0.0.1:$PORT
echo "seeding $SRC/$IMG: $LAYERS layers of $LAYER_SIZE bytes"
DIGEST=$("$WORK/ferry-seed" --registry "$SRC" --big "$IMG" --layers "$LAYERS" --layer-size "$LAYER_SIZE" | awk '{print $2}')
[[ $DIGEST == sha256:* ]] || die "ferry-seed printed no digest"
"${FERRY[@]}" save "$SRC/$IMG" -o "$WORK/bundle" --mkdir >/dev/null
META=$(ls "$WORK"/bundle/*_meta.yaml)
ARCHIVE=$WORK/image.tar

echo
echo "a warm-up and $RUNS runs each"
measure export ferry 'rm -f "$ARCHIVE"' 'grep -q "$DIGEST" <(tar -xOf "$ARCHIVE" index.json)' -- \
  "${FERRY[@]}" export "$META" --all --format oci-archive -o "$ARCHIVE"
measure upload ferry fresh_containerd has_image -- \
  "${FERRY[@]}" upload "$META" --target "containerd://$SOCK"
measure reupload ferry 'cold "$WORK/bundle"' has_image -- \
  "${FERRY[@]}" upload "$META" --target "containerd://$SOCK"
measure upload ctr-import fresh_containerd has_image -- \
  ctr --address "$SOCK" -n "$NS" images import --no-unpack --all-platforms "$ARCHIVE"
measure reupload ctr-import 'cold "$ARCHIVE"' has_image -- \
  ctr --address "$SOCK" -n "$NS" images import --no-unpack --all-platforms "$ARCHIVE"

mb() { awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}'; }
ratio() { awk -v p="$1" -v f="$2" 'BEGIN{if (f > 0) printf "%.2f", p / f; else print "-"}'; }
pipeline=$(awk -v e="${WALL[export/ferry]}" -v i="${WALL[upload/ctr-import]}" 'BEGIN{printf "%.3f", e + i}')
echo
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1), $(free -g | awk '/^Mem:/{print $2}') GB RAM"
echo "image:   $LAYERS layers x $LAYER_SIZE bytes; containerd $(containerd --version | awk '{print $3}'); median of $RUNS runs after a warm-up"
echo
printf '%-26s %-9s %8s %8s %11s\n' what op "wall s" "RSS MB" "peer/ferry"
printf '%-26s %-9s %8s %8s %11s\n' "ferry upload" upload "${WALL[upload/ferry]}" "$(mb "${RSS[upload/ferry]}")" 1.00
printf '%-26s %-9s %8s %8s %11s\n' "ctr images import" upload "${WALL[upload/ctr-import]}" "$(mb "${RSS[upload/ctr-import]}")" "$(ratio "${WALL[upload/ctr-import]}" "${WALL[upload/ferry]}")"
printf '%-26s %-9s %8s %8s %11s\n' "ferry export + ctr import" upload "$pipeline" "-" "$(ratio "$pipeline" "${WALL[upload/ferry]}")"
printf '%-26s %-9s %8s %8s %11s\n' "ferry upload" reupload "${WALL[reupload/ferry]}" "$(mb "${RSS[reupload/ferry]}")" 1.00
printf '%-26s %-9s %8s %8s %11s\n' "ctr images import" reupload "${WALL[reupload/ctr-import]}" "$(mb "${RSS[reupload/ctr-import]}")" "$(ratio "${WALL[reupload/ctr-import]}" "${WALL[reupload/ferry]}")"
echo
echo "ratio ctr-import/ferry-upload: $(ratio "${WALL[upload/ctr-import]}" "${WALL[upload/ferry]}") (export+import: $(ratio "$pipeline" "${WALL[upload/ferry]}"); re-run: $(ratio "${WALL[reupload/ctr-import]}" "${WALL[reupload/ferry]}"))"
