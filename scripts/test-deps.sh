# Sourced by scripts/test.sh: installs what the tests need outside cargo,
# only when it is missing, so a second run costs nothing.
#
# - pebble (+ pebble-challtestsrv): a real ACME CA for tests/tls.rs.
# - chromium: a real browser for the dashboard test, tests/dashboard.rs.
# - node/npm and tests/browser's npm packages (playwright-core, which drives
#   the installed Chromium and downloads no browser of its own).
# - redis-server: a real Redis for the cluster tests, tests/cluster/ (each
#   test starts its own on a free port; the system service is not used).
# - nginx (nginx-light): runs deploy/cluster/nginx.conf in front of three
#   nodes in tests/cluster/load_balancer.rs (its own process; the system
#   service is not started).
# All from Debian's packages or the npm registry. The tests that need them
# fail (not skip) when they are missing.

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
apt_packages=""
if ! command -v pebble >/dev/null 2>&1 || ! command -v pebble-challtestsrv >/dev/null 2>&1; then
  apt_packages="$apt_packages pebble"
fi
if [ ! -x /usr/bin/chromium ]; then
  apt_packages="$apt_packages chromium"
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_packages="$apt_packages nodejs npm"
fi
if ! command -v redis-server >/dev/null 2>&1; then
  apt_packages="$apt_packages redis-server"
fi
if [ ! -x /usr/sbin/nginx ] && ! command -v nginx >/dev/null 2>&1; then
  apt_packages="$apt_packages nginx-light"
fi
if [ -n "$apt_packages" ]; then
  printf '\n==> installing%s\n' "$apt_packages"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $apt_packages >/dev/null
fi

# npm ci only when the lockfile changed since the last install.
if ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.sser-installed-lock; then
  printf '\n==> npm ci in tests/browser\n'
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error \
    && cp package-lock.json node_modules/.sser-installed-lock)
fi
true
