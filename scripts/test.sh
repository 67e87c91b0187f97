#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh Debian/Ubuntu machine, then runs it:
# the MariaDB and PostgreSQL servers, pcscd with vsmartcard's virtual readers and mosquitto (the
# tests start their own throwaway instances), chromium for the page tests, nginx, a virtual
# environment with the project and its test tools, then ruff, mypy, pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/store -x; pyproject's addopts run the tests
# on three workers (pytest-xdist), -n 0 in one process.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
packages=()
"$python" -c "import ensurepip, venv" 2>/dev/null || packages+=(python3-venv)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || packages+=(mariadb-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || packages+=(postgresql)
# PC/SC: pcscd with vsmartcard's virtual reader, and what building pyscard needs (it has no Linux wheel).
[ -x /usr/sbin/pcscd ] || packages+=(pcscd)
[ -e /etc/reader.conf.d/vpcd ] || packages+=(vsmartcard-vpcd)
[ -e /usr/include/PCSC/winscard.h ] || packages+=(libpcsclite-dev)
command -v gcc >/dev/null 2>&1 || packages+=(gcc)
"$python" -c "import sysconfig, os, sys; sys.exit(not os.path.exists(sysconfig.get_path('include') + '/Python.h'))" \
  || packages+=(python3-dev)
# The status page's tests drive Debian's chromium through Playwright (never `playwright install`).
[ -x /usr/bin/chromium ] || packages+=(chromium)
# MQTT: the tests run their own mosquitto on a free port (Debian's package also starts one on
# 1883 under systemd; it is left alone) and use mosquitto_sub as an independent subscriber.
[ -x /usr/sbin/mosquitto ] || packages+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || packages+=(mosquitto-clients)
# The reverse proxy's example (deploy/nginx/) is tested in front of a store; the test runs its own nginx.
[ -x /usr/sbin/nginx ] || packages+=(nginx-light)
# The systemd units install.sh writes are checked with systemd-analyze verify (nothing is started).
command -v systemd-analyze >/dev/null 2>&1 || packages+=(systemd)
# The MQTT TLS test makes a throwaway CA with the openssl command.
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#packages[@]} -gt 0 ]; then
  echo "installing ${packages[*]} ..."
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

# The tests start and restart their own pcscd; one run by systemd (Debian's package enables its
# socket) would hold its socket path, so it is stopped for the run.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet pcscd.socket pcscd.service 2>/dev/null; then
  echo "stopping the system's pcscd for the tests ..."
  $sudo systemctl stop pcscd.socket pcscd.service
fi

# vpcd listens on fixed ports 35963-35964; keep the kernel from handing them out as the local
# port of some other connection, which would stop a restarted pcscd from getting its readers.
reserved="$(cat /proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null || true)"
case ",$reserved," in
  *,35963-35964,*) ;;
  *) $sudo sysctl -q -w net.ipv4.ip_local_reserved_ports="${reserved:+$reserved,}35963-35964" 2>/dev/null \
       || echo "note: could not reserve ports 35963-35964 (sysctl); a pcscd restart may rarely find them taken" ;;
esac

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
