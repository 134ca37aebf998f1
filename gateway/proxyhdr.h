/*
 * The PROXY protocol on a listener with proxy_protocol = yes (DESIGN.md
 * section 7): the session's first state, SESS_PROXY, reads the header a
 * balancer puts in front of the client's bytes (proto/proxyproto.h) and
 * makes its source address the session's client for everything after it:
 * the per-source admission (admit.h), access rules, the login throttle
 * and the log. Only gateway.proxy_from sources may send one; a connection
 * from elsewhere, or without a valid header within handshake_timeout, is
 * refused (admit_refuse_proxy). A LOCAL command (a balancer's health
 * check) is answered by closing.
 *
 * The header is read alone: the socket is peeked and only the header's
 * bytes are taken off it, so what the client sent behind it (a SOCKS5
 * greeting, a TLS ClientHello, a Convert message) is still in the socket
 * for the front end, whichever segment it came in.
 */
#ifndef MPGW_PROXYHDR_H
#define MPGW_PROXYHDR_H

#include <stdbool.h>
#include <sys/socket.h>

struct gw_conf;
struct session;

/*
 * At accept on a PROXY listener: may peer (the balancer) send a header
 * under c? If not, the refusal is counted and logged (now: the loop's
 * time) and the caller closes the connection.
 */
bool proxyhdr_sender_ok(const struct gw_conf *c, const struct sockaddr *peer,
    double now);

/*
 * SESS_PROXY: read what has arrived of the header. As front_ops.step: 1
 * when the session moved on (admitted: sess_admitted()), 0 when it waits
 * for more, -1 when it was closed (refused, a health check, an error).
 */
int proxyhdr_step(struct session *s);

/* The session timer fired in SESS_PROXY: refuse and close s. */
void proxyhdr_timeout(struct session *s);

#endif
