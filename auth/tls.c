#include "auth/tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

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
	/* Nothing here resumes sessions; renegotiation only costs. */
	/*
	 * A client's FIN without close_notify is its half-close, as on a
	 * plain relay: the upstream sees EOF either way, and the answer
	 * still in flight must not be thrown away.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET |
	    SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
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
