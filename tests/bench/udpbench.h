/*
 * socksbench's UDP mode (udpbench.c): `socksbench udp ...`, a UDP echo
 * target and a datagram-rate and latency client, direct or through a
 * SOCKS5 UDP ASSOCIATE.
 */
#ifndef MPGW_UDPBENCH_H
#define MPGW_UDPBENCH_H

/* argv[0] is "udp"; returns the process's exit status. */
int sb_udp_main(int argc, char **argv);

#endif
