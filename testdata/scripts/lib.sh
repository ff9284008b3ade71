# Shared by demo.sh and bench.sh: loopback docker-registry instances that
# are stopped by PID on exit. Callers set WORK (a scratch directory) and
# call `trap cleanup EXIT INT TERM`.
pids=()

# cleanup stops everything started here and removes WORK unless KEEP=1.
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}

# free_port FROM: the first port from FROM on that nothing listens on.
free_port() {
  local p
  for p in $(seq "$1" $(( $1 + 300 ))); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port from $1" >&2; exit 1
}

# start_registry NAME PORT: docker-registry with empty storage in
# WORK/reg-NAME, waits until it accepts connections.
start_registry() {
  local d="$WORK/reg-$1"
  rm -rf "$d"; mkdir -p "$d/data"
  printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\nhttp: {addr: 127.0.0.1:%s}\n' "$d/data" "$2" > "$d/config.yml"
  docker-registry serve "$d/config.yml" >"$d/log" 2>&1 &
  pids+=($!)
  echo $! > "$d/pid"
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return; sleep 0.05; done
  echo "registry $1 did not start:" >&2; cat "$d/log" >&2; exit 1
}

# stop_registry NAME: stops a registry started by start_registry.
stop_registry() {
  [ -f "$WORK/reg-$1/pid" ] || return 0
  local pid; pid=$(cat "$WORK/reg-$1/pid")
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}
