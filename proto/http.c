#include "proto/http.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/*
 * RFC 9110 section 5.6.2:
 *
 *   token = 1*tchar
 *   tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 *           "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
 */
static bool
is_tchar(uint8_t c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* VCHAR: visible US-ASCII. */
static bool
is_vchar(uint8_t c)
{
	return c >= 0x21 && c <= 0x7e;
}

/* A field value's byte: VCHAR, SP, HTAB or obs-text. */
static bool
is_field_byte(uint8_t c)
{
	return is_vchar(c) || c == ' ' || c == '\t' || c >= 0x80;
}

/*
 * At buf[*i], the end of a line: CRLF or a bare LF. 1 (and *i moved past
 * it), 0 if more bytes are needed, -1 for anything else.
 */
static int
line_end(const uint8_t *buf, size_t len, size_t *i)
{
	if (*i >= len)
		return 0;
	if (buf[*i] == '\n') {
		(*i)++;
		return 1;
	}
	if (buf[*i] != '\r')
		return -1;
	if (*i + 1 >= len)
		return 0;
	if (buf[*i + 1] != '\n')
		return -1;
	*i += 2;
	return 1;
}

enum http_res
http_req_parse(const uint8_t *buf, size_t len, struct http_req *r,
    size_t *used)
{
	static const char version[] = "HTTP/1.";
	struct http_req q;
	size_t i = 0, start;
	int e;

	memset(&q, 0, sizeof(q));
	/* method SP */
	while (i < len && is_tchar(buf[i]))
		i++;
	if (i == len)
		return HTTP_AGAIN;
	if (i == 0 || buf[i] != ' ')
		return HTTP_BAD;
	if (i == 3 && memcmp(buf, "GET", 3) == 0)
		q.method = HTTP_METHOD_GET;
	else if (i == 4 && memcmp(buf, "HEAD", 4) == 0)
		q.method = HTTP_METHOD_HEAD;
	else
		q.method = HTTP_METHOD_OTHER;
	i++;
	/* request-target SP */
	start = i;
	while (i < len && is_vchar(buf[i]))
		i++;
	if (i == len)
		return HTTP_AGAIN;
	if (i == start || buf[i] != ' ')
		return HTTP_BAD;
	q.target = buf + start;
	q.target_len = i - start;
	for (q.path_len = 0; q.path_len < q.target_len &&
	    q.target[q.path_len] != '?'; q.path_len++)
		;
	i++;
	/* "HTTP/1." DIGIT */
	for (size_t k = 0; k < sizeof(version) - 1; k++, i++) {
		if (i == len)
			return HTTP_AGAIN;
		if (buf[i] != (uint8_t)version[k])
			return HTTP_BAD;
	}
	if (i == len)
		return HTTP_AGAIN;
	if (buf[i] < '0' || buf[i] > '9')
		return HTTP_BAD;
	q.minor = (uint8_t)(buf[i++] - '0');
	if ((e = line_end(buf, len, &i)) != 1)
		return e == 0 ? HTTP_AGAIN : HTTP_BAD;
	/* field lines, then the empty line */
	for (;;) {
		if (i == len)
			return HTTP_AGAIN;
		if (buf[i] == '\r' || buf[i] == '\n') {
			if ((e = line_end(buf, len, &i)) != 1)
				return e == 0 ? HTTP_AGAIN : HTTP_BAD;
			break;
		}
		/* A line starting with SP or HTAB is obs-fold: refused. */
		start = i;
		while (i < len && is_tchar(buf[i]))
			i++;
		if (i == len)
			return HTTP_AGAIN;
		if (i == start || buf[i] != ':')
			return HTTP_BAD;
		i++;
		while (i < len && is_field_byte(buf[i]))
			i++;
		if ((e = line_end(buf, len, &i)) != 1)
			return e == 0 ? HTTP_AGAIN : HTTP_BAD;
	}
	*r = q;
	*used = i;
	return HTTP_OK;
}

const char *
http_reason(unsigned status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

size_t
http_write_head(char *out, size_t cap, unsigned status,
    const char *content_type, size_t content_length)
{
	int n;

	n = snprintf(out, cap, "HTTP/1.1 %u %s\r\n%s%s%s"
	    "Content-Length: %zu\r\n%sConnection: close\r\n\r\n", status,
	    http_reason(status), content_type != NULL ? "Content-Type: " : "",
	    content_type != NULL ? content_type : "",
	    content_type != NULL ? "\r\n" : "", content_length,
	    status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (n < 0 || (size_t)n >= cap)
		return 0;
	return (size_t)n;
}
