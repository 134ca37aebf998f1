#include "auth/tls.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth/linefile.h"

const char *
auth_tls_error(char *buf, size_t cap)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, cap, "unknown TLS error");
	else
		ERR_error_string_n(e, buf, cap);
	ERR_clear_error();
	return buf;
}

/*
 * Session ticket keys: the current one seals new tickets, the previous
 * one still opens them (such a ticket is renewed). A key is made when the
 * current one is older than TLS_TICKET_ROTATE, so a ticket is good for
 * between one and two periods. The keys are random, in memory only, and
 * shared by every context the process builds, so a SIGHUP reload keeps
 * resumption working; they die with the process.
 */
#define TLS_TICKET_ROTATE 3600

struct tls_ticket_key {
	unsigned char name[16];
	unsigned char aes[32];
	unsigned char hmac[32];
	time_t born;		/* 0: not made yet */
};

static pthread_mutex_t tk_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tls_ticket_key tk_ring[2];	/* current, previous */
/* Fetched once: OpenSSL 3 looks an implicit EVP_aes_256_cbc() up per use. */
static EVP_CIPHER *tk_cipher;
static pthread_once_t tk_once = PTHREAD_ONCE_INIT;

static void
tls_ticket_fetch(void)
{
	tk_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
}

/* Copy the current key into k, making a new one if it is due. 0 or -1. */
static int
tls_ticket_current(struct tls_ticket_key *k, time_t now)
{
	struct tls_ticket_key fresh;
	int rc = 0;

	pthread_mutex_lock(&tk_mu);
	if (tk_ring[0].born == 0 || now - tk_ring[0].born >= TLS_TICKET_ROTATE) {
		if (RAND_bytes(fresh.name, sizeof(fresh.name)) != 1 ||
		    RAND_priv_bytes(fresh.aes, sizeof(fresh.aes)) != 1 ||
		    RAND_priv_bytes(fresh.hmac, sizeof(fresh.hmac)) != 1)
			rc = -1;
		else {
			fresh.born = now;
			OPENSSL_cleanse(&tk_ring[1], sizeof(tk_ring[1]));
			tk_ring[1] = tk_ring[0];
			tk_ring[0] = fresh;
		}
		OPENSSL_cleanse(&fresh, sizeof(fresh));
	}
	if (rc == 0)
		*k = tk_ring[0];
	pthread_mutex_unlock(&tk_mu);
	return rc;
}

/* The key named name, current or previous, into k; false if unknown. */
static bool
tls_ticket_find(const unsigned char name[16], struct tls_ticket_key *k)
{
	bool found = false;

	pthread_mutex_lock(&tk_mu);
	for (int i = 0; i < 2 && !found; i++) {
		if (tk_ring[i].born != 0 &&
		    CRYPTO_memcmp(tk_ring[i].name, name, 16) == 0) {
			*k = tk_ring[i];
			found = true;
		}
	}
	pthread_mutex_unlock(&tk_mu);
	return found;
}

/*
 * OpenSSL's ticket key callback: seal (enc 1) with the current key, open
 * (enc 0) with whichever key the ticket names, 0 meaning a full
 * handshake. A ticket that opens is always answered with a new one (2):
 * a TLS 1.3 client uses a ticket once, so without a new one every other
 * connection of the shim would do a full handshake.
 */
