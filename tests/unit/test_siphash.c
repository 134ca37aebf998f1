/*
 * lib/siphash: the published SipHash-2-4 vectors (key 00..0f, messages
 * 00..n-1 for n = 0..63; the first two and the last from the paper's
 * appendix), cross-checked against OpenSSL's SIPHASH MAC, and every split
 * of the incremental interface giving the one-call result.
 */
#include "lib/siphash.h"

#include <criterion/criterion.h>

#include <openssl/evp.h>
#include <string.h>

/* The key and messages of the reference vectors. */
static void
ref_input(uint8_t key[SIPHASH_KEY_LEN], uint8_t msg[64])
{
	for (int i = 0; i < SIPHASH_KEY_LEN; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
}

/* The little-endian output bytes as a 64-bit value. */
static uint64_t
le64(const uint8_t *b)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

/* SipHash-2-4 of msg under key by OpenSSL's implementation. */
static uint64_t
openssl_siphash(const uint8_t *key, const uint8_t *msg, size_t len)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	EVP_MAC_CTX *ctx;
	size_t outlen = 8, got = 0;
	OSSL_PARAM params[2] = {
		OSSL_PARAM_construct_size_t("size", &outlen),
		OSSL_PARAM_construct_end(),
	};
	uint8_t out[8];

	cr_assert_not_null(mac, "OpenSSL has no SIPHASH");
	cr_assert_not_null(ctx = EVP_MAC_CTX_new(mac));
	cr_assert_eq(EVP_MAC_init(ctx, key, SIPHASH_KEY_LEN, params), 1);
	cr_assert_eq(EVP_MAC_update(ctx, msg, len), 1);
	cr_assert_eq(EVP_MAC_final(ctx, out, &got, sizeof(out)), 1);
	cr_assert_eq(got, 8);
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return le64(out);
}

Test(siphash, paper_vectors)
{
	uint8_t key[SIPHASH_KEY_LEN], msg[64];

	ref_input(key, msg);
	cr_expect_eq(siphash24(key, msg, 0), 0x726fdb47dd0e0e31ULL);
	cr_expect_eq(siphash24(key, msg, 1), 0x74f839c593dc67fdULL);
	cr_expect_eq(siphash24(key, msg, 63), 0x958a324ceb064572ULL);
}

Test(siphash, agrees_with_openssl)
{
	uint8_t key[SIPHASH_KEY_LEN], msg[64];

	ref_input(key, msg);
	for (size_t n = 0; n < sizeof(msg); n++)
		cr_expect_eq(siphash24(key, msg, n),
		    openssl_siphash(key, msg, n), "length %zu", n);
	/* Another key, longer input. */
	uint8_t k2[SIPHASH_KEY_LEN], m2[300];

	for (size_t i = 0; i < sizeof(k2); i++)
		k2[i] = (uint8_t)(0xf0 ^ i * 37);
	for (size_t i = 0; i < sizeof(m2); i++)
		m2[i] = (uint8_t)(i * 131 + 7);
	for (size_t n = 200; n <= sizeof(m2); n += 7)
		cr_expect_eq(siphash24(k2, m2, n), openssl_siphash(k2, m2, n),
		    "length %zu", n);
}

Test(siphash, every_split_gives_the_same)
{
	uint8_t key[SIPHASH_KEY_LEN], msg[64];
	struct siphash s;

	ref_input(key, msg);
	for (size_t n = 0; n <= 40; n++)
		for (size_t cut = 0; cut <= n; cut++) {
			siphash_init(&s, key);
			siphash_update(&s, msg, cut);
			siphash_update(&s, msg + cut, n - cut);
			cr_expect_eq(siphash_final(&s), siphash24(key, msg, n),
			    "length %zu cut at %zu", n, cut);
		}
	/* One byte at a time. */
	siphash_init(&s, key);
	for (size_t i = 0; i < 64; i++)
		siphash_update(&s, msg + i, 1);
	cr_expect_eq(siphash_final(&s), siphash24(key, msg, 64));
}

Test(siphash, key_matters)
{
	uint8_t key[SIPHASH_KEY_LEN], msg[64];
	uint64_t h;

	ref_input(key, msg);
	h = siphash24(key, msg, 16);
	for (int bit = 0; bit < SIPHASH_KEY_LEN * 8; bit++) {
		key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_expect_neq(siphash24(key, msg, 16), h, "key bit %d", bit);
		key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
}
