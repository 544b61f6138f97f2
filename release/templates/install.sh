#!/bin/sh
# vikunja-pve installer stub for release @VERSION@.
# Usage: curl -fsSL https://github.com/@OWNER@/@REPO@/releases/latest/download/install.sh | sh -s -- [BOOTSTRAP ARGS] [-- INSTALLER ARGS]
# Downloads vikunja-bootstrap of this release, checks its sha256 (written into this script when the
# release was made), and runs it. The bootstrap then verifies the signed release before anything runs.
# The whole script is one `{ ... }` group closed on its last line: the shell parses the group whole
# before running any of it, so a download cut off anywhere after the comments is a syntax error and
# runs nothing.
# Environment: VIKUNJA_INSTALLER_BASE_URL (mirror), VIKUNJA_GITHUB_OWNER, VIKUNJA_GITHUB_REPO,
# VIKUNJA_INSTALLER_VERSION (pin; defaults to this script's release).
{
set -u

RELEASE_VERSION="@VERSION@"
BOOTSTRAP_SHA256="@BOOTSTRAP_SHA256@"
DEFAULT_BASE_URL="@BASE_URL@"
DEFAULT_OWNER="@OWNER@"
DEFAULT_REPO="@REPO@"

say() {
    printf 'vikunja-install: %s\n' "$*" >&2
}

# What to do with no network: the bootstrap's own air-gapped mode (its --bundle option).
OFFLINE="with no network, copy the release's vikunja-bootstrap, bundle and bundle .minisig here and run: vikunja-bootstrap --bundle FILE -- ARGS"

die() {
    # $1: exit code (2 usage, 3 verification, 4 prerequisite, 6 download); rest: message
    code=$1
    shift
    say "error: $*"
    exit "$code"
}

detect_target() {
    os=$(uname -s)
    arch=$(uname -m)
    case "$os" in
        Linux) ;;
        *) die 4 "unsupported operating system '$os': vikunja-pve runs on Proxmox VE (Linux) hosts only" ;;
    esac
    case "$arch" in
        x86_64 | amd64) echo "x86_64-unknown-linux-gnu" ;;
        *) die 4 "unsupported CPU architecture '$arch': this release has x86_64 builds only" ;;
    esac
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d ' ' -f 1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d ' ' -f 1
    elif command -v openssl >/dev/null 2>&1; then
        openssl dgst -sha256 -r "$1" | cut -d ' ' -f 1
    else
        die 4 "no sha256 tool (sha256sum, shasum or openssl) found, so the download cannot be checked; install coreutils and retry"
    fi
}

# The https:// origin of a URL, to resolve a redirect to an absolute path.
origin_of() {
    rest=${1#https://}
    printf 'https://%s\n' "${rest%%/*}"
}

fetch_once() {
    # $1 url, $2 output file. One request, redirects not followed: prints the redirect's target,
    # or nothing when the file was downloaded.
    if command -v curl >/dev/null 2>&1; then
        meta=$(curl --proto '=https' --tlsv1.2 --fail --silent --show-error --retry 3 \
            --output "$2" --write-out '%{http_code} %{redirect_url}' "$1") ||
            die 6 "download of $1 failed (see the message above); check the network and the version; $OFFLINE"
        case "$meta" in
            3??\ ?*) printf '%s\n' "${meta#* }" ;;
            3*) die 6 "$1 answered a redirect without a target" ;;
        esac
    elif command -v wget >/dev/null 2>&1; then
        rc=0
        wget --max-redirect=0 --server-response --no-verbose --tries=3 --output-document="$2" "$1" 2>"$2.log" || rc=$?
        status=$(sed -n 's/^  HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$2.log" | tail -n 1)
        location=$(sed -n 's/^  Location: *//p' "$2.log" | tail -n 1 | tr -d '\r')
        case "$status" in
            2??) [ "$rc" -eq 0 ] || { cat "$2.log" >&2; die 6 "download of $1 failed; check the network and the version; $OFFLINE"; } ;;
            3??)
                case "$location" in
                    *://*) printf '%s\n' "$location" ;;
                    /*) printf '%s%s\n' "$(origin_of "$1")" "$location" ;;
                    *) die 6 "$1 answered a redirect to '$location', which this script does not follow" ;;
                esac
                ;;
            *)
                cat "$2.log" >&2
                die 6 "download of $1 failed (HTTP ${status:-no answer}); check the network and the version; $OFFLINE"
                ;;
        esac
        rm -f "$2.log"
    else
        die 4 "neither curl nor wget is installed; install curl and retry"
    fi
}

download() {
    # $1 url, $2 output file. Redirects are followed here, one hop at a time, so that curl and wget
    # alike check every hop is https:// before requesting it (wget's --https-only does not apply
    # to redirects).
    url=$1
    hops=0
    while :; do
        case "$url" in
            https://*) ;;
            *)
                [ "$url" = "$1" ] && die 3 "refusing to download over plain http: $url"
                die 3 "$1 redirected to the plain-http URL $url: refusing it; use a mirror that redirects to https:// only"
                ;;
        esac
        next=$(fetch_once "$url" "$2") || exit $?
        [ -z "$next" ] && return 0
        hops=$((hops + 1))
        [ "$hops" -le 10 ] || die 6 "more than 10 redirects from $1; check the base URL"
        url=$next
    done
}

# shellcheck disable=SC2317 # called from the EXIT/INT/TERM traps
cleanup() {
    if [ -n "${tmpdir:-}" ] && [ -d "$tmpdir" ]; then
        rm -rf "$tmpdir"
    fi
}

main() {
    target=$(detect_target) || exit $?
    base=${VIKUNJA_INSTALLER_BASE_URL:-$DEFAULT_BASE_URL}
    base=${base%/}
    owner=${VIKUNJA_GITHUB_OWNER:-$DEFAULT_OWNER}
    repo=${VIKUNJA_GITHUB_REPO:-$DEFAULT_REPO}
    asset="vikunja-bootstrap-$target"
    url="$base/$owner/$repo/releases/download/v$RELEASE_VERSION/$asset"

    tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/vikunja-install.XXXXXX") || die 4 "cannot create a temporary directory in ${TMPDIR:-/tmp}"
    trap cleanup EXIT
    trap 'cleanup; exit 130' INT TERM

    say "downloading $asset $RELEASE_VERSION"
    download "$url" "$tmpdir/$asset"
    actual=$(sha256_of "$tmpdir/$asset") || exit $?
    if [ "$actual" != "$BOOTSTRAP_SHA256" ]; then
        die 3 "checksum mismatch for $asset: expected $BOOTSTRAP_SHA256, got $actual; the download is corrupt or tampered, nothing was run"
    fi
    chmod 0700 "$tmpdir/$asset"
    if [ -z "${VIKUNJA_INSTALLER_VERSION:-}" ]; then
        VIKUNJA_INSTALLER_VERSION=$RELEASE_VERSION
        export VIKUNJA_INSTALLER_VERSION
    fi
    rc=0
    "$tmpdir/$asset" "$@" || rc=$?
    if [ "$rc" -eq 126 ]; then
        say "error: cannot execute $tmpdir/$asset: is ${TMPDIR:-/tmp} mounted noexec? Set TMPDIR to another directory and retry"
    fi
    exit "$rc"
}

main "$@"
}
