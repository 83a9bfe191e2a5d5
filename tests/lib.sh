# tests/lib.sh: shared shell helpers of the test, demo and bench scripts (sourced).
#
# Postgres refuses to run as root: when we are root, servers and pg_regress run as the
# `postgres` system user (runuser), in directories that user owns.

PG_BINDIR=$(pg_config --bindir)
PG_PKGLIBDIR=$(pg_config --pkglibdir)
PG_REGRESS="$(dirname "$(pg_config --pgxs)")/../test/regress/pg_regress"

if [ "$(id -u)" -eq 0 ]; then
    PG_USER=postgres
    as_pg() { runuser -u postgres -- "$@"; }
else
    PG_USER=$(id -un)
    as_pg() { "$@"; }
fi

# sudo_if_needed and can_sudo (tests/sudo.sh needs nothing installed: install-deps.sh uses it)
. "$(dirname "${BASH_SOURCE[0]}")/sudo.sh"

# module_is_installed ROOT: whether the installed module and install script are those built in
# ROOT (the benchmarks install this build when they are not).
module_is_installed() {
    local extsql
    extsql=$(ls "$1"/hasura_events--*.sql | head -1)
    cmp -s "$1/hasura_events.so" "$PG_PKGLIBDIR/hasura_events.so" &&
        cmp -s "$extsql" "$(pg_config --sharedir)/extension/$(basename "$extsql")"
}

# make_pg_dir PATH: a fresh directory the server user owns.
make_pg_dir() {
    rm -rf "$1"
    mkdir -p "$1"
    [ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$1"
    chmod 700 "$1"
}

# free_port: a TCP port nothing listens on.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# cluster_start DIR PORT [extra conf lines...]: initdb + start a throwaway cluster with the module.
cluster_start() {
    local dir=$1 port=$2; shift 2
    make_pg_dir "$dir"
    (cd "$dir" && as_pg "$PG_BINDIR/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1) || { cat "$dir/initdb.log"; return 1; }
    {
        echo "shared_preload_libraries = 'hasura_events'"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$dir'"
        echo "port = $port"
        echo "hasura_events.socket_path = '$dir/he.sock'"
        echo "hasura_events.retry_check_interval = '200ms'"
        echo "fsync = off"
        for line in "$@"; do echo "$line"; done
    } >>"$dir/data/postgresql.conf"
    (cd "$dir" && as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null) \
        || { cat "$dir/server.log"; return 1; }
}

# cluster_stop DIR [mode]
cluster_stop() {
    (cd / && as_pg "$PG_BINDIR/pg_ctl" -D "$1/data" -m "${2:-fast}" -w -t 60 stop >/dev/null 2>&1) || true
}

# psql_in DIR PORT DB [psql args...]
psql_in() {
    local dir=$1 port=$2 db=$3; shift 3
    psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d "$db" "$@"
}

# bg_as_pg LOG CMD...: starts CMD in the background as the server's OS user, output to LOG;
# BG_PID is the process to signal (runuser passes SIGTERM on to CMD).
bg_as_pg() {
    local log=$1; shift
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && exec runuser -u postgres -- "$@") >"$log" 2>&1 &
    else
        "$@" >"$log" 2>&1 &
    fi
    BG_PID=$!
}
