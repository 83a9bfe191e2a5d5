#!/usr/bin/env bash
# tests/run-regress.sh: the pg_regress suite (sql/ + expected/) against a throwaway cluster
# (pg_regress --temp-instance) with the module preloaded. The module must be installed.
# Prints pg_regress's own report; exit status is pg_regress's.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh

work=${TMPDIR:-/tmp}/hasura_events_regress.$$
make_pg_dir "$work"
rm -f results/regression.diffs
cp -r sql expected tests/regress.conf "$work/"
[ "$(id -u)" -eq 0 ] && chown -R "$PG_USER" "$work"
tests=$(cd sql && ls *.sql | sed 's/\.sql$//' | sort)
rc=0
# MALLOC_PERTURB_: glibc fills freed memory, so that a read of memory already freed (a pointer
# kept past the end of a statement, say) crashes the test instead of passing by luck
(cd "$work" && as_pg env MALLOC_PERTURB_=165 "$PG_REGRESS" --temp-instance="$work/tmp_check" --temp-config=regress.conf \
    --inputdir=. --outputdir=. --bindir="$PG_BINDIR" --port=$(free_port) $tests) || rc=$?
if [ $rc -ne 0 ] && [ -f "$work/regression.diffs" ]; then
    mkdir -p results
    cp "$work/regression.diffs" results/regression.diffs
    head -200 "$work/regression.diffs"
    echo "(full diff in results/regression.diffs)"
fi
[ -n "${KEEP_REGRESS_WORK:-}" ] && echo "kept $work" || rm -rf "$work"
exit $rc
