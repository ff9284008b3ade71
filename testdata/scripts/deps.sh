#!/usr/bin/env bash
# Installs what the demo and the tests use, when it is missing: Debian's
# docker-registry (distribution), apache2-utils (htpasswd), docker.io
# (dockerd), containerd (ctr), skopeo, podman, openssh-client (ssh-keygen,
# for signature tests), GNU time (for make bench), zstd, lz4 and xz-utils
# (the codec tests read parts with them), chromium (the console's browser
# tests drive it headless). Needs root and apt;
# otherwise it says what to install and the tests skip what is missing
# (under CI=true they fail instead).
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v dockerd >/dev/null || need+=(docker.io)
command -v containerd >/dev/null && command -v ctr >/dev/null || need+=(containerd)
command -v skopeo >/dev/null || need+=(skopeo)
command -v podman >/dev/null || need+=(podman)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
[ -x /usr/bin/time ] || need+=(time)
command -v fish >/dev/null || need+=(fish) # cmd/ferry: completion test
command -v file >/dev/null || need+=(file) # make release: static binary check
command -v chromium >/dev/null || need+=(chromium) # cmd/ferry: ferry ui in a real browser (chromedp)
# the codecs' own tools read parts in tests (zstd -dc part | tar -t)
for t in zstd:zstd lz4:lz4 xz:xz-utils; do command -v "${t%%:*}" >/dev/null || need+=("${t#*:}"); done
# Go tools the tests use, from the Go module proxy: distribution v3 (its
# `registry` has the OCI referrers API); crane and regctl (serve and export
# tests pull with them).
if command -v go >/dev/null; then
  gobin=$(go env GOPATH)/bin
  if [ ! -x "$gobin/registry" ]; then
    echo "installing distribution v3 (go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2)"
    go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2
  fi
  for m in github.com/google/go-containerregistry/cmd/crane@v0.22.1 github.com/regclient/regclient/cmd/regctl@v0.11.7; do
    bin=${m%@*}; bin=${bin##*/}
    if [ ! -x "$gobin/$bin" ] && ! command -v "$bin" >/dev/null; then
      echo "installing $bin (go install $m)"
      go install "$m"
    fi
  done
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "missing: ${need[*]} (apt-get install ${need[*]}); tests that need them are skipped" >&2
  exit 0
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
