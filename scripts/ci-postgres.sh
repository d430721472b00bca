#!/usr/bin/env bash
# Start Debian's PostgreSQL and create the test role and database (idempotent).
# Prints the URL to export as GIAOBAN_TEST_POSTGRES_URL.
set -euo pipefail
if ! command -v pg_lsclusters >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(pg_lsclusters --no-header | awk 'NR==1 {print $1}')
cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $2}')
if [ -z "$version" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  cluster=main
  pg_createcluster "$version" "$cluster" >/dev/null
fi
pg_ctlcluster "$version" "$cluster" start >/dev/null 2>&1 || true
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 && break
  sleep 1
done
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_roles WHERE rolname='giaoban'\" | grep -q 1 || psql -q -c \"CREATE ROLE giaoban LOGIN PASSWORD 'giaoban'\"" >/dev/null
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname='giaoban_test'\" | grep -q 1 || createdb -O giaoban giaoban_test" >/dev/null
# The scheduler tests run server processes on a database of their own (giaoban_test_jobs).
su postgres -c "psql -q -c 'ALTER ROLE giaoban CREATEDB'" >/dev/null
echo "postgresql+asyncpg://giaoban:giaoban@127.0.0.1:5432/giaoban_test"
