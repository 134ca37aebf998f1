/*
 * The client shim's configuration: a small INI file with one [shim]
 * section, overridden by MPGW_* environment variables (DESIGN.md section 5).
 *
 * Pure code: no hooks, no global state, no stdio. The shim, mpgw-run (which
 * checks a config before exec) and the unit tests all compile this file.
 */
#ifndef MPGW_SHIMCONF_H
#define MPGW_SHIMCONF_H

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SHIM_KEY_LEN 32
#define SHIM_PATH_MAX 1024
#define SHIM_NAME_MAX 256

enum shim_mode {
	SHIM_MODE_EXPLICIT = 0,
	SHIM_MODE_IMPLICIT,
};

enum shim_method {
	SHIM_METHOD_NONE = 0,
	SHIM_METHOD_USERPASS,
	SHIM_METHOD_TLS_LOGIN,
};

/* An address block: family AF_INET or AF_INET6, addr in network order. */
struct shim_net {
	int family;
	uint8_t addr[16];
	unsigned prefix;
};

struct shim_conf {
	enum shim_mode mode;
	enum shim_method method;
	char gw_host[SHIM_NAME_MAX];	/* as written, without brackets */
	uint16_t gw_port;
	struct sockaddr_storage gw;	/* filled by shim_conf_resolve */
	socklen_t gw_len;
	char user[SHIM_NAME_MAX];
	char password[SHIM_NAME_MAX];
	uint8_t key[SHIM_KEY_LEN];
	bool has_key;
	char ca[SHIM_PATH_MAX];
	char servername[SHIM_NAME_MAX];	/* TLS host name check, optional */
	bool remote_dns;
	bool mptcp;
	bool silent;			/* implicit: ask for no success reply */
	/*
	 * implicit: SYN data without a Fast Open cookie; only for a gateway
	 * whose Convert listener has convert.tfo_no_cookie (else the kernel
	 * takes the cookie on the first connection and uses it after).
	 */
	bool tfo_no_cookie;
	bool debug;
	struct shim_net fake4;
	struct shim_net fake6;
	unsigned timeout_ms;
	char dns_table[SHIM_PATH_MAX];	/* "" = the per-user default */
};

typedef int shim_gai_fn(const char *, const char *, const struct addrinfo *,
    struct addrinfo **);
typedef void shim_fai_fn(struct addrinfo *);

/* Defaults: explicit, none, 127.0.0.1:1080, 198.18.0.0/15, fc00::/18,
 * 10 s, silent on, everything else off. */
void shim_conf_defaults(struct shim_conf *c);

/*
 * Sets one [shim] key (also used for the environment). 0, or -1 with a
 * message in err ("unknown key", "bad value ...").
 */
int shim_conf_set(struct shim_conf *c, const char *key, const char *val,
    char *err, size_t errlen);

/*
 * Parses INI text: "[shim]" then "key = value" lines; ';' or '#' starts a
 * comment at the beginning of a line or after white space. Errors name
 * "file:line". 0 or -1.
 */
int shim_conf_parse(struct shim_conf *c, const char *text, size_t len,
    const char *fname, char *err, size_t errlen);

/* Reads path (at most 64 KiB) with open/read and parses it. 0 or -1. */
int shim_conf_load(struct shim_conf *c, const char *path, char *err,
    size_t errlen);

/* Applies MPGW_GATEWAY, MPGW_MODE, ... MPGW_DEBUG from the environment. */
int shim_conf_env(struct shim_conf *c, char *err, size_t errlen);

/*
 * Checks the whole (implicit mode needs a user and a key, userpass and
 * tls-login need a user) and resolves gw_host with gai (a numeric host
 * needs no call). 0 or -1.
 */
int shim_conf_finish(struct shim_conf *c, shim_gai_fn *gai, shim_fai_fn *fai,
    char *err, size_t errlen);

/* "a.b.c.d/n" or "v6/n" (a bare address is a host block). 0 or -1. */
int shim_parse_net(const char *s, struct shim_net *n);
/* Whether sa (AF_INET or AF_INET6, not v4-mapped) lies inside n. */
bool shim_net_contains(const struct shim_net *n, const struct sockaddr *sa);
/* Standard base64 (padding optional) into out: byte count or -1. */
long shim_b64_decode(const char *s, uint8_t *out, size_t cap);

#endif
