#!/usr/bin/env bash
# Runs nchan (Debian: apt-get install nginx-light libnginx-mod-nchan) on
# loopback with bench/peers/nchan.conf, in the foreground, with everything it
# writes under a temporary prefix. Works unprivileged (nginx then keeps the
# caller's user).
#
# Usage: bench/peers/run-nchan.sh [PORT]     (default 8890; Ctrl-C stops it)
# Then:  sser-bench fanout --subscribe-url 'http://127.0.0.1:PORT/sub/{topic}' \
#                          --publish-url  'http://127.0.0.1:PORT/pub/{topic}'
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-8890}"
module="${NCHAN_MODULE:-/usr/lib/nginx/modules/ngx_nchan_module.so}"
nginx_bin="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
[ -x "$nginx_bin" ] || { echo "nginx not found: apt-get install nginx-light libnginx-mod-nchan" >&2; exit 1; }
[ -f "$module" ] || { echo "nchan module not found at $module: apt-get install libnginx-mod-nchan" >&2; exit 1; }
prefix="$(mktemp -d /tmp/sser-bench-nchan.XXXXXX)"
mkdir -p "$prefix/tmp" "$prefix/logs"
chmod 755 "$prefix"
sed -e "s|@PORT@|$port|g" -e "s|@PREFIX@|$prefix|g" -e "s|@MODULE@|$module|g" \
  "$here/nchan.conf" > "$prefix/nginx.conf"
echo "nchan on http://127.0.0.1:$port (prefix $prefix)" >&2
exec "$nginx_bin" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log"
