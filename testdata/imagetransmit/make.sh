#!/usr/bin/env bash
# Regenerates the image-transmit bundles of this directory with a real
# image-transmit binary (built from github.com/exyb/image-transmit at
# commit d5e5061, "Support OCIv1 image spec"; see README.md). It does not
# contain or fetch image-transmit's code:
#
#   testdata/imagetransmit/make.sh /path/to/image-transmit
#
# Needs root (image-transmit's squashfs mode insists), docker-registry,
# squashfs-tools, zstd, gzip, xz and lz4. Everything talks to a loopback
# docker-registry seeded by ferry-seed -imagetransmit.
set -euo pipefail
IT=$(realpath "${1:?usage: make.sh /path/to/image-transmit}")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d)
source "$ROOT/testdata/scripts/lib.sh"
trap cleanup EXIT INT TERM

PORT=$(free_port 5380)
start_registry src "$PORT"
(cd "$ROOT" && go run ./cmd/ferry-seed -registry "127.0.0.1:$PORT" -imagetransmit) > "$WORK/seeded.txt"

# run COMPRESSOR: a full bundle of full.lst, then an increment of incr.lst
# on it, each in its own image-transmit home (data/<date>/...).
run() {
  local comp=$1 dir="$WORK/it-$1"
  mkdir -p "$dir"
  cat > "$dir/cfg.yaml" <<CFG
source:
- registry: "http://127.0.0.1:$PORT"
  name: nj
target:
- registry: "http://127.0.0.1:$PORT"
  name: gz
platform: linux/amd64
maxconn: 2
retries: 1
compressor: $comp
lang: en_US
CFG
  printf 'it/base:1\nit/app:1\nit/oci:1\nit/multi:1\n' > "$dir/full.lst"
  printf 'it/app:2\n' > "$dir/incr.lst"
  (cd "$dir" && "$IT" -src=nj -lst=full.lst > full.log 2>&1)
  local full; full=$(ls "$dir"/data/*/*_full_*_meta.yaml)
  # image-transmit names bundles by the minute: wait for the next one
  while [ "$(date +%Y%m%d%H%M)" = "$(basename "$full" | grep -o '20[0-9]\{10\}')" ]; do sleep 1; done
  (cd "$dir" && "$IT" -src=nj -lst=incr.lst -inc="$full" > incr.log 2>&1)
  rm -rf "$HERE/$comp"; mkdir -p "$HERE/$comp"
  cp "$dir"/data/2*/* "$HERE/$comp/"
}

# gui CODEC EXT: image-transmit's Windows GUI compresses each data file
# whole and names it <bundle>_<n>.<codec> (win/action.go); made here from
# the tar bundles by compressing their data files the same way.
gui() {
  local codec=$1 dir="$HERE/gui-$1"
  rm -rf "$dir"; cp -r "$HERE/tar" "$dir"
  for f in "$dir"/*.tar; do
    case $codec in
      zstd) zstd -q --rm "$f" -o "${f%.tar}.zstd" ;;
      gzip) gzip -n -c "$f" > "${f%.tar}.gzip" && rm "$f" ;;
      xz) xz -c "$f" > "${f%.tar}.xz" && rm "$f" ;;
      lz4) lz4 -q -c "$f" > "${f%.tar}.lz4" && rm "$f" ;;
    esac
  done
  for m in "$dir"/*_meta.yaml; do
    sed -i "s/^compressor: .*/compressor: $codec/" "$m"
    for f in "$dir"/*."$codec"; do
      local b; b=$(basename "$f")
      sed -i "s/^  ${b%.$codec}\.tar: [0-9]*$/  $b: $(stat -c %s "$f")/" "$m"
    done
  done
}

run tar
run squashfs
run zstd # the CLI writes plain tar files and records compressor: zstd
for c in zstd gzip xz lz4; do gui "$c"; done
cp "$WORK/seeded.txt" "$HERE/seeded.txt"
(cd "$HERE" && find . -type f ! -name SHA256SUMS ! -name README.md ! -name make.sh | sort | xargs sha256sum > SHA256SUMS)
echo "written under $HERE"
