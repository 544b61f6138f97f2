#!/bin/sh
# Health check of Vikunja instance {{instance}}, installed by vikunja-installer: the same components
# as `vikunja-installer health`, for cron and monitoring: the active colour's backend (/health and
# /api/v1/info), the frontend, the MCP server (initialize), the database, and nginx (HTTPS answers, HTTP redirects)
# on network.listen_address. Exit 0 when healthy, 10 when a component is not. Needs curl.
set -u
base="{{base}}"
settings="$base/config/deployment.toml"

# A key of a [section] in the installer-written deployment.toml (one `key = value` per line).
setting() {
    awk -v s="[$1]" -v k="$2" '
        /^\[/ { in_s = ($0 == s); next }
        in_s && $1 == k && $2 == "=" { v = $0; sub(/^[^=]*=[ \t]*/, "", v); gsub(/^"|"$/, "", v); print v; exit }
    ' "$settings" 2>/dev/null
}

colour=$(cat "$base/state/active-color" 2>/dev/null || echo blue)
if [ "$colour" = green ]; then backend="{{backend_green}}" mcp="{{mcp_green}}"; else backend="{{backend_blue}}" mcp="{{mcp_blue}}"; fi
mcp_enabled="{{mcp_enabled}}"
listen=$(setting network listen_address)
case "$listen" in "" | 0.0.0.0) host=127.0.0.1 ;; :: ) host='[::1]' ;; *:*) host="[$listen]" ;; *) host=$listen ;; esac
http_port="{{http_port}}"
https_port=$(setting network https_port)
https_port=${https_port:-443}
rc=0
fail() { echo "FAIL: $*"; rc=10; }

curl -fsS -m 5 "http://127.0.0.1:$backend/health" >/dev/null 2>&1 || fail "Backend API unhealthy (port $backend)"
curl -fsS -m 5 "http://127.0.0.1:$backend/api/v1/info" 2>/dev/null | grep -q '"version"' || fail "Backend API info missing (port $backend)"
curl -fsS -m 5 "http://127.0.0.1:$backend/" 2>/dev/null | grep -qi '<html' || fail "Frontend unhealthy"
if [ "$mcp_enabled" = yes ]; then
    # An MCP initialize over streamable HTTP (what `vikunja-installer health` does, plus tools/list).
    curl -fsS -m 5 -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"health-check.sh","version":"1"}}}' \
        "http://127.0.0.1:$mcp/mcp" 2>/dev/null | grep -q '"serverInfo"' || fail "MCP server unhealthy (port $mcp: no answer to initialize at /mcp)"
fi

case "$(setting database type)" in
"" | sqlite)
    db="$base/data/vikunja.db"
    # The file's first 16 bytes name the format; an empty or foreign file is no database.
    [ "$(head -c 15 "$db" 2>/dev/null)" = "SQLite format 3" ] || fail "Database unhealthy: $db is not a SQLite database"
    ;;
*)
    dbhost=$(setting database host)
    dbport=$(setting database port)
    # curl's telnet:// only opens the connection: reachability, not the login `health` also checks.
    curl -s -m 5 -o /dev/null "telnet://$dbhost:$dbport" </dev/null ||
        fail "Database unreachable at $dbhost:$dbport (vikunja-installer health --instance {{instance}} checks the login too)"
    ;;
esac

code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://$host:$http_port/" 2>/dev/null)
case "$code" in 301 | 308) ;; *) fail "Nginx unhealthy (port $http_port answered '$code' instead of a redirect to HTTPS)" ;; esac
code=$(curl -sk -m 5 -o /dev/null -w '%{http_code}' "https://$host:$https_port/" 2>/dev/null)
case "$code" in 2?? | 3??) ;; *) fail "Nginx HTTPS unhealthy (port $https_port answered '$code')" ;; esac
[ "$rc" -eq 0 ] && echo "OK: All components healthy"
exit "$rc"
