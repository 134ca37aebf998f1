#!/bin/sh
# The layering check (DESIGN.md section 1): every #include of ours must
# point down the stack
#
#	lib <- proto <- conf <- auth <- gateway
#	lib <- proto <- client-shim
#
# so lib/ includes only lib/, proto/ only lib/ and proto/, and so on; the
# shim never sees conf/, auth/ or gateway/, and the gateway never sees the
# shim. Includes are read as the compiler does with -I. at the top: a
# quoted path without a directory, or one starting with ./ or ../, is
# relative to the including file. Angle-bracket includes that name one of
# our folders are checked too.
#
#	sh tests/layering.sh [TOP]	(TOP defaults to .)
#
# Prints "file:line: ..." for each include that points up and exits 1 if
# there is one, 2 on a usage error, 0 otherwise.
top=${1:-.}
if [ ! -d "$top" ]; then
	echo "layering.sh: $top: not a directory" >&2
	exit 2
fi
cd "$top" || exit 2

files=$(find lib proto conf auth gateway client-shim \
	\( -name '*.c' -o -name '*.h' \) -type f 2>/dev/null | LC_ALL=C sort)
[ -z "$files" ] && { echo "layering: no sources under $top"; exit 0; }

# shellcheck disable=SC2086
LC_ALL=C awk '
BEGIN {
	ok["lib"] = " lib "
	ok["proto"] = " lib proto "
	ok["conf"] = " lib proto conf "
	ok["auth"] = " lib proto conf auth "
	ok["gateway"] = " lib proto conf auth gateway "
	ok["client-shim"] = " lib proto client-shim "
	bad = 0
}
# Resolve a path relative to dir, dropping "." and folding "..".
function resolve(dir, p,    n, i, part, out, k, res) {
	n = split(dir "/" p, part, "/")
	k = 0
	for (i = 1; i <= n; i++) {
		if (part[i] == "" || part[i] == ".")
			continue
		if (part[i] == "..") {
			if (k > 0)
				k--
			else
				out[++k] = ".."
			continue
		}
		out[++k] = part[i]
	}
	res = ""
	for (i = 1; i <= k; i++)
		res = res (i > 1 ? "/" : "") out[i]
	return res
}
/^[ \t]*#[ \t]*include[ \t]*["<]/ {
	line = $0
	sub(/^[ \t]*#[ \t]*include[ \t]*/, "", line)
	quoted = substr(line, 1, 1) == "\""
	path = substr(line, 2)
	end = index(path, quoted ? "\"" : ">")
	if (end == 0)
		next
	path = substr(path, 1, end - 1)
	from = FILENAME
	sub(/\/.*/, "", from)
	dir = FILENAME
	sub(/\/[^\/]*$/, "", dir)
	if (quoted && (path !~ /\// || path ~ /^\.\.?\//))
		target = resolve(dir, path)
	else
		target = path
	to = target
	sub(/\/.*/, "", to)
	if (!(to in ok))
		next	# not ours (a system header)
	if (index(ok[from], " " to " ") == 0) {
		allowed = ok[from]
		gsub(/^ | $/, "", allowed)
		gsub(/ /, "/, ", allowed)
		printf "%s:%d: %s/ includes %s/ (\"%s\"); %s/ may include " \
		    "only %s/\n", FILENAME, FNR, from, to, path, from, allowed
		bad++
	}
}
END {
	if (bad > 0) {
		printf "layering: %d include(s) point up\n", bad
		exit 1
	}
}' $files || exit 1
echo "layering: every include points down"
