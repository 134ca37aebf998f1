/*
 * The service manager's readiness protocol, spoken directly (no
 * libsystemd): each message is one datagram of newline-separated
 * KEY=VALUE lines sent to the AF_UNIX socket named by $NOTIFY_SOCKET, an
 * absolute path or, with a leading '@', a name in the abstract namespace
 * (sd_notify(3)). Without $NOTIFY_SOCKET every call does nothing.
 *
 *   READY=1       listeners up, workers started (and after a reload)
 *   RELOADING=1   a reload starts; MONOTONIC_USEC says when
 *   STOPPING=1    draining begins
 *   STATUS=...    one line for `systemctl status`
 */
#ifndef MPGW_NOTIFY_H
#define MPGW_NOTIFY_H

/*
 * Send the message fmt (printf-style, lines without a trailing newline
 * needed). 0 if sent or if there is no $NOTIFY_SOCKET; -1 with errno
 * (EINVAL for a socket name that is neither absolute nor abstract, or too
 * long; EMSGSIZE for a message over 4 KiB).
 */
int notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The "RELOADING=1\nMONOTONIC_USEC=..." message, with CLOCK_MONOTONIC now. */
int notify_reloading(void);

#endif
