#!/usr/bin/env bash
# Two real PostgreSQL servers on loopback for the tests: pg-eu (region eu-west)
# and pg-us (region us-east), Debian's PostgreSQL 15 (the same major as the
# pg_dump the backups use), TLS with a CA of their own, scram-sha-256 only.
#
#   hack/postgres.sh up DIR     start (or reuse) both and print DIR/postgres.env
#   hack/postgres.sh down DIR   stop both, remove DIR (KEEP=1 keeps it)
#
# DIR/postgres.env exports PG_CA_FILE, PG_BIN_DIR and, per server (PG_EU_*,
# PG_US_*): NAME, REGION, HOST, PORT, ADMIN_USER, ADMIN_PASSWORD. The admin
# password is random; in a real installation it would live in Vault only.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
INSTANCES=(pg-eu:eu-west pg-us:us-east)

command="${1:-}"
dir="${2:-}"
[ -n "$command" ] && [ -n "$dir" ] || die "usage: $0 up|down DIR"

# postgres refuses to run as root, so every server-side command runs as the
# postgres OS user, which must own the data directories.
as_postgres() { runuser -u postgres -- "$@"; }

ensure_postgres_installed() {
  [ -x "$PG_BIN/pg_ctl" ] && id postgres >/dev/null 2>&1 && return 0
  log "installing postgresql-$PG_MAJOR"
  # Only the binaries are wanted: the package's own cluster would take port 5432.
  mkdir -p /etc/postgresql-common
  [ -f /etc/postgresql-common/createcluster.conf ] ||
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$PG_MAJOR" >&2
  [ -x "$PG_BIN/pg_ctl" ] || die "postgresql-$PG_MAJOR installed, but $PG_BIN/pg_ctl is missing"
}

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# DIR may sit under a private directory (mktemp -d makes 0700); the postgres
# user needs to traverse every ancestor, though not to list them.
make_traversable() {
  local path="$1"
  while [ "$path" != "/" ]; do
    if ! as_postgres test -x "$path"; then
      log "allowing the postgres user to traverse $path (chmod o+x)"
      chmod o+x "$path"
    fi
    path="$(dirname "$path")"
  done
}

env_prefix() { local name="${1#pg-}"; printf 'PG_%s' "${name^^}"; }

