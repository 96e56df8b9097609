# shellcheck shell=bash
# Sourced by the benchmarks: pg_start DIR starts a PostgreSQL server of the benchmark's own
# in DIR (initdb, 127.0.0.1 on a free port; as the postgres user when run as root, since the
# server refuses root) and sets PG_URL and PG_PID; pg_stop stops it by its PID.
pg_start() {
  local dir=$1 bin port as=()
  bin=$(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  [[ -x $bin/postgres ]] || { echo "bench: no PostgreSQL server: apt-get install postgresql" >&2; exit 1; }
  mkdir -p "$dir"
  if [[ $(id -u) == 0 ]]; then
    chown postgres: "$dir"
    as=(setpriv --reuid=postgres --regid=postgres --init-groups)
  fi
  "${as[@]}" "$bin/initdb" -A trust -U probe -E UTF8 -D "$dir/data" >/dev/null
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${as[@]}" "$bin/postgres" -D "$dir/data" -h 127.0.0.1 -p "$port" -k "$dir" -c max_connections=100 >"$dir/log" 2>&1 &
  PG_PID=$!
  export PG_URL=postgres://probe@127.0.0.1:$port/postgres
  for _ in $(seq 100); do "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && return; sleep 0.1; done
  echo "bench: PostgreSQL did not start: $(tail -n 3 "$dir/log")" >&2
  exit 1
}

pg_stop() {
  [[ -n ${PG_PID:-} ]] || return 0
  kill -INT "$PG_PID" 2>/dev/null || true
  wait "$PG_PID" 2>/dev/null || true
  PG_PID=
}
