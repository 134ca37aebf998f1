/*
 * UDP ASSOCIATE (RFC 1928 section 7, DESIGN.md section 6): a session whose
 * control connection carries no bytes once replied to, and an association
 * that relays datagrams for as long as that connection lives (or until
 * udp_idle_timeout passes without a datagram).
 *
 * An association has a client side and an upstream side, each either
 * datagrams or a stream of frames (proto/convert.h: len(16) | SOCKS5 UDP
 * header | payload, DESIGN.md section 6):
 *
 *   SOCKS5, direct     client UDP socket  <->  our own UDP sockets
 *   SOCKS5, with via   client UDP socket  <->  frames on the MPTCP
 *                                              connection to the concentrator
 *   Convert UDP TLV    frames on the client's   <->  our own UDP sockets
 *   (the concentrator) Convert connection            (or frames again, via)
 *
 * The client UDP socket is bound on the address the control connection
 * arrived on (getsockname of the client socket), port 0; the reply's BND is
 * that address, or [socks5] udp_public_address of the same family, with
 * the socket's port. Datagrams are taken only from the control
 * connection's client IP; the port is the request's DST.PORT when it is not
 * 0, else the source port of the first datagram from that IP (most clients
 * ask with 0.0.0.0:0). DST.ADDR is not compared: a client behind NAT cannot
 * know its public address. Datagrams from elsewhere, with FRAG != 0 or a
 * malformed header are dropped and counted.
 *
 * Outgoing datagrams leave from one unbound UDP socket per family (the
 * kernel's route picks the source address), created on first use. Replies
 * are taken only from an address and port the client has sent to (RFC 4787
 * "address and port-dependent filtering", what a strict NAT does), from a
 * table of UDP_DESTS recent destinations that also caches each one's
 * access-rule verdict (command udp; the built-in protection of loopback and
 * the gateway's own addresses included), so the rules and the kernel's
 * route lookup run once per destination, not per datagram. Names are
 * resolved with the worker's resolver and cached per association
 * (UDP_NAMES names, UDP_NAME_TTL seconds); datagrams waiting for a name are
 * held in a bounded queue, and dropped if it does not resolve.
 *
 * I/O is batched: recvmmsg and sendmmsg over per-worker buffers (UDP_BATCH
 * slots of 64 KiB, allocated on the worker's first association), and one
 * sendmsg for all the frames of a batch. No allocation per datagram. A
 * stream side's buffers are the association's own: frames waiting to be
 * read whole (80 KiB), and frames its connection has not taken yet (up to
 * 128 KiB, allocated when it first fills: a fresh MPTCP connection's send
 * buffer is small). While frames wait, the datagram side feeding them is
 * not read (its socket buffer, then the kernel, drop what comes); a
 * datagram that does not fit is dropped and counted as congested: these
 * are datagrams, not a byte stream.
 *
 * Everything runs on the session's worker thread.
 */
#ifndef MPGW_UDP_H
#define MPGW_UDP_H

#include <stddef.h>
#include <stdint.h>

struct session;
struct worker;

/*
 * The SOCKS5 request is UDP ASSOCIATE: check the limit and the rules, open
 * the client socket, then reply (direct) or dial the concentrator first
 * (upstream.via). On failure the session is failed (sess_fail); the caller
 * runs sess_process().
 */
void udp_request(struct session *s);
/*
 * A Convert message with the UDP TLV (consumed from s->in; what follows it
 * is the first frames): as udp_request() for the concentrator's side.
 */
void udp_convert(struct session *s);
/* sess_dialed(): the via connection (s->ufd) is up: reply with BND. */
void udp_dialed(struct session *s);
/* sess_start_relay(): the success reply is out: -> SESS_UDP. */
void udp_start(struct session *s);
/* The session timer fired in SESS_UDP: idle check. */
void udp_timer(struct session *s);
/*
 * At the end: the access log's UDP fields (" command=udp dgrams_up=..."),
 * written into buf (cap bytes), and the payload bytes each way into *up
 * and *down. Datagrams still waiting for a name count as dropped
 * (unresolved). Returns buf.
 */
const char *udp_access(struct session *s, char *buf, size_t cap,
    uint64_t *up, uint64_t *down);
/* Stop and free s's association (NULL-safe); the session's fds stay. */
void udp_free(struct session *s);
/* Free w's datagram buffers (at worker exit). */
void udp_worker_free(struct worker *w);

#endif