running() { [ -f "$dir/$1/data/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$dir/$1/data" status >/dev/null 2>&1; }

all_running() {
  local spec
  for spec in "${INSTANCES[@]}"; do running "${spec%%:*}" || return 1; done
}

gen_certs() {
  local certs="$dir/certs" spec name
  mkdir -p "$certs"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$certs/ca.key" -out "$certs/ca.crt" -days 365 \
    -subj "/CN=tenant-operator-test-postgres-ca" 2>/dev/null
  for spec in "${INSTANCES[@]}"; do
    name="${spec%%:*}"
    openssl req -newkey rsa:2048 -nodes -keyout "$certs/$name.key" -out "$certs/$name.csr" \
      -subj "/CN=$name" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$certs/$name.ext"
    openssl x509 -req -in "$certs/$name.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" \
      -CAcreateserial -out "$certs/$name.crt" -days 365 -extfile "$certs/$name.ext" 2>/dev/null
  done
  chmod 0600 "$certs"/*.key
  chmod 0644 "$certs/ca.crt"
}

# init_instance NAME: a fresh data directory whose superuser `postgres` has a
# random password. initdb sets it from a file, so it never appears in a
# process list or in SQL that a log could keep.
init_instance() {
  local name="$1" home="$dir/$1" password
  rm -rf "$home"
  mkdir -p "$home"
  password="$(openssl rand -hex 24)"
  (
    umask 077
    printf '%s\n' "$password" >"$home/admin-password.tmp"
    printf '%s\n' "$password" >"$dir/$name.admin-password"
  )
  chown -R postgres: "$home"
  as_postgres "$PG_BIN/initdb" -D "$home/data" -U postgres --pwfile="$home/admin-password.tmp" \
    --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/$name.initdb.log" 2>&1 ||
    { tail -n 40 "$dir/$name.initdb.log" >&2; die "initdb for $name failed"; }
  rm -f "$home/admin-password.tmp"

  install -o postgres -g postgres -m 0644 "$dir/certs/$name.crt" "$home/data/server.crt"
  install -o postgres -g postgres -m 0600 "$dir/certs/$name.key" "$home/data/server.key"
  install -o postgres -g postgres -m 0644 "$dir/certs/ca.crt" "$home/data/ca.crt"
  # TLS or nothing over TCP; the socket admits only the postgres OS user, so
  # this script can bootstrap without a password.
  cat >"$home/data/pg_hba.conf" <<EOF
local   all   postgres                    peer
hostssl all   all        127.0.0.1/32     scram-sha-256
EOF
  cat >>"$home/data/postgresql.conf" <<EOF

# hack/postgres.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$home'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
max_connections = 200
# Test servers: speed over durability.
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
# What every statement cost, by text: the scale benchmark counts the
# operator's queries and ALTER ROLEs with it (npm run bench).
shared_preload_libraries = 'pg_stat_statements'
include_if_exists = 'port.conf'
EOF
  chown postgres: "$home/data/pg_hba.conf" "$home/data/postgresql.conf"
}

start_instance() {
  local name="$1" port="$2" home="$dir/$1"
  echo "port = $port" >"$home/data/port.conf"
  chown postgres: "$home/data/port.conf"
  # The socket path must fit in sun_path (107 bytes).
  [ ${#home} -le 90 ] || die "DIR is too long for a unix socket path: $home"
  log "starting $name on 127.0.0.1:$port"
  if ! as_postgres "$PG_BIN/pg_ctl" -D "$home/data" -l "$home/server.log" -w -t 30 start >/dev/null 2>&1; then
    tail -n 40 "$home/server.log" >&2 || true
    die "$name did not start (waited up to 30s; log: $home/server.log)"
  fi
}

up() {
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ -f "$dir/postgres.env" ] && all_running; then
    echo "$dir/postgres.env"
    return 0
  fi
  ensure_postgres_installed
  down_processes
  chmod 0711 "$dir"
  make_traversable "$dir"
  [ -f "$dir/certs/ca.crt" ] || gen_certs

  local spec name region prefix port ports=() started
  started="$(date +%s%N)"
  {
    echo "export PG_CA_FILE=$dir/certs/ca.crt"
    echo "export PG_BIN_DIR=$PG_BIN"
  } >"$dir/postgres.env.tmp"
  for spec in "${INSTANCES[@]}"; do
    name="${spec%%:*}"
    region="${spec#*:}"
    prefix="$(env_prefix "$name")"
    # A data directory from an earlier `up` is reused with its password.
    [ -f "$dir/$name/data/PG_VERSION" ] && [ -f "$dir/$name.admin-password" ] || init_instance "$name"
    # Two quick calls may return the same port: pick until distinct.
    port="$(free_port)"
    while [[ " ${ports[*]} " == *" $port "* ]]; do port="$(free_port)"; done
    ports+=("$port")
    start_instance "$name" "$port"
    cat >>"$dir/postgres.env.tmp" <<EOF
export ${prefix}_NAME=$name
export ${prefix}_REGION=$region
export ${prefix}_HOST=127.0.0.1
export ${prefix}_PORT=$port
export ${prefix}_ADMIN_USER=postgres
export ${prefix}_ADMIN_PASSWORD=$(cat "$dir/$name.admin-password")
EOF
  done
  chmod 0600 "$dir/postgres.env.tmp"
  mv "$dir/postgres.env.tmp" "$dir/postgres.env"
  log "PostgreSQL $PG_MAJOR up (${INSTANCES[*]}) in $(( ($(date +%s%N) - started) / 1000000 )) ms"
  echo "$dir/postgres.env"
}

down_processes() {
  local spec name
  for spec in "${INSTANCES[@]}"; do
    name="${spec%%:*}"
    if running "$name"; then
      log "stopping $name"
      as_postgres "$PG_BIN/pg_ctl" -D "$dir/$name/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
        log "warning: $name did not stop cleanly"
    fi
  done
}

down() {
  [ -d "$dir" ] || return 0
  dir="$(cd "$dir" && pwd)"
  down_processes
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$dir"; fi
}

case "$command" in
  up) up ;;
  down) down ;;
  *) die "usage: $0 up|down DIR" ;;
esac
