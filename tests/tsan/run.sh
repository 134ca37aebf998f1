#!/bin/sh
# Run every ThreadSanitizer harness in DIR (make tsan builds them into
# build-tsan/tsan/). Each prints what it did; a wrong answer exits 1, a
# race report exits with TSAN_OPTIONS' exitcode (66 from make tsan).
# Prints "N passed, N failed" and exits 1 if any failed.
dir=${1:-build-tsan/tsan}
pass=0
fail=0
for t in "$dir"/tsan_*; do
	[ -x "$t" ] || continue
	echo "== $t"
	if "$t"; then
		pass=$((pass + 1))
	else
		rc=$?
		echo "$t: FAILED (exit $rc$([ $rc = 66 ] && echo ': ThreadSanitizer report'))"
		fail=$((fail + 1))
	fi
done
if [ $((pass + fail)) = 0 ]; then
	echo "tsan: no harness in $dir"
	exit 1
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
