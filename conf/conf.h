/*
 * The configuration: one INI file read with inih into a struct gw_conf.
 * Every key has a default, a type and a range; an unknown section or key, or
 * a bad value, is an error naming file:line. After conf_load() returns, the
 * struct is read-only; SIGHUP builds a new one and swaps it in only if it
 * loaded cleanly.
 */
#ifndef MPGW_CONF_H
#define MPGW_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#define CONF_MAX_LISTEN 8
#define CONF_MAX_METHODS 8
#define CONF_MAX_RULES 64
#define CONF_MAX_RULE_ITEMS 16
#define CONF_PATH_MAX 512
#define CONF_ERR_MAX 512

struct conf_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[80];		/* as written, e.g. "127.0.0.1:1080" */
};

struct conf_addr_list {
	size_t n;
	struct conf_addr a[CONF_MAX_LISTEN];
};

/*
 * upstream.via = convert://HOST:PORT: the concentrator every upstream
 * connection goes through (DESIGN.md section 5). HOST is an IPv4 address,
 * a bracketed IPv6 address or a name (resolved when the config loads).
 */
struct conf_via {
	bool set;
	char host[256];
	uint16_t port;
	char text[300];		/* as written */
};

/*
 * state.redis = redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]: the Redis the
 * shared state lives in (DESIGN.md section 7). HOST as in upstream.via;
 * PORT defaults to 6379, DB to 0. USER and PASSWORD may be %-encoded.
 */
struct conf_redis {
	bool set;
	char host[256];
	uint16_t port;
	unsigned db;
	char user[128];			/* "" = AUTH with the password alone */
	char password[256];		/* "" = none in the URL */
	char text[300];			/* redis://HOST:PORT/DB, no credentials */
};

/* An address prefix: family AF_INET or AF_INET6, the bits, prefix length. */
struct conf_cidr {
	int family;
	uint8_t addr[16];
	uint8_t plen;
};

enum conf_action {
	CONF_ALLOW = 0,
	CONF_DENY,
};

/*
 * An access rule ([rule.NAME]). Every list that is non-empty must match
 * (any of its items); an empty list matches everything. First match wins.
 */
struct conf_rule {
	char name[64];
	int line;			/* where the section started */
	enum conf_action action;
	size_t n_client;
	struct conf_cidr client[CONF_MAX_RULE_ITEMS];
	size_t n_user;
	char user[CONF_MAX_RULE_ITEMS][64];
	size_t n_dst;
	struct conf_cidr dst[CONF_MAX_RULE_ITEMS];
	size_t n_domain;		/* suffixes, lower case, no leading dot */
	char domain[CONF_MAX_RULE_ITEMS][128];
	size_t n_port;
	uint16_t port_lo[CONF_MAX_RULE_ITEMS];
	uint16_t port_hi[CONF_MAX_RULE_ITEMS];
	uint8_t commands;		/* bit (1 << socks5 cmd); 0 = any */
};

struct gw_conf {
	char path[CONF_PATH_MAX];

	/* [gateway] */
	unsigned workers;		/* 0 = auto: one per core */
	int log_level;			/* enum log_level */
	char access_log[CONF_PATH_MAX];	/* "stderr", "off" or a path */
	unsigned max_sessions;		/* per gateway, 0 = no limit */
	unsigned max_per_source;	/* per client address, 0 = no limit */
	unsigned max_udp_associations;	/* per gateway, 0 = no limit */
	bool allow_open_proxy;		/* listen beyond loopback without auth */
	char user[64];			/* "" = keep running as started */
	char group[64];			/* "" = the user's own groups */
	uid_t uid;			/* user's, resolved at load */
	gid_t gid;			/* group's, else the user's primary group */
	size_t n_proxy_from;		/* who may send a PROXY header */
	struct conf_cidr proxy_from[CONF_MAX_RULE_ITEMS];

	/* [socks5] */
	struct conf_addr_list socks5_listen;
	size_t n_methods;
	uint8_t methods[CONF_MAX_METHODS];	/* enum socks5_method, preference order */
	unsigned handshake_timeout;	/* seconds */
	unsigned idle_timeout;		/* seconds, 0 = none */
	bool early_reply;		/* answer CONNECT before dialling (via) */
	unsigned early_wait_ms;		/* then wait this long for first bytes */
	bool socks5_proxy_protocol;	/* listeners expect a PROXY header */
	/*
	 * UDP ASSOCIATE's BND address for a gateway behind NAT, one per
	 * family (len 0: none; port 0): used instead of the local address
	 * of the control connection when the families agree.
	 */
	struct conf_addr udp_public4;
	struct conf_addr udp_public6;
	unsigned udp_idle_timeout;	/* seconds, 0 = none */
	unsigned bind_timeout;		/* seconds BIND waits for its peer */

