/*
 * SOCKS Protocol Version 5 (RFC 1928) and its username/password
 * sub-negotiation (RFC 1929): a pure codec over byte buffers, shared by the
 * gateway (server side) and the client shim and load generator (client side).
 *
 * No sockets, no libev, no malloc. Every parser takes (buf, len) of what has
 * arrived so far and returns SOCKS5_AGAIN until a whole message is there,
 * then SOCKS5_OK with *used set to the bytes it consumed (anything after them
 * belongs to the next message), or SOCKS5_BAD for input that can never
 * become valid. Feeding one byte at a time gives the same answers as feeding
 * it all at once.
 */
#ifndef MPGW_SOCKS5_H
#define MPGW_SOCKS5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SOCKS5_VERSION 0x05
#define SOCKS5_USERPASS_VERSION 0x01
/* Largest message the codec ever writes or needs to see. */
#define SOCKS5_MSG_MAX 513
/* A reply with an IPv6 BND.ADDR: VER REP RSV ATYP 16 2. */
#define SOCKS5_REPLY_MAX 22
/* UDP request headers: a one-byte domain, and a 255-byte one. */
#define SOCKS5_UDP_HDR_MIN 8
#define SOCKS5_UDP_HDR_MAX 262

enum socks5_res {
	SOCKS5_OK = 0,
	SOCKS5_AGAIN,
	SOCKS5_BAD,
};

/* Method codes (IANA "SOCKS Methods"; 0x80-0x83 per DESIGN.md section 3). */
enum socks5_method {
	SOCKS5_METHOD_NONE = 0x00,
	SOCKS5_METHOD_GSSAPI = 0x01,
	SOCKS5_METHOD_USERPASS = 0x02,
	SOCKS5_METHOD_TLS = 0x80,
	SOCKS5_METHOD_TLS_USERPASS = 0x82,
	SOCKS5_METHOD_TLS_LOGIN = 0x83,
	SOCKS5_METHOD_UNACCEPTABLE = 0xff,
};

enum socks5_cmd {
	SOCKS5_CMD_CONNECT = 0x01,
	SOCKS5_CMD_BIND = 0x02,
	SOCKS5_CMD_UDP_ASSOCIATE = 0x03,
};

enum socks5_atyp {
	SOCKS5_ATYP_IPV4 = 0x01,
	SOCKS5_ATYP_DOMAIN = 0x03,
	SOCKS5_ATYP_IPV6 = 0x04,
};

enum socks5_rep {
	SOCKS5_REP_SUCCEEDED = 0x00,
	SOCKS5_REP_GENERAL_FAILURE = 0x01,
	SOCKS5_REP_NOT_ALLOWED = 0x02,
	SOCKS5_REP_NET_UNREACHABLE = 0x03,
	SOCKS5_REP_HOST_UNREACHABLE = 0x04,
	SOCKS5_REP_REFUSED = 0x05,
	SOCKS5_REP_TTL_EXPIRED = 0x06,
	SOCKS5_REP_CMD_UNSUPPORTED = 0x07,
	SOCKS5_REP_ATYP_UNSUPPORTED = 0x08,
};

/* A SOCKS address: IPv4, IPv6 or a domain name (NUL-terminated, 1..255). */
struct socks5_addr {
	uint8_t atyp;		/* enum socks5_atyp */
	uint8_t name_len;	/* domain only */
	uint16_t port;		/* host byte order */
	union {
		uint8_t v4[4];
		uint8_t v6[16];
		char name[256];
	} u;
};

struct socks5_greeting {
	uint8_t nmethods;
	uint8_t methods[255];
};

struct socks5_userpass {
	uint8_t ulen;
	uint8_t plen;
	char user[256];		/* NUL-terminated */
	char pass[256];		/* NUL-terminated */
};

struct socks5_request {
	uint8_t cmd;		/* any value: the caller answers 07 to unknown ones */
	struct socks5_addr dst;
};

/* The header in front of every relayed datagram (RFC 1928 section 7). */
struct socks5_udp_hdr {
	uint8_t frag;		/* 0: a whole datagram; the gateway drops others */
	struct socks5_addr addr; /* client to relay: DST; relay to client: source */
};

/* --- server side: parse what a client sends --------------------------- */

/* VER NMETHODS METHODS...; VER != 5 or NMETHODS == 0 is BAD. */
enum socks5_res socks5_parse_greeting(const uint8_t *buf, size_t len,
    struct socks5_greeting *g, size_t *used);
bool socks5_greeting_offers(const struct socks5_greeting *g, uint8_t method);

/* RFC 1929 VER ULEN UNAME PLEN PASSWD; VER != 1 or ULEN == 0 is BAD.
 * A name or password with a NUL byte in it is BAD. */
enum socks5_res socks5_parse_userpass(const uint8_t *buf, size_t len,
    struct socks5_userpass *up, size_t *used);

/*
 * VER CMD RSV ATYP DST.ADDR DST.PORT. On SOCKS5_BAD, *rep says which reply
 * the server sends before closing: ATYP_UNSUPPORTED for an unknown ATYP,
 * GENERAL_FAILURE for a bad VER, a non-zero RSV, or a domain that is empty
 * or holds a NUL byte.
 */
enum socks5_res socks5_parse_request(const uint8_t *buf, size_t len,
    struct socks5_request *req, size_t *used, uint8_t *rep);

