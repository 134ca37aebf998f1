#!/bin/sh
# Install whichever of the named Debian packages are missing. Needs root
# (or nothing to do); prints what it installs.
missing=""
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "mpgw: missing Debian packages:$missing (run as root, or apt-get install them)" >&2
	exit 1
fi
echo "mpgw: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || exit 1
apt-get install -y -qq --no-install-recommends $missing >/dev/null || exit 1
