#!/usr/bin/env bash
# tests/install-deps.sh: installs the Debian packages that building and testing need.
# Runs as root or through sudo; does nothing when everything is present already.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/sudo.sh"

# postgresql-15-postgis-3: sql/09_formats.sql checks the GeoJSON of PostGIS columns (the extension
# itself never needs PostGIS)
pkgs=(postgresql-15 libcurl4-openssl-dev libcjson-dev libgtest-dev g++ make python3 ca-certificates prometheus
      postgresql-15-postgis-3)
missing=()
for p in "${pkgs[@]}" postgresql-server-dev-15; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# The PGXS headers must match the installed server exactly.
if dpkg -s postgresql-15 >/dev/null 2>&1 && dpkg -s postgresql-server-dev-15 >/dev/null 2>&1; then
    [ "$(dpkg-query -W -f='${Version}' postgresql-15)" = "$(dpkg-query -W -f='${Version}' postgresql-server-dev-15)" ] \
        || missing+=(postgresql-server-dev-15)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if ! can_sudo; then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: installing them needs root, or a sudo that can run without a password or ask for one on a terminal; run 'sudo tests/install-deps.sh' once, or as root" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Packages such as prometheus would start system services on install; the tests start their own
# servers on free ports, so keep the package scripts from starting anything.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | sudo_if_needed tee /usr/sbin/policy-rc.d >/dev/null
    sudo_if_needed chmod +x /usr/sbin/policy-rc.d
    trap 'sudo_if_needed rm -f /usr/sbin/policy-rc.d' EXIT
fi
sudo_if_needed apt-get update -qq
# postgresql-15 first, then the dev headers pinned to its version.
sudo_if_needed apt-get install -y -qq "${pkgs[@]}" >/dev/null
ver=$(dpkg-query -W -f='${Version}' postgresql-15)
sudo_if_needed apt-get install -y -qq --allow-downgrades "postgresql-server-dev-15=$ver" >/dev/null
echo "install-deps: done"
