/*
 * BIND (RFC 1928 section 4): the client asks the gateway to accept one
 * connection for it, typically the data connection a server opens back
 * (FTP active mode).
 *
 * The listening socket is bound on the gateway's external address towards
 * DST.ADDR: the source address the kernel's route to it picks (a UDP
 * socket connected to DST.ADDR and asked with getsockname; no packet is
 * sent), port 0. A DST.ADDR of zeros (0.0.0.0, ::) names no peer: the
 * listener is bound on the address the control connection arrived on.
 * The first reply carries the listener's address and port. The first
 * connection from DST.ADDR (any port: a server's data connection seldom
 * comes from the port the client knows) is taken; connections from any
 * other address are closed with an RST and counted, and the wait goes on.
 * With a zero DST.ADDR any peer the access rules allow is taken. The
 * second reply carries the peer's address and port; then the connection
 * is relayed exactly as a CONNECT's.
 *
 * Rules with command = bind apply to DST.ADDR (and to the peer when it
 * is zero). A name in DST.ADDR is resolved first (the worker's resolver)
 * and its first address used. No peer within bind_timeout: the second
 * reply is 06 (TTL expired, as for a connect that timed out). Through a
 * concentrator (upstream.via) BIND is not offered: 07.
 */
#ifndef MPGW_BIND_H
#define MPGW_BIND_H

#include <stddef.h>

struct session;

/*
 * The SOCKS5 request is BIND: resolve, check, listen and send the first
 * reply (-> SESS_BIND_WAIT), or fail the session. The caller runs
 * sess_process().
 */
void bind_request(struct session *s);
/* The session timer fired in SESS_BIND_WAIT: the second reply is 06. */
void bind_timer(struct session *s);
/* The access log's BIND fields (" command=bind wrong_peers=N") into buf. */
const char *bind_access(const struct session *s, char *buf, size_t cap);
/* Stop listening and free (NULL-safe). */
void bind_free(struct session *s);

#endif
