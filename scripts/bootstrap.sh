#!/usr/bin/env bash
# Installs everything the hub needs on a fresh Debian 12 machine; a second run only checks.
# Steps: apt packages (Mosquitto, PostgreSQL 15, build tools), TimescaleDB built from
# Debian's source package, and the Python virtual environment in .venv.
set -euo pipefail

root_dir=$(cd "$(dirname "$0")/.." && pwd)
cache_dir="${ELDERCARE_CACHE_DIR:-$HOME/.cache/eldercare}"
stamp_dir="$root_dir/.venv"
pg_major=15
pg_config="/usr/lib/postgresql/$pg_major/bin/pg_config"
tsdb_version_wanted="2.19.3"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@" || sudo "$@";
  else log "need root for: $*  (run as root or install sudo)"; exit 1; fi
}

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated -eq 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  log "apt-get install ${missing[*]}"
  # policy-rc.d-style guard: we run our own private services, never the system ones.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

system_packages() {
  apt_install mosquitto mosquitto-clients "postgresql-$pg_major" "postgresql-client-$pg_major" \
    "postgresql-server-dev-$pg_major" cmake gcc make xz-utils dpkg-dev
  # The Debian packages start system-wide services where an init system exists; the hub
  # never uses them, so stop them to free the default ports (errors ignored: no init here).
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now mosquitto >/dev/null 2>&1 || true
  fi
}

control_file() { echo "$("$pg_config" --sharedir)/extension/timescaledb.control"; }

# The version CREATE EXTENSION would install, from the control file ("" when there is none).
timescaledb_default_version() {
  local control
  control=$(control_file)
  [ -f "$control" ] || return 0
  sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" "$control" | head -1
}

# Complete means: the control file, the loader and the library of the version it names. Any build
# counts (Timescale's Community packages, an older or newer version, our own Apache build).
timescaledb_installed() {
  local version libdir
  version=$(timescaledb_default_version)
  libdir=$("$pg_config" --pkglibdir)
  [ -n "$version" ] && [ -f "$libdir/timescaledb.so" ] && [ -f "$libdir/timescaledb-$version.so" ]
}

timescaledb_describe() {
  local version libdir
  version=$(timescaledb_default_version)
  libdir=$("$pg_config" --pkglibdir)
  if [ -f "$libdir/timescaledb-tsl-$version.so" ]; then
    echo "TimescaleDB $version with the Community (TSL) module"
  else
    echo "TimescaleDB $version, Apache edition"
  fi
}

# Opt-in (ELDERCARE_TIMESCALE_PACKAGES=1): the Community edition from Timescale's own apt repository.
# Adds that repository to the system's apt sources, so it is never done unasked.
timescale_packages() {
  [ "${ELDERCARE_TIMESCALE_PACKAGES:-0}" = 1 ] || return 1
  apt_install curl ca-certificates gnupg
  local key=/usr/share/keyrings/timescaledb.gpg
  if ! curl -fsSL --max-time 20 https://packagecloud.io/timescale/timescaledb/gpgkey | as_root gpg --batch --yes \
      --dearmor -o "$key"; then
    log "Timescale's package repository cannot be reached; building the Apache edition instead"
    return 1
  fi
  local codename
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  echo "deb [signed-by=$key] https://packagecloud.io/timescale/timescaledb/debian/ $codename main" \
    | as_root tee /etc/apt/sources.list.d/timescaledb.list >/dev/null
  apt_updated=0
  if ! apt_install "timescaledb-2-postgresql-$pg_major"; then
    log "installing Timescale's package failed; building the Apache edition instead"
    return 1
  fi
  timescaledb_installed
}