static int
tls_ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv,
    EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct tls_ticket_key k;
	OSSL_PARAM params[3];
	int rc = 1;

	(void)ssl;
	pthread_once(&tk_once, tls_ticket_fetch);
	if (tk_cipher == NULL)
		return -1;
	if (enc) {
		if (tls_ticket_current(&k, time(NULL)) == -1 ||
		    RAND_bytes(iv, EVP_CIPHER_get_iv_length(tk_cipher)) != 1)
			return -1;
		memcpy(name, k.name, sizeof(k.name));
	} else if (!tls_ticket_find(name, &k))
		return 0;
	else
		rc = 2;
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
	    k.hmac, sizeof(k.hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if ((enc ? EVP_EncryptInit_ex(cctx, tk_cipher, NULL, k.aes, iv) :
	    EVP_DecryptInit_ex(cctx, tk_cipher, NULL, k.aes, iv)) != 1 ||
	    EVP_MAC_CTX_set_params(hctx, params) != 1)
		rc = -1;
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

SSL_CTX *
auth_tls_ctx(const struct gw_conf *c, char *err, size_t errlen)
{
	char e[256], why[1024];
	SSL_CTX *ctx;
	int mode;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "TLS: %s", auth_tls_error(e, sizeof(e)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/*
	 * A client's FIN without close_notify is its half-close, as on a
	 * plain relay: the upstream sees EOF either way, and the answer
	 * still in flight must not be thrown away. Renegotiation only costs.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/*
	 * Resumption by stateless tickets (no server-side cache to share
	 * between workers): one ticket per handshake, sealed with keys that
	 * live in this process's memory only and rotate (tls_ticket_cb). A
	 * resumed handshake skips the certificate, its signature and the
	 * client's chain verification; it still runs (EC)DHE, so it keeps
	 * forward secrecy. (psk_ke alone would skip that too, but OpenSSL
	 * 3.0 servers pick psk_dhe_ke whenever a client offers it, and
	 * OpenSSL clients always do.)
	 */
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_timeout(ctx, 2 * TLS_TICKET_ROTATE);
	if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb) != 1)
		goto err_tls;
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_cipher_list(ctx, "HIGH:!aNULL:!eNULL:!MD5:!RC4:!3DES:"
	    "!CAMELLIA:!ARIA:!SHA1:!kRSA") != 1)
		goto err_tls;
	if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1) {
		snprintf(err, errlen, "tls.cert %.256s: %s", c->tls_cert,
		    auth_tls_error(e, sizeof(e)));
		goto err_free;
	}
	if (auth_secret_file_check(c->tls_key, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "tls.key %s", why);
		goto err_free;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) !=
	    1 || SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "tls.key %.256s: %s", c->tls_key,
		    auth_tls_error(e, sizeof(e)));
		goto err_free;
	}
	if (c->tls_client_ca[0] != '\0') {
		STACK_OF(X509_NAME) *names;

		if (SSL_CTX_load_verify_locations(ctx, c->tls_client_ca,
		    NULL) != 1 ||
		    (names = SSL_load_client_CA_file(c->tls_client_ca)) ==
		    NULL) {
			snprintf(err, errlen, "tls.client_ca %.256s: %s",
			    c->tls_client_ca, auth_tls_error(e, sizeof(e)));
			goto err_free;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		mode = SSL_VERIFY_PEER;
		if (c->tls_require_client_cert)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
	}
	return ctx;

err_tls:
	snprintf(err, errlen, "TLS: %s", auth_tls_error(e, sizeof(e)));
err_free:
	SSL_CTX_free(ctx);
	return NULL;
}

bool
auth_tls_peer_user(SSL *ssl, char *out, size_t cap)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	GENERAL_NAMES *sans;
	int n;

	if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return false;
	n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
	    NID_commonName, out, (int)cap);
	if (n > 0 && (size_t)n < cap && strlen(out) == (size_t)n)
		return true;
	sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		const unsigned char *s;
		int len;

		if (g->type != GEN_DNS)
			continue;
		s = ASN1_STRING_get0_data(g->d.dNSName);
		len = ASN1_STRING_length(g->d.dNSName);
		/* An embedded NUL would let a name pose as another. */
		if (len <= 0 || (size_t)len >= cap || memchr(s, 0, (size_t)len))
			continue;
		memcpy(out, s, (size_t)len);
		out[len] = '\0';
		GENERAL_NAMES_free(sans);
		return true;
	}
	GENERAL_NAMES_free(sans);
	return false;
}
