/*
 * Reaching a session's target (s->req.dst): a name is resolved by the
 * worker's resolver (resolve.c: /etc/hosts and numeric names at once, DNS
 * on the loop, upstream.dns_per_source per client), then connection attempts
 * run Happy Eyeballs style (RFC 8305: 250 ms stagger, families interleaved)
 * over MPTCP sockets with TCP fallback. Every candidate address is checked
 * against the access rules before it is dialled. The dial ends in
 * sess_dialed() or sess_fail(); the caller then runs sess_process().
 */
#ifndef MPGW_DIAL_H
#define MPGW_DIAL_H

struct session;

/* Start: -> SESS_RESOLVE or SESS_CONNECT (or failed, -> SESS_CLOSING). */
void dial_start(struct session *s);
/* Stop whatever is in flight and free the dial (NULL-safe). */
void dial_free(struct session *s);

#endif
