#!/bin/bash
# Docker HEALTHCHECK without curl: GET /healthz over bash's /dev/tcp on the
# plain HTTP listener. Healthy on a 200, or on a redirect (with TLS on, the
# plain listener may send everything but ACME challenges to https).
#
# The port comes from PORT, as the server reads it (8889, :80, 0.0.0.0:80,
# [::]:80); without PORT, the defaults of development (8889) and of SSER's
# production.yaml (80) are tried.
set -u
# bash reports a refused connection itself; say it once, below, instead.
exec 2>/dev/null

if [ -n "${PORT:-}" ]; then
  ports=("${PORT##*:}")
else
  ports=(8889 80)
fi

for port in "${ports[@]}"; do
  status=""
  {
    printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\nUser-Agent: sser-healthcheck\r\n\r\n' >&3
    IFS= read -r -t 5 status <&3
  } 3<>"/dev/tcp/127.0.0.1/${port}" 2>/dev/null
  case "$status" in
    "HTTP/1."?" 200 "* | "HTTP/1."?" 30"[12378]" "*) exit 0 ;;
  esac
done
echo "no healthy answer from GET /healthz on 127.0.0.1 port ${ports[*]}" 
exit 1
