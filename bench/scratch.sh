# shellcheck shell=bash
# Sourced by the benchmarks: `dir=$(scratch)` makes the run's working folder,
# /tmp/probe-bench.XXXXXX, marked with the script's PID and start time. First it clears what
# earlier runs left when they were killed before their EXIT trap could run (a SIGKILL, a
# machine's timeout): their folders (a gigabyte or more each) and the processes started in
# them, known by that folder in their command line (a collector's --data, a PostgreSQL
# server's -D), ended by their PIDs.

# The start time of process $1 (clock ticks since boot), or nothing when it is gone.
started_at() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  # Field 22, counted after the command's name, which may hold spaces.
  stat=${stat##*) }
  awk '{print $20}' <<<"$stat"
}

scratch() {
  local old pid when proc
  for old in /tmp/probe-bench.*; do
    [[ -d $old && -f $old/owner ]] || continue
    read -r pid when <"$old/owner" || continue
    [[ -n $pid && $(started_at "$pid") == "$when" ]] && continue
    for proc in /proc/[0-9]*; do
      if { tr '\0' ' ' <"$proc/cmdline"; } 2>/dev/null | grep -qF -- "$old/"; then
        kill "${proc#/proc/}" 2>/dev/null || true
      fi
    done
    sleep 1
    rm -rf "$old"
    echo "bench: removed $old, left by a run that was killed" >&2
  done
  old=$(mktemp -d /tmp/probe-bench.XXXXXX)
  echo "$$ $(started_at $$)" >"$old/owner"
  echo "$old"
}
