# Sourced by scripts/test.sh: installs what the tests need outside cargo,
# only when it is missing, so a second run costs nothing.
#
# - Chromium (Debian's package) for the dashboard's browser test,
#   tests/dashboard.rs. Needs root (as on CI and the dev machines) or sudo.
# - The browser test's npm packages (tests/browser: playwright-core, which
#   drives the installed Chromium and downloads no browser of its own).

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  printf '\n==> installing chromium (for the dashboard browser test)\n'
  sudo_cmd=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if ! command -v node >/dev/null 2>&1; then
  printf '\n==> installing nodejs and npm (for the dashboard browser test)\n'
  sudo_cmd=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# npm ci only when the lockfile changed since the last install.
if [ ! -f tests/browser/node_modules/.package-lock.json ] \
  || ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.sser-installed-lock; then
  printf '\n==> npm ci in tests/browser\n'
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error \
    && cp package-lock.json node_modules/.sser-installed-lock)
fi
