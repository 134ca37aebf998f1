/*
 * TLS contexts for the SOCKS5 TLS methods (0x80, 0x82, 0x83) and the
 * SOCKS5-over-TLS listener: TLS 1.2 minimum, 1.3 preferred, no
 * renegotiation, resumption by session tickets sealed with keys kept in
 * memory only (rotated hourly, shared across reloads), optional
 * client-certificate checks against tls.client_ca. The context is built once per config load and is
 * shared read-only by every worker.
 */
#ifndef MPGW_AUTH_TLS_H
#define MPGW_AUTH_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"

/*
 * Build a server context from tls.cert, tls.key, tls.client_ca and
 * tls.require_client_cert. Returns NULL with a message in err when a file
 * cannot be read or the key does not match the certificate.
 */
SSL_CTX *auth_tls_ctx(const struct gw_conf *c, char *err, size_t errlen);

/*
 * The user a verified client certificate names: its subject CN, else its
 * first DNS SAN. false if the peer sent no certificate or it did not verify.
 */
bool auth_tls_peer_user(SSL *ssl, char *out, size_t cap);

/* A short description of the last OpenSSL error on this thread. */
const char *auth_tls_error(char *buf, size_t cap);

#endif