timescaledb() {
  if timescaledb_installed; then
    log "using the installed $(timescaledb_describe)"
    return 0
  fi
  local control
  control=$(control_file)
  if [ -f "$control" ] && dpkg-query -S "$control" >/dev/null 2>&1; then
    # Half a packaged install: overwriting a package's files would break the next apt upgrade.
    log "TimescaleDB is incomplete: reinstall $(dpkg-query -S "$control" | cut -d: -f1), which owns $control"
    exit 1
  fi
  if timescale_packages; then return 0; fi
  # Debian 12 has no TimescaleDB package; Debian 13 ships the Apache-2 source. See docs/install.md.
  local src="$cache_dir/timescaledb-src"
  mkdir -p "$cache_dir"
  if ! ls "$cache_dir"/timescaledb_*.orig.tar.* >/dev/null 2>&1; then
    log "fetching TimescaleDB source from Debian trixie"
    local apt_dir="$cache_dir/apt"
    mkdir -p "$apt_dir/lists/partial"
    echo "deb-src http://deb.debian.org/debian trixie main" > "$apt_dir/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=-"
                -o "Dir::State::Lists=$apt_dir/lists" -o "APT::Sandbox::User=root")
    apt-get "${opts[@]}" update -qq
    (cd "$cache_dir" && apt-get "${opts[@]}" source --download-only -qq timescaledb)
  fi
  local tarball
  tarball=$(ls "$cache_dir"/timescaledb_*.orig.tar.* | head -1)
  rm -rf "$src" && mkdir -p "$src"
  tar -xf "$tarball" -C "$src" --strip-components=1
  log "building TimescaleDB ($(basename "$tarball")) against PostgreSQL $pg_major"
  (cd "$src" && ./bootstrap -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
      -DWARNINGS_AS_ERRORS=OFF -DUSE_TELEMETRY=OFF -DPG_CONFIG="$pg_config" >"$cache_dir/tsdb-configure.log" 2>&1 \
    && make -C build -j"$(nproc)" >"$cache_dir/tsdb-build.log" 2>&1) \
    || { log "TimescaleDB build failed; see $cache_dir/tsdb-*.log"; exit 1; }
  as_root make -C "$src/build" install >"$cache_dir/tsdb-install.log" 2>&1
  timescaledb_installed || { log "TimescaleDB install did not produce timescaledb.control"; exit 1; }
}

python_env() {
  local py="${PYTHON:-python3}"
  local want_hash
  want_hash=$(sha256sum "$root_dir/pyproject.toml" | cut -c1-16)
  if [ -f "$stamp_dir/.installed-$want_hash" ]; then return 0; fi
  if [ ! -x "$root_dir/.venv/bin/python" ]; then
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
      || { log "Python 3.11 or newer is needed (found $($py --version))"; exit 1; }
    "$py" -m venv "$root_dir/.venv" 2>/dev/null || { apt_install python3-venv; "$py" -m venv "$root_dir/.venv"; }
  fi
  log "installing Python packages into .venv"
  "$root_dir/.venv/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$root_dir/.venv/bin/python" -m pip install -q -e "$root_dir[dev]"
  rm -f "$stamp_dir"/.installed-* && touch "$stamp_dir/.installed-$want_hash"
}

browser() {
  apt_install chromium fonts-noto-cjk
}

# The storage tests also run against TimescaleDB's Community edition, built by their fixtures from
# the upstream source into a private tree (never over the system's build). Fetch that source once;
# where it cannot be fetched those tests are skipped, saying so. The product itself never needs it.
community_source() {
  local dir
  if [ "$(id -u)" -eq 0 ]; then dir=/var/cache/eldercare; else dir="${XDG_CACHE_HOME:-$HOME/.cache}/eldercare"; fi
  local tarball="$dir/timescaledb-$tsdb_version_wanted-src.tar.gz"
  if [ -n "${ELDERCARE_TIMESCALEDB_SRC:-}" ] || [ -f "$tarball" ]; then return 0; fi
  mkdir -p "$dir"
  command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
  if curl -fsSL --max-time 120 -o "$tarball.part" \
      "https://github.com/timescale/timescaledb/archive/refs/tags/$tsdb_version_wanted.tar.gz"; then
    mv "$tarball.part" "$tarball"
    log "fetched the TimescaleDB $tsdb_version_wanted source for the Community-edition tests"
  else
    rm -f "$tarball.part"
    log "could not fetch the TimescaleDB source: the Community-edition storage tests use \$ELDERCARE_TIMESCALEDB_SRC or ../shared/vendor when present, and are skipped otherwise"
  fi
}

main() {
  local what=${1:-all}
  system_packages
  timescaledb
  python_env
  if [ "$what" = test ]; then browser; community_source; fi
}

main "$@"