/* --- server side: write replies; each returns the bytes written ------- */

size_t socks5_write_method(uint8_t out[2], uint8_t method);
size_t socks5_write_userpass_status(uint8_t out[2], uint8_t status);
/*
 * VER REP RSV ATYP BND.ADDR BND.PORT with BND from an AF_INET or AF_INET6
 * sockaddr (a v4-mapped IPv6 address is written as IPv4); bnd == NULL or
 * another family writes 0.0.0.0:0. out must hold SOCKS5_REPLY_MAX bytes.
 */
size_t socks5_write_reply(uint8_t *out, uint8_t rep,
    const struct sockaddr *bnd);

/* --- client side ------------------------------------------------------ */

/* Returns 0 if the message does not fit in cap (or n == 0, n > 255). */
size_t socks5_write_greeting(uint8_t *out, size_t cap, const uint8_t *methods,
    size_t n);
/* Returns 0 if user is empty, either is longer than 255, or cap too small. */
size_t socks5_write_userpass(uint8_t *out, size_t cap, const char *user,
    const char *pass);
size_t socks5_write_request(uint8_t *out, size_t cap, uint8_t cmd,
    const struct socks5_addr *dst);
/* VER METHOD: VER != 5 is BAD. */
enum socks5_res socks5_parse_method(const uint8_t *buf, size_t len,
    uint8_t *method, size_t *used);
/* VER STATUS: VER != 1 is BAD. */
enum socks5_res socks5_parse_userpass_status(const uint8_t *buf, size_t len,
    uint8_t *status, size_t *used);
/* VER REP RSV ATYP BND.ADDR BND.PORT: VER != 5 or unknown ATYP is BAD.
 * RSV is not checked and a domain BND.ADDR is taken as sent, even empty
 * (Dante echoes an empty one with REP 04). */
enum socks5_res socks5_parse_reply(const uint8_t *buf, size_t len,
    uint8_t *rep, struct socks5_addr *bnd, size_t *used);

/* --- UDP ASSOCIATE datagrams, both directions --------------------------- */

/*
 * RSV FRAG ATYP ADDR PORT at the start of one whole datagram buf[0..len).
 * On OK fills *h and sets *used to the header's length: the payload is
 * buf[*used..len), possibly empty. SOCKS5_AGAIN means the datagram ends
 * inside the header; nothing more will arrive for it, so the caller treats
 * AGAIN as BAD. BAD: an unknown ATYP, or a domain that is empty or holds a
 * NUL. RSV is not checked (Dante's relay ignores it too) and FRAG is
 * reported, not judged: the gateway drops FRAG != 0 and counts it.
 */
enum socks5_res socks5_parse_udp_hdr(const uint8_t *buf, size_t len,
    struct socks5_udp_hdr *h, size_t *used);
/*
 * Writes RSV (zero) FRAG ATYP ADDR PORT for a into out (cap bytes): the
 * header in front of a payload. Returns the bytes written (at most
 * SOCKS5_UDP_HDR_MAX), or 0 for an unknown ATYP, an empty name or one with
 * a NUL, or cap too short.
 */
size_t socks5_write_udp_hdr(uint8_t *out, size_t cap, uint8_t frag,
    const struct socks5_addr *a);
/*
 * The same with FRAG 0 and the address and port of an AF_INET or AF_INET6
 * sockaddr (a v4-mapped address as IPv4): what the relay puts in front of
 * a datagram that came from sa. 0 for another family or cap too short.
 */
size_t socks5_write_udp_hdr_sa(uint8_t *out, size_t cap,
    const struct sockaddr *sa);

/* --- addresses and codes ---------------------------------------------- */

/* From an AF_INET/AF_INET6 sockaddr (v4-mapped becomes IPv4): 0 or -1. */
int socks5_addr_from_sockaddr(struct socks5_addr *a, const struct sockaddr *sa);
/* To a sockaddr for an IPv4/IPv6 address; -1 for a domain. */
int socks5_addr_to_sockaddr(const struct socks5_addr *a,
    struct sockaddr_storage *ss, socklen_t *sslen);
/* "1.2.3.4:80", "[::1]:80" or "name:80" into out (always NUL-terminated
 * when cap > 0); name bytes outside printable ASCII come out as '?'. */
void socks5_addr_format(const struct socks5_addr *a, char *out, size_t cap);

/*
 * Split "host:port" or "[v6]:port" (the MPGW_GATEWAY form; host may be a
 * name) into host (NUL-terminated, hostcap bytes) and a port 1..65535.
 * An unbracketed IPv6 address is refused. 0 or -1.
 */
int socks5_parse_hostport(const char *s, char *host, size_t hostcap,
    uint16_t *port);

/* DESIGN.md section 2: errno of a failed upstream connect -> REP. */
uint8_t socks5_rep_from_errno(int err);
/* The client shim's mapping back: REP -> errno for connect(). */
int socks5_errno_from_rep(uint8_t rep);
/* A method's name ("none", "userpass", "tls", "tls-userpass", "tls-login",
 * also "gssapi" and "unacceptable"); "unknown" for other codes. */
const char *socks5_method_name(uint8_t method);
/* The code of a method the gateway offers, by name; -1 for any other. */
int socks5_method_parse(const char *s);
/* Human-readable REP name ("connection refused"); never NULL. */
const char *socks5_rep_str(uint8_t rep);

#endif
