#!/bin/sh
# Patroni runs this once, on the node that initialises the cluster, with a connection
# string to it as the only argument (the password is in the PGPASSFILE it sets): it
# creates the application's database, POSTGRES_DB, as the official postgres image does.
set -eu
printf 'CREATE DATABASE :"db";\n' | psql -X -q -v ON_ERROR_STOP=1 -v db="${POSTGRES_DB:?set POSTGRES_DB}" -d "$1" -f -
