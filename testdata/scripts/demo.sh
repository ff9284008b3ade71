#!/usr/bin/env bash
# make demo: ferry's main job end to end on loopback.
#   two docker-registry instances (source, target), the source seeded from
#   testdata, a full (SSH-signed when ssh-keygen is there) and an
#   incremental bundle saved, both verified and uploaded, and every image
#   digest checked at the target.
# Everything started here is stopped by PID on exit; the work dir (DEMO_DIR) is removed
# unless KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
WORK=${DEMO_DIR:-$(mktemp -d /tmp/ferry-demo.XXXXXX)}
export PATH=$PATH:/usr/sbin:/sbin
source testdata/scripts/lib.sh
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

command -v docker-registry >/dev/null || { echo "demo needs docker-registry: apt-get install docker-registry" >&2; exit 1; }
[ -x "$BIN/ferry" ] || { echo "run make build first" >&2; exit 1; }

SRC=127.0.0.1:$(free_port 5310)
start_registry source "${SRC#*:}"
DST=127.0.0.1:$(free_port $(( ${SRC#*:} + 1 )))
start_registry target "${DST#*:}"
echo "source registry $SRC, target registry $DST, work dir $WORK"

step "seed the source from testdata"
"$BIN/ferry-seed" --registry "$SRC" --fixtures

cat > "$WORK/cfg.yaml" <<YML
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
  dir: $WORK/out
  prefix: demo
  mkdir: true
YML
cat > "$WORK/full.txt" <<'TXT'
# monthly full bundle
library/base:1
team/app:1
library/multi:1
TXT
F="$BIN/ferry --config $WORK/cfg.yaml --no-progress"

SIGN=()
VERIFY=()
if command -v ssh-keygen >/dev/null; then
  ssh-keygen -q -t ed25519 -N "" -C "ferry demo" -f "$WORK/sign"
  SIGN=(--sign-key "$WORK/sign")
  VERIFY=(--key "$WORK/sign.pub")
fi

step "ferry save: full bundle (multi-arch index filtered to linux/amd64 + linux/arm64), signed"
$F save --list "$WORK/full.txt" --compress zstd ${SIGN[@]+"${SIGN[@]}"}
FULL=$(ls "$WORK"/out/demo_full_*_meta.yaml)
$F inspect "$FULL"

step "a day later: a new release and a new image appear at the source"
sleep 1 # bundle ids carry the second
"$BIN/ferry-seed" --registry "$SRC" --extra 2
printf 'team/app:2\nteam/tools:1 -> tools/tools:1\n' > "$WORK/daily.txt"

step "ferry save: incremental bundle (skips every blob the full carried)"
$F save --list "$WORK/daily.txt" --inc "$FULL" --compress zstd
INCR=$(ls "$WORK"/out/demo_incr_*_meta.yaml)
$F inspect "$INCR"

step "ferry verify both bundles (offline; the full one's SSH signature too)"
$F verify "$FULL" ${VERIFY[@]+"${VERIFY[@]}"}
$F verify "$INCR"
if [ ${#VERIFY[@]} -gt 0 ]; then
  echo "ferry $(cat "$WORK/sign.pub")" > "$WORK/allowed_signers"
  ssh-keygen -Y verify -f "$WORK/allowed_signers" -I ferry -n ferry -s "$FULL.sig" < "$FULL"
fi

step "ferry upload: the increment first must be refused (its base is not at the target)"
if $F upload "$INCR"; then echo "expected a refusal" >&2; exit 1; fi
echo "refused, as it should be"

step "ferry upload: full, then incremental"
$F upload "$FULL" ${VERIFY[@]+"${VERIFY[@]}"}
$F upload "$INCR"

step "check every image digest at the target against the meta files"
"$BIN/ferry-seed" --registry "$DST" --check "$FULL" --namespace mirror
"$BIN/ferry-seed" --registry "$DST" --check "$INCR" --namespace mirror

step "demo OK"
