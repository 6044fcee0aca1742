#!/bin/sh
# Writes PgBouncer's auth_file from POSTGRES_USER / POSTGRES_PASSWORD (the credentials
# the database gets, from .env), readable by PgBouncer's user alone, then becomes
# PgBouncer. The tests run this script too, pointing the two paths elsewhere.
set -eu
: "${POSTGRES_USER:?set POSTGRES_USER}" "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
ini=${PGBOUNCER_INI:-/etc/pgbouncer/pgbouncer.ini}
auth_file=${PGBOUNCER_AUTH_FILE:-/run/pgbouncer/userlist.txt}
umask 077
# userlist.txt quotes each field and doubles a quote inside one.
quote() { printf '"%s"' "$(printf '%s' "$1" | sed 's/"/""/g')"; }
printf '%s %s\n' "$(quote "$POSTGRES_USER")" "$(quote "$POSTGRES_PASSWORD")" > "$auth_file"
exec pgbouncer "$ini"
