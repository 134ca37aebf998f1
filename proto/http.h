/*
 * The little HTTP/1.x the metrics endpoint needs (RFC 9112): a request
 * parser and a response head writer. Nothing else of HTTP is here: no
 * bodies, no chunking, no persistent connections (each response says
 * "Connection: close").
 *
 * No sockets, no libev, no malloc. http_req_parse takes (buf, len) of
 * what has arrived so far and returns HTTP_AGAIN until the blank line
 * that ends the head, then HTTP_OK with *used set to the head's length,
 * or HTTP_BAD as soon as a byte departs from the grammar (so a client
 * that sends garbage is answered at once, not when the buffer fills). It
 * never reads past len. The caller bounds the head's size: a head that
 * does not fit its buffer is refused there (431).
 */
#ifndef MPGW_HTTP_H
#define MPGW_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* Request heads longer than this are refused (the endpoint's buffer). */
#define HTTP_REQ_MAX 4096
/* Room for any head http_write_head() writes. */
#define HTTP_HEAD_MAX 256

enum http_res {
	HTTP_OK = 0,
	HTTP_AGAIN,
	HTTP_BAD,
};

enum http_method {
	HTTP_METHOD_GET = 0,
	HTTP_METHOD_HEAD,
	HTTP_METHOD_OTHER,	/* a valid token we do not serve (405) */
};

/* A parsed request head; the target points into the caller's buffer. */
struct http_req {
	enum http_method method;
	const uint8_t *target;	/* the request-target as sent */
	size_t target_len;
	size_t path_len;	/* of target, up to a '?' (the query) */
	uint8_t minor;		/* HTTP/1.minor */
};

/*
 * Parse the request head at buf[0..len):
 *
 *   request-line = method SP request-target SP "HTTP/1." DIGIT CRLF
 *   *( field-name ":" field-value CRLF )
 *   CRLF
 *
 * method and field-name are tokens (RFC 9110 section 5.6.2); the target is
 * one or more visible ASCII characters; a field value is visible
 * characters, SP, HTAB or bytes 0x80..0xff. A bare LF ends a line as CRLF
 * does (RFC 9112 section 2.2); a CR not followed by LF, any other control
 * character, a line folded onto the next (obsolete), an empty field name
 * and a version other than 1.x are HTTP_BAD. On HTTP_OK fills *r and sets
 * *used to the head's length, blank line included.
 */
enum http_res http_req_parse(const uint8_t *buf, size_t len,
    struct http_req *r, size_t *used);

/*
 * Write a response head into out (cap bytes, HTTP_HEAD_MAX is enough):
 * "HTTP/1.1 <status> <reason>", Content-Type (when not NULL),
 * Content-Length, "Connection: close" and, for 405, "Allow: GET, HEAD".
 * Returns the bytes written (no NUL), or 0 if cap is short.
 */
size_t http_write_head(char *out, size_t cap, unsigned status,
    const char *content_type, size_t content_length);

/* The reason phrase for status ("Not Found"), "Unknown" for others. */
const char *http_reason(unsigned status);

#endif