	/* [tls] */
	struct conf_addr_list tls_listen;
	char tls_cert[CONF_PATH_MAX];
	char tls_key[CONF_PATH_MAX];
	char tls_client_ca[CONF_PATH_MAX];
	bool tls_require_client_cert;
	bool tls_proxy_protocol;

	/* [auth] */
	char users[CONF_PATH_MAX];
	bool allow_cleartext_password;
	unsigned fail_delay_max;	/* seconds of growing delay, then refusal */
	unsigned fail_limit;		/* failures from one address before refusal */
	unsigned fail_block;		/* seconds a refused address stays refused */
	unsigned auth_cache_ttl;	/* seconds a verified password is remembered */

	/* [convert] */
	struct conf_addr_list convert_listen;
	bool convert_require_auth;
	char convert_keys[CONF_PATH_MAX];
	char convert_cookie[256];
	unsigned convert_max_skew;	/* seconds */
	bool convert_tfo_no_cookie;	/* accept SYN data without a TFO cookie */
	bool convert_proxy_protocol;

	/* [upstream] */
	bool upstream_mptcp;
	unsigned connect_timeout;	/* seconds */
	unsigned dns_per_source;	/* DNS lookups in flight per client
					 * source, 0 = no limit */
	char relay[16];			/* "auto", "buffer" or "splice" */
	unsigned buffer_size;		/* a direction's first buffer, bytes */
	unsigned buffer_max;		/* the most it grows to (relay.c) */
	unsigned mptcp_cache_ttl;	/* seconds a no-MPTCP server is remembered */
	struct conf_via via;		/* via = convert://HOST:PORT */
	char via_user[256];		/* whose key signs each Convert message */
	char via_keys[CONF_PATH_MAX];	/* keys file holding via_user's key */
	bool via_tfo_no_cookie;		/* the concentrator takes cookieless SYN data */

	/* [metrics] */
	struct conf_addr metrics_listen;	/* len 0: no metrics endpoint */

	/* [state] */
	struct conf_redis redis;	/* redis = redis://...; unset: in-process */
	char redis_password_file[CONF_PATH_MAX];	/* the password, in a file */

	/* [rule.NAME] sections, in file order */
	size_t n_rules;
	struct conf_rule rules[CONF_MAX_RULES];
};

/* Fill c with every default (no file). */
void conf_defaults(struct gw_conf *c);

/*
 * Load path into c (defaults first). 0 on success; -1 with a message
 * "path:line: what is wrong" in err (or "path: strerror" if unreadable).
 */
int conf_load(struct gw_conf *c, const char *path, char *err, size_t errlen);
/*
 * As conf_load(), reading an open stream; name is what messages and c->path
 * call it. The caller keeps and closes f. (For tests and the fuzz target.)
 */
int conf_load_stream(struct gw_conf *c, FILE *f, const char *name,
    char *err, size_t errlen);

/*
 * The open-proxy check alone: -1 with a message in err if a listener of c
 * on a non-loopback address lets clients in without a login and
 * gateway.allow_open_proxy is off. conf_load() runs it on the file's
 * listeners; a reload runs it again on the live ones (listeners change
 * only on restart).
 */
int conf_check_open_proxy(const struct gw_conf *c, char *err, size_t errlen);

/*
 * -1 with a message in err if a listener section has proxy_protocol on
 * and gateway.proxy_from is empty. conf_load() runs it; a reload runs it
 * again with the live listeners' proxy_protocol (which changes only on
 * restart).
 */
int conf_check_proxy_from(const struct gw_conf *c, char *err, size_t errlen);

/*
 * Parse "host:port", "[v6]:port" or ":port" (host defaults to 0.0.0.0).
 * 0 or -1. Hosts must be numeric.
 */
int conf_parse_addr(const char *s, struct conf_addr *a);
/* Parse "10.0.0.0/8", "::1", "fe80::/10": 0 or -1. */
int conf_parse_cidr(const char *s, struct conf_cidr *c);
bool conf_cidr_match(const struct conf_cidr *c, const struct sockaddr *sa);

#endif
