/*
 * Socket address helpers shared by every layer: IPv4-mapped IPv6 addresses
 * (what a dual-stack socket reports for an IPv4 peer) judged as IPv4, the
 * loopback test, formatting for logs, and the key that names a client
 * "source" (an IPv4 address, or an IPv6 /64, which one host usually owns).
 *
 * Nothing here allocates or blocks; sa may be unaligned storage.
 */
#ifndef MPGW_ADDR_H
#define MPGW_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* "[ffff:...:255.255.255.255]:65535" and its NUL. */
#define ADDR_STR_MAX 56
/* A source key: tag byte (4 or 6), then 4 or 8 address bytes, zero-padded. */
#define ADDR_KEY_LEN 9

/*
 * Copy the AF_INET or AF_INET6 address sa into out, an IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) written as AF_INET with the same port. Returns
 * out as a sockaddr, or NULL for NULL or another family.
 */
const struct sockaddr *addr_unmap(const struct sockaddr *sa,
    struct sockaddr_storage *out);

/* The length of an AF_INET or AF_INET6 sockaddr; 0 for another family. */
socklen_t addr_len(const struct sockaddr *sa);

/* Is sa on loopback: 127/8, ::1, or ::ffff:127.0.0.0/104? */
bool addr_is_loopback(const struct sockaddr *sa);

/*
 * Write "1.2.3.4:80" or "[2001:db8::1]:80" (a v4-mapped address as IPv4)
 * into out, always NUL-terminated when cap > 0; "?" for another family.
 * Returns out.
 */
const char *addr_format(const struct sockaddr *sa, char *out, size_t cap);

/*
 * The source key of sa into key: an IPv4 (or v4-mapped) address, or the
 * /64 of an IPv6 address. False for another family.
 */
bool addr_source_key(const struct sockaddr *sa, uint8_t key[ADDR_KEY_LEN]);

#endif
