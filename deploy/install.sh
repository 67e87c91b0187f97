#!/usr/bin/env bash
# Installs the e-Kinerja attendance gateway (at an office) or store (at the province) on Debian or
# Ubuntu, from this source tree. Run it again to upgrade in place: the program is replaced, the
# configuration and the data are kept, and a running service is restarted (the store migrates its
# database before it serves).
#
#   deploy/install.sh [options] gateway|store
#
#   --prefix DIR      the program, in DIR/venv (default /opt/ekinerja); with --prefix alone the
#                     configuration and data go under DIR too (DIR/etc, DIR/var)
#   --config-dir DIR  gateway.toml or store.toml and the secrets beside them (default /etc/ekinerja)
#   --data-dir DIR    the punch buffer or the store's SQLite database (default /var/lib/ekinerja)
#   --user NAME       the system user the service runs as (default ekinerja)
#   --with-pcsc       gateway: RFID card readers (installs pcscd and builds pyscard)
#   --no-systemd      no system user, no units in /etc/systemd/system, nothing started or
#                     installed with apt (tests, containers); the units are still written under
#                     DIR/share/systemd for review
set -euo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
fail() { echo "install.sh: $*" >&2; exit 2; }

src="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/opt/ekinerja etc="" data="" user=ekinerja pcsc=0 systemd=1 role="" custom_prefix=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || fail "--prefix needs a folder"; prefix="$2"; custom_prefix=1; shift 2 ;;
    --config-dir) [ $# -ge 2 ] || fail "--config-dir needs a folder"; etc="$2"; shift 2 ;;
    --data-dir) [ $# -ge 2 ] || fail "--data-dir needs a folder"; data="$2"; shift 2 ;;
    --user) [ $# -ge 2 ] || fail "--user needs a name"; user="$2"; shift 2 ;;
    --with-pcsc) pcsc=1; shift ;;
    --no-systemd) systemd=0; shift ;;
    -h|--help) usage 0 ;;
    gateway|store) [ -z "$role" ] || fail "give gateway or store once"; role="$1"; shift ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage 2 ;;
  esac
done
[ -n "$role" ] || { echo "install.sh: say what to install: gateway or store" >&2; usage 2; }
[ "$pcsc" -eq 0 ] || [ "$role" = gateway ] || fail "--with-pcsc is for the gateway"
case "$prefix" in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac
if [ "$custom_prefix" -eq 1 ]; then
  etc="${etc:-$prefix/etc}" data="${data:-$prefix/var}"
else
  etc="${etc:-/etc/ekinerja}" data="${data:-/var/lib/ekinerja}"
