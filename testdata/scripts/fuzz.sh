#!/usr/bin/env bash
# make fuzz: every fuzz test for FUZZTIME (default 20s). A run that a
# crash ends (a failing input is written to testdata/fuzz) fails at once.
# Go's fuzzer can also end with "context deadline exceeded" when its time
# runs out while a worker is inside one slow input (yaml.v3 has some): that
# run is repeated once, and only a second such ending counts as a failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-20s}
# every func FuzzX of the module's test files, with its package directory
mapfile -t targets < <(grep -rHo --include='*_test.go' --exclude-dir=testdata '^func Fuzz[A-Za-z0-9_]*' . |
  sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)$#\2 \1#' | sort -k2,2 -k1,1)
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz tests found" >&2; exit 1; }
status=0
for t in "${targets[@]}"; do
  read -r name pkg <<<"$t"
  for try in 1 2; do
    out=$("$GO" test -run XXX -fuzz "^$name\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 10x "$pkg" 2>&1)
    rc=$?
    printf '%s\n' "$out" | tail -3
    if [ $rc -eq 0 ]; then break; fi
    if [ $try -eq 1 ] && grep -q "context deadline exceeded" <<<"$out" && ! grep -q "Failing input written" <<<"$out"; then
      echo "$name: the fuzzer's time ran out inside one input; running it again"
      continue
    fi
    printf '%s\n' "$out" | grep -v '^fuzz: elapsed' >&2
    status=1
    break
  done
done
exit $status
