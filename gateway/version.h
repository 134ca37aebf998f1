/*
 * The one place the daemon's version is written: `mpgw -V`, the start-up
 * log line and the metrics endpoint's mpgw_build_info read it from here.
 */
#ifndef MPGW_VERSION_H
#define MPGW_VERSION_H

#define MPGW_VERSION "0.2.0-dev"

#endif