fi
[[ "$user" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || fail "--user $user is not a valid user name"
if [ "$systemd" -eq 1 ] && [ "$(id -u)" -ne 0 ]; then
  fail "run as root (it creates a user, writes /etc/systemd/system and installs packages), or add --no-systemd"
fi
venv="$prefix/venv"
say() { echo "==> $*"; }

# --- packages the Python side needs ----------------------------------------------------------------
python="${PYTHON:-python3}"
if [ "$systemd" -eq 1 ]; then
  packages=()
  "$python" -c "import ensurepip, venv" 2>/dev/null || packages+=(python3-venv)
  if [ "$pcsc" -eq 1 ]; then  # pyscard has no Linux wheel: it compiles against libpcsclite
    [ -x /usr/sbin/pcscd ] || packages+=(pcscd)
    [ -e /usr/include/PCSC/winscard.h ] || packages+=(libpcsclite-dev)
    command -v gcc >/dev/null 2>&1 || packages+=(gcc)
    "$python" -c "import sysconfig, os, sys; sys.exit(not os.path.exists(sysconfig.get_path('include') + '/Python.h'))" \
      || packages+=(python3-dev)
  fi
  if [ ${#packages[@]} -gt 0 ]; then
    say "installing ${packages[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
  fi
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || fail "$("$python" --version 2>&1) is too old: Python 3.11 or newer is needed (Debian 12, Ubuntu 24.04)"

# --- the program ------------------------------------------------------------------------------------
extras=""
[ "$role" = store ] && extras="[postgresql,mariadb]"
[ "$pcsc" -eq 1 ] && extras="[pcsc]"
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  mkdir -p "$prefix"
  "$python" -m venv "$venv"
fi
say "installing ekinerja-gateway$extras from $src into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade "$src$extras"
mkdir -p "$prefix/share/doc/ekinerja" "$prefix/share/systemd"
cp "$src"/docs/*.md "$prefix/share/doc/ekinerja/" 2>/dev/null || true

# --- the service user and folders -----------------------------------------------------------------
owner="$(id -un)"
if [ "$systemd" -eq 1 ]; then
  if ! id -u "$user" >/dev/null 2>&1; then
    say "creating the system user $user"
    useradd --system --home-dir "$data" --no-create-home --shell /usr/sbin/nologin "$user"
  fi
  owner="$user"
fi
mkdir -p "$etc" "$data/$role"
if [ "$systemd" -eq 1 ]; then
  chown root:"$user" "$etc"; chmod 750 "$etc"
  chown "$user:$user" "$data" "$data/$role"; chmod 750 "$data" "$data/$role"
fi

# --- configuration: installed once, never overwritten --------------------------------------------
secret() { "$venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))'; }
config="$etc/$role.toml" env_file="$etc/$role.env"
if [ ! -e "$config" ]; then
  say "writing $config (edit it: see the comments in it)"
  sed -e "s|@DATA@|$data|g" -e "s|@ETC@|$etc|g" "$src/deploy/config/$role.toml" > "$config.new"
  chmod 640 "$config.new"
  [ "$systemd" -eq 0 ] || chown root:"$user" "$config.new"
  mv "$config.new" "$config"
else
  say "keeping $config"
fi
if [ ! -e "$env_file" ]; then
  say "writing $env_file with new random secrets (mode 600)"
  umask 077
  if [ "$role" = store ]; then
    printf 'EKINERJA_CORE_TOKEN=%s\nEKINERJA_ADMIN_TOKEN=%s\n' "$(secret)" "$(secret)" > "$env_file"
  else
    # Replace the first with the token `ekinerja store gateway add <id>` prints at the store.
    printf 'EKINERJA_GATEWAY_TOKEN=%s\nEKINERJA_WEB_PASSWORD=%s\n' "$(secret)" "$(secret)" > "$env_file"
  fi
  umask 022
else
  say "keeping $env_file"
fi

# --- units ------------------------------------------------------------------------------------------
for unit in "$src"/deploy/systemd/ekinerja-"$role".service; do
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@ETC@|$etc|g" -e "s|@DATA@|$data|g" -e "s|@USER@|$user|g" \
    "$unit" > "$prefix/share/systemd/$(basename "$unit")"
done

# --- the operator's command: the installed ekinerja with the services' secrets -------------------
bin="/usr/local/bin"
[ "$systemd" -eq 1 ] || bin="$prefix/bin"
mkdir -p "$bin"
cat > "$bin/ekinerja.new" <<WRAPPER
#!/bin/sh
# ekinerja as the services run it: with the secrets of $etc/*.env (readable by root only, so: sudo ekinerja ...).
# Written by deploy/install.sh; the program is $venv/bin/ekinerja.
set -a
for env in "$etc/store.env" "$etc/gateway.env"; do
  if [ -r "\$env" ]; then . "\$env"; fi
done
set +a
exec "$venv/bin/ekinerja" "\$@"
WRAPPER
chmod 755 "$bin/ekinerja.new"
mv "$bin/ekinerja.new" "$bin/ekinerja"

# --- check, and for the store, the schema ---------------------------------------------------------
as_owner() {
  if [ "$systemd" -eq 1 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}
with_env() { (set -a; . "$env_file"; set +a; as_owner "$@"); }
if ! with_env "$venv/bin/ekinerja" "$role" check-config --config "$config"; then
  echo "install.sh: warning: $config needs attention (above); the installation itself is done" >&2
fi
if [ "$role" = store ]; then
  with_env "$venv/bin/ekinerja" store migrate --config "$config" \
    || echo "install.sh: warning: the database could not be migrated now; the service migrates it when it starts" >&2
fi

# --- systemd -----------------------------------------------------------------------------------------
service="ekinerja-$role"
if [ "$systemd" -eq 1 ]; then
  install -m 644 "$prefix/share/systemd/$service.service" "/etc/systemd/system/$service.service"
  if [ "$pcsc" -eq 1 ] && [ -d /etc/polkit-1/rules.d ]; then
    sed -e "s|@USER@|$user|g" "$src/deploy/polkit/50-ekinerja-pcscd.rules" > /etc/polkit-1/rules.d/50-ekinerja-pcscd.rules
  fi
  systemctl daemon-reload
  systemctl enable "$service" >/dev/null
  if systemctl is-active --quiet "$service"; then
    say "restarting $service with the new version"
    systemctl restart "$service"
  else
    say "installed. Edit $config, then: systemctl start $service"
  fi
else
  say "installed without systemd; the unit for review is $prefix/share/systemd/$service.service"
fi
echo "command: $bin/ekinerja (with sudo: it reads the secrets)   config: $config   secrets: $env_file   data: $data/$role"
