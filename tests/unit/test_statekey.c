/*
 * The shared state's key names: fixed vectors (computed independently
 * with Python's hashlib, so every instance, whatever its build, agrees),
 * what changes a replay key and what does not, and the source part of the
 * throttle's keys grouped as the in-process throttle groups sources.
 */
#include "auth/statekey.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

static const uint8_t nonce0[AUTH_STATEKEY_NONCE_LEN] = { 0, 1, 2, 3, 4, 5,
	6, 7, 8, 9, 10, 11 };

static struct sockaddr_storage
addr(const char *s)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	else
		cr_assert_fail("bad address %s in test", s);
	return ss;
}

static const char *
fail_key(const char *a, char out[AUTH_STATEKEY_MAX])
{
	struct sockaddr_storage ss = addr(a);

	cr_assert_neq(auth_statekey_fail(out, (struct sockaddr *)&ss), 0);
	return out;
}

TestSuite(statekey, .timeout = 10);

Test(statekey, replay_vector)
{
	char k[AUTH_STATEKEY_MAX];

	/* hashlib.sha256(b"mpgw-replay-1\0" + bytes(range(12)) + b"alice") */
	cr_assert_eq(auth_statekey_replay(k, "alice", nonce0), 44);
	cr_expect_str_eq(k, "mpgw:replay:90739768fde25f04718d984c60da5b5f");
}

Test(statekey, replay_depends_on_user_and_nonce)
{
	char a[AUTH_STATEKEY_MAX], b[AUTH_STATEKEY_MAX];
	uint8_t n1[AUTH_STATEKEY_NONCE_LEN];

	memcpy(n1, nonce0, sizeof(n1));
	n1[11] ^= 1;
	auth_statekey_replay(a, "alice", nonce0);
	auth_statekey_replay(b, "alice", n1);
	cr_expect_str_neq(a, b);
	auth_statekey_replay(b, "alicf", nonce0);
	cr_expect_str_neq(a, b);
	/* Same input, same key: what every instance relies on. */
	auth_statekey_replay(b, "alice", nonce0);
	cr_expect_str_eq(a, b);
	/* The name is not in the key. */
	cr_expect_null(strstr(a, "alice"));
}

Test(statekey, user_vector)
{
	char k[AUTH_STATEKEY_MAX];

	/* hashlib.sha256(b"mpgw-user-1\0" + b"alice").hexdigest()[:16] */
	cr_assert_eq(auth_statekey_user(k, "alice"), 18);
	cr_expect_str_eq(k, "u:989dfc73074680a6");
}

Test(statekey, longest_user_fits)
{
	char user[256], k[AUTH_STATEKEY_MAX];

	memset(user, 'x', 255);
	user[255] = '\0';
	cr_expect_eq(auth_statekey_replay(k, user, nonce0), 44);
	cr_expect_eq(auth_statekey_user(k, user), 18);
}

Test(statekey, ipv4_source)
{
	char k[AUTH_STATEKEY_MAX];
	struct sockaddr_storage ss = addr("192.0.2.7");

	cr_expect_str_eq(fail_key("192.0.2.7", k), "mpgw:fail:192.0.2.7");
	cr_assert_neq(auth_statekey_block(k, (struct sockaddr *)&ss), 0);
	cr_expect_str_eq(k, "mpgw:block:192.0.2.7");
}

Test(statekey, mapped_is_ipv4)
{
	char k[AUTH_STATEKEY_MAX];

	cr_expect_str_eq(fail_key("::ffff:192.0.2.7", k),
	    "mpgw:fail:192.0.2.7");
}

Test(statekey, ipv6_grouped_by_64)
{
	char a[AUTH_STATEKEY_MAX], b[AUTH_STATEKEY_MAX];

	cr_expect_str_eq(fail_key("2001:db8:1:2:aaaa::1", a),
	    "mpgw:fail:2001:db8:1:2::/64");
	cr_expect_str_eq(fail_key("2001:db8:1:2:ffff:ffff:ffff:ffff", b), a);
	cr_expect_str_eq(fail_key("2001:db8:1:3::1", b),
	    "mpgw:fail:2001:db8:1:3::/64");
	/* The longest there is still fits. */
	cr_expect_str_eq(fail_key("ffff:ffff:ffff:ffff::", b),
	    "mpgw:fail:ffff:ffff:ffff:ffff::/64");
}

Test(statekey, other_family_has_no_source)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char k[AUTH_STATEKEY_MAX];

	cr_expect_eq(auth_statekey_fail(k, (struct sockaddr *)&sun), 0);
	cr_expect_eq(auth_statekey_block(k, (struct sockaddr *)&sun), 0);
}
