/*
 * The access log: one line per connection when it closes, as
 * space-separated key=value fields (README, "Access log"):
 *
 *   <time> access id=7 client=127.0.0.1:40112 user=alice method=userpass
 *   target=example.com:443 result=ok mptcp=yes subflows=1
 *   client_mptcp=no client_subflows=0 early=no up=517 down=4128
 *   duration=0.231
 *
 * UDP ASSOCIATE and BIND lines add fields at the end, after duration
 * (command=udp or command=bind, then udp.c's datagram counters); CONNECT
 * lines have exactly the fields above.
 *
 * Lines go to stderr, to a file (opened for append, reopened on SIGHUP), or
 * nowhere. Each line is written with one write(2), so workers never tear
 * each other's lines.
 */
#ifndef MPGW_ACCESS_H
#define MPGW_ACCESS_H

#include <stdbool.h>
#include <stdint.h>

struct access_entry {
	uint64_t id;
	const char *client;
	const char *user;	/* NULL: "-" */
	const char *method;
	const char *target;	/* NULL: "-" */
	const char *result;
	const char *mptcp;	/* "yes", "no", "cached-no" */
	unsigned subflows;
	bool client_mptcp;	/* the client leg runs MPTCP (an MPTCP client) */
	unsigned client_subflows;
	bool early;		/* success replied before the upstream connected */
	uint64_t up;
	uint64_t down;
	double duration;
	const char *extra;	/* NULL, or " key=value" fields to append */
};

/* Open (or reopen) the destination: "stderr", "off" or a path. 0 or -1. */
int access_open(const char *dest);
void access_write(const struct access_entry *e);
void access_close(void);

#endif
