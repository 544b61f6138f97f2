#!/bin/sh
# Health check of Vikunja instance {{instance}}, installed by vikunja-installer.
# Checks the active colour's backend (/health and /api/v1/info), the frontend, the MCP port and nginx.
# Exit 0 when healthy, 10 when a component is not. Needs curl.
set -u
base="{{base}}"
colour=$(cat "$base/state/active-color" 2>/dev/null || echo blue)
if [ "$colour" = green ]; then backend={{backend_green}}; mcp={{mcp_green}}; else backend={{backend_blue}}; mcp={{mcp_blue}}; fi
rc=0
fail() { echo "FAIL: $*"; rc=10; }

curl -fsS -m 5 "http://127.0.0.1:$backend/health" >/dev/null 2>&1 || fail "Backend API unhealthy (port $backend)"
curl -fsS -m 5 "http://127.0.0.1:$backend/api/v1/info" 2>/dev/null | grep -q '"version"' || fail "Backend API info missing (port $backend)"
curl -fsS -m 5 "http://127.0.0.1:$backend/" 2>/dev/null | grep -qi '<html' || fail "Frontend unhealthy"
if [ "{{mcp_enabled}}" = yes ]; then
    curl -s -m 5 -o /dev/null "http://127.0.0.1:$mcp/" || fail "MCP server unhealthy (port $mcp)"
fi
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:{{http_port}}/" 2>/dev/null)
case "$code" in 301|308) ;; *) fail "Nginx unhealthy (port {{http_port}} answered '$code')" ;; esac
[ "$rc" -eq 0 ] && echo "OK: All components healthy"
exit "$rc"
