#!/usr/bin/env bash
# vendor.sh [OUT_DIR] — copies the pinned libsodium-wrappers ESM build into
# static/assets/vendor/ (or OUT_DIR), the only third-party code the dashboard
# ships. Reproducible: the npm tarballs are checked against the SHA-256 sums
# below before anything is copied, and the one edit (the bare "libsodium"
# import becomes a relative one, since the page has no import map: CSP forbids
# inline scripts) is a fixed sed. SHA256SUMS records the output; the Go test
# web/assets_test.go fails when the committed files differ from it, and (with
# npm present, always under CI=true) when they differ from a fresh run.
set -euo pipefail

VERSION=0.8.4
SUM_LIBSODIUM=ff817a39d4664e2aef5b15fcbe729e9a4060d931929b03af624cc8a5588625eb
SUM_WRAPPERS=858ad2910255d9b6c3527d6b7e8bcfcd98917a495ad2c97775bf2bfede13dfaf

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/static/assets/vendor}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent --loglevel=error "libsodium@$VERSION" "libsodium-wrappers@$VERSION" >/dev/null)
echo "$SUM_LIBSODIUM  libsodium-$VERSION.tgz" >"$tmp/want"
echo "$SUM_WRAPPERS  libsodium-wrappers-$VERSION.tgz" >>"$tmp/want"
(cd "$tmp" && sha256sum --quiet -c want) || { echo "vendor.sh: npm tarball checksum mismatch" >&2; exit 1; }

mkdir -p "$tmp/l" "$tmp/w" "$out"
tar xzf "$tmp/libsodium-$VERSION.tgz" -C "$tmp/l"
tar xzf "$tmp/libsodium-wrappers-$VERSION.tgz" -C "$tmp/w"

cp "$tmp/l/package/dist/modules-esm/libsodium.mjs" "$out/libsodium.mjs"
sed 's#from"libsodium"#from"./libsodium.mjs"#' "$tmp/w/package/dist/modules-esm/libsodium-wrappers.mjs" >"$out/libsodium-wrappers.mjs"
grep -q 'from"./libsodium.mjs"' "$out/libsodium-wrappers.mjs" || { echo "vendor.sh: import rewrite failed" >&2; exit 1; }
{
	echo "libsodium.js $VERSION (libsodium, libsodium-wrappers), ISC license:"
	echo
	cat "$tmp/w/package/LICENSE"
} >"$out/LICENSE"
(cd "$out" && sha256sum LICENSE libsodium.mjs libsodium-wrappers.mjs >SHA256SUMS)
