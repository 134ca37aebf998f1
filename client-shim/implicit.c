/*
 * Implicit mode: the Convert message (RFC 8803 plus mpgw's private TLVs,
 * DESIGN.md section 4) that rides in the SYN. Encoding and signing are the
 * shared codec's (proto/convert.c); this file only fills in the request.
 *
 * Connect for an address, Connect-Name for a fake-DNS name; Silent unless
 * `silent = off` (so the gateway sends no success reply and the shim needs
 * no read-path hooks); Auth last, with the user, the time, a fresh 12-byte
 * nonce and the HMAC under the user's key.
 */
#include "client-shim/shim.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "proto/convert.h"

ssize_t
shim_convert_build(const struct shim_target *t, uint8_t *out, size_t cap)
{
	struct conv_req req;
	size_t n, mac_off, got = 0;

	memset(&req, 0, sizeof(req));
	if (t->name != NULL) {
		req.name = t->name;
		req.port = t->port;
	} else {
		req.addr = (const struct sockaddr *)&t->addr;
	}
	req.silent = shim_conf.silent;
	req.user = shim_conf.user;
	req.ts = (uint32_t)time(NULL);
	while (got < sizeof(req.nonce)) {
		ssize_t r = getrandom(req.nonce + got, sizeof(req.nonce) - got,
		    0);

		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return -1;
		got += (size_t)r;
	}
	n = conv_write_request(out, cap, &req, &mac_off);
	if (n == 0) {
		errno = EINVAL;
		return -1;
	}
	if (conv_sign(out, mac_off, shim_conf.key) == -1) {
		errno = EIO;
		return -1;
	}
	return (ssize_t)n;
}
