#!/bin/sh
# Runs sser as the unprivileged user `sser`.
#
# SSER's documented `docker run ... -v ./_config:/_config -v ./_storage:/_storage`
# bind-mounts host folders, which keep their host owner (usually root or the
# operator's uid), and sser must write to two of them: the persistent store
# (/_storage) and the ACME certificate cache (/_config/certs). So, when the
# container starts as root (the default), this hands those two folders to
# `sser`, as the official redis and postgres images do for their data, and
# then drops root for good. Started with `--user`, it changes nothing.
set -eu

# `docker run IMAGE --print-config` passes flags to sser.
if [ "${1#-}" != "$1" ]; then
  set -- sser "$@"
fi

case "$1" in
  sser | */sser) is_sser=true ;;
  *) is_sser=false ;;
esac

if [ "$is_sser" = true ] && [ "$(id -u)" = 0 ]; then
  for dir in /_storage /_config/certs; do
    # A read-only /_config mount is fine: sser only needs certs with TLS on,
    # and says so clearly if it cannot write there.
    mkdir -p "$dir" 2>/dev/null || continue
    find "$dir" \! -user sser -exec chown sser:sser '{}' + 2>/dev/null || true
  done
  exec setpriv --reuid=sser --regid=sser --init-groups --inh-caps=-all -- "$@"
fi

exec "$@"
