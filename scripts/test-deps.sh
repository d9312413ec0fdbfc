# Sourced by scripts/test.sh: installs what the tests need outside cargo,
# only when it is missing, so a second run costs nothing.

# pebble (+ pebble-challtestsrv): a real ACME CA for tests/tls.rs, from
# Debian's packages. The test fails (not skips) when it is missing.
if ! command -v pebble >/dev/null 2>&1 || ! command -v pebble-challtestsrv >/dev/null 2>&1; then
  printf '\n==> installing pebble (ACME test CA)\n'
  SUDO=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends pebble >/dev/null
fi
true
