# Shared by demo.sh and the bench scripts: loopback docker-registry
# instances that are stopped by PID on exit; the benches' work dir and
# measure. Callers set WORK (a scratch directory) and
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

# prepare_work: creates WORK; refuses a non-empty directory this script did
# not create, as it is removed at the end. Callers define die.
prepare_work() {
  if [ -d "$WORK" ] && [ -n "$(ls -A "$WORK")" ] && [ ! -f "$WORK/.ferry-bench" ]; then
    die "$WORK exists and is not a bench dir: set BENCH_DIR to another path"
  fi
  rm -rf "$WORK"
  mkdir -p "$WORK/home"
  touch "$WORK/.ferry-bench"
}

# measure OP TOOL PREP CHECK -- CMD...: runs CMD once to warm up, then RUNS
# times. PREP runs before every run and CHECK after it, both untimed and in
# this shell (so registries PREP starts are this shell's children). Records
# the median wall time (s) and the largest peak RSS (KB) of the measured runs.
measure() {
  local op=$1 tool=$2 prep=$3 check=$4; shift 5
  local walls=() rss=0 i t0 t1 w r
  for i in $(seq 0 "$RUNS"); do
    eval "$prep"
    t0=$EPOCHREALTIME
    if ! /usr/bin/time -o "$WORK/time" -f '%M' "$@" >"$WORK/out.log" 2>"$WORK/err.log"; then
      echo "bench: $op $tool failed: $*" >&2
      cat "$WORK/err.log" >&2
      exit 1
    fi
    t1=$EPOCHREALTIME
    # wall time from bash's clock (microseconds; GNU time's %e has 10 ms)
    w=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}')
    r=$(tail -n1 "$WORK/time")
    if [ -n "$check" ] && ! eval "$check" >"$WORK/check.log" 2>&1; then
      echo "bench: $op $tool: output check failed ($check)" >&2
      cat "$WORK/check.log" >&2
      exit 1
    fi
    if [ "$i" = 0 ]; then
      echo "  $op $tool: warm-up ${w}s"
      continue
    fi
    echo "  $op $tool: run $i ${w}s $((r / 1024)) MB"
    walls+=("$w")
    if [ "$r" -gt "$rss" ]; then rss=$r; fi
  done
  WALL[$op/$tool]=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{v[NR]=$1} END{m=int((NR+1)/2); printf "%.3f", (NR%2) ? v[m] : (v[m]+v[m+1])/2}')
  RSS[$op/$tool]=$rss
}
