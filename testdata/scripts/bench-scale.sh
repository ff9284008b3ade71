#!/usr/bin/env bash
# make bench-scale: ferry at mirror scale, beside crane and regctl on the
# same data. SCALE_IMAGES generated images (SCALE_LAYERS tiny layers each,
# the first shared by all) in a loopback docker-registry; then, timed with
# GNU time (wall, peak RSS):
#   save      ferry save --list (one bundle)     crane pull --format=oci of the same images
#   verify    ferry verify
#   inspect   ferry inspect
#   upload    ferry upload into an empty registry
#   reupload  ferry upload again (nothing to send)
#   sync      ferry sync into an empty registry  regctl image copy, looped over SCALE_PEER images
# and per-image costs. Not a test: it prints numbers (issue 13's baseline);
# the exit status is non-zero only when something broke.
#
# Settings: SCALE_IMAGES (10000), SCALE_LAYERS (5), SCALE_LAYER_SIZE (4096
# bytes before gzip), SCALE_PEER (200: images regctl copies one process
# each), SCALE_JOBS (4), SCALE_JOBS_HIGH (16: save, verify, upload and sync
# again with that many jobs; 0 skips), SCALE_DIR (/tmp/ferry-scale, removed
# unless KEEP=1). SCALE_SRC=host:port with SCALE_LIST=file uses images
# already there instead of seeding (seeding 10,000 images takes minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${SCALE_IMAGES:-10000}
LAYERS=${SCALE_LAYERS:-5}
LSIZE=${SCALE_LAYER_SIZE:-4096}
HIGH=${SCALE_JOBS_HIGH:-16}
PEER=${SCALE_PEER:-200}
JOBS=${SCALE_JOBS:-4}
WORK=${SCALE_DIR:-/tmp/ferry-scale}
export PATH=$PATH:/usr/sbin:/sbin:$(go env GOPATH)/bin
for t in docker-registry crane regctl; do command -v "$t" >/dev/null || { echo "bench-scale needs $t (make deps)" >&2; exit 1; }; done
[ -x /usr/bin/time ] || { echo "bench-scale needs GNU time (apt-get install time)" >&2; exit 1; }
rm -rf "$WORK"; mkdir -p "$WORK/out"
source testdata/scripts/lib.sh
trap cleanup EXIT INT TERM

go build -trimpath -o "$WORK/ferry" ./cmd/ferry
go build -trimpath -o "$WORK/ferry-seed" ./cmd/ferry-seed
if [ -n "${SCALE_SRC:-}" ]; then
  SRC=$SCALE_SRC
  head -n "$N" "${SCALE_LIST:?SCALE_SRC needs SCALE_LIST}" > "$WORK/list.txt"
  N=$(wc -l < "$WORK/list.txt")
  echo "using $N images at $SRC"
else
  SRC=127.0.0.1:$(free_port 5810); start_registry src "${SRC#*:}"
  echo "seeding $SRC with $N images of $LAYERS layers of $LSIZE bytes"
  "$WORK/ferry-seed" --registry "$SRC" --generate "$N" --gen-layers "$LAYERS" --gen-layer-size "$LSIZE" --list "$WORK/list.txt" >/dev/null
fi
port=$(( ${SRC##*:} + 1 ))
# fresh NAME: starts an empty registry; FRESH is its host:port
fresh() { port=$(free_port "$port"); start_registry "$1" "$port"; FRESH=127.0.0.1:$port; port=$((port + 1)); }

rows=()
# run NAME CMD...: times CMD with GNU time, records wall seconds and peak RSS
run() {
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || { echo "$name failed:" >&2; tail -5 "$WORK/$name.err" >&2; exit 1; }
  read -r wall rss < "$WORK/time"
  rows+=("$name $wall $((rss / 1024))")
  printf '  %-16s %8.2f s %6d MB\n' "$name" "$wall" "$((rss / 1024))"
}

F="$WORK/ferry --no-progress -q"
run "ferry save" $F save --list "$WORK/list.txt" -o "$WORK/out" --jobs "$JOBS"
META=$(ls "$WORK"/out/*_meta.yaml)
run "ferry verify" $F verify "$META"
run "ferry inspect" $F inspect "$META"
fresh dst; DST=$FRESH
run "ferry upload" $F upload "$META" --target "$DST" --jobs "$JOBS"
run "ferry reupload" $F upload "$META" --target "$DST" --jobs "$JOBS"
fresh dst2; DST2=$FRESH
run "ferry sync" $F sync --list "$WORK/list.txt" --target "$DST2" --jobs "$JOBS"
mkdir -p "$WORK/crane"
# shellcheck disable=SC2046
run "crane pull" crane pull --insecure --format=oci $(cat "$WORK/list.txt") "$WORK/crane"
fresh dst3; DST3=$FRESH
head -n "$PEER" "$WORK/list.txt" > "$WORK/peer.txt"
cat > "$WORK/regctl-loop.sh" <<SH
#!/usr/bin/env bash
set -e
while read -r img; do
  regctl image copy --host reg=$SRC,tls=disabled --host reg=$DST3,tls=disabled "\$img" "$DST3/\${img#*/}" >/dev/null
done < "$WORK/peer.txt"
SH
chmod +x "$WORK/regctl-loop.sh"
HOME=$WORK run "regctl copy loop" "$WORK/regctl-loop.sh"
if [ "$HIGH" -gt 0 ]; then
  stop_registry dst; stop_registry dst2; stop_registry dst3; rm -rf "$WORK"/reg-dst* "$WORK/crane"
  mkdir -p "$WORK/out16"
  run "save j$HIGH" $F save --list "$WORK/list.txt" -o "$WORK/out16" --jobs "$HIGH"
  META16=$(ls "$WORK"/out16/*_meta.yaml)
  run "verify j$HIGH" $F verify "$META16" --jobs "$HIGH"
  fresh dst4; DST4=$FRESH
  run "upload j$HIGH" $F upload "$META16" --target "$DST4" --jobs "$HIGH"
  fresh dst5; DST5=$FRESH
  run "sync j$HIGH" $F sync --list "$WORK/list.txt" --target "$DST5" --jobs "$HIGH"
fi

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GB RAM; $(go version | cut -d' ' -f3)"
echo "images:  $N x $LAYERS layers (one shared), meta file $(du -k "$META" | cut -f1) KB, bundle $(du -sk "$WORK/out" | cut -f1) KB"
printf '\n%-18s %9s %8s %14s\n' op "wall s" "RSS MB" "ms per image"
for r in "${rows[@]}"; do
  name=${r% * *}; rest=${r#"$name "}; wall=${rest% *}; rss=${rest#* }
  n=$N; [ "$name" = "regctl copy loop" ] && n=$PEER
  printf '%-18s %9.2f %8d %14.2f\n' "$name" "$wall" "$rss" "$(awk -v w="$wall" -v n="$n" 'BEGIN { print w * 1000 / n }')"
done
