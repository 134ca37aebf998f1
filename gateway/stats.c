#include "gateway/stats.h"

#include <inttypes.h>
#include <stdatomic.h>

#include "auth/replay.h"
#include "auth/throttle.h"
#include "lib/log.h"

static atomic_uint_fast64_t stats[STAT_COUNT];

uint64_t
stats_add(enum stat_id id, uint64_t n)
{
	return atomic_fetch_add_explicit(&stats[id], n,
	    memory_order_relaxed) + n;
}

void
stats_sub(enum stat_id id, uint64_t n)
{
	atomic_fetch_sub_explicit(&stats[id], n, memory_order_relaxed);
}

uint64_t
stats_get(enum stat_id id)
{
	return atomic_load_explicit(&stats[id], memory_order_relaxed);
}

const char *
stats_name(enum stat_id id)
{
	switch (id) {
	case STAT_ACCEPTED:
		return "accepted";
	case STAT_OPEN:
		return "open";
	case STAT_REFUSED_MAX_SESSIONS:
		return "refused_max_sessions";
	case STAT_REFUSED_PER_SOURCE:
		return "refused_per_source";
	case STAT_REFUSED_THROTTLE:
		return "refused_throttle";
	case STAT_LOGIN_FAILURES:
		return "login_failures";
	case STAT_CONVERT_REPLAYS:
		return "convert_replays";
	case STAT_BYTES_UP:
		return "bytes_up";
	case STAT_BYTES_DOWN:
		return "bytes_down";
	}
	return "?";
}

void
stats_log(void)
{
	struct auth_throttle_stats ts;
	struct auth_replay_stats rs;

	auth_throttle_stats(&ts);
	auth_replay_stats(&rs);
	log_info("stats: sessions open %" PRIu64 ", accepted %" PRIu64
	    "; failed logins %" PRIu64 ", refused connections %" PRIu64
	    " (max_sessions %" PRIu64 ", max_per_source %" PRIu64
	    ", failed logins %" PRIu64 "), sources tracked %u; convert "
	    "replays refused %" PRIu64 ", nonces remembered %zu; bytes up %"
	    PRIu64 ", down %" PRIu64, stats_get(STAT_OPEN),
	    stats_get(STAT_ACCEPTED), stats_get(STAT_LOGIN_FAILURES),
	    stats_get(STAT_REFUSED_MAX_SESSIONS) +
	    stats_get(STAT_REFUSED_PER_SOURCE) +
	    stats_get(STAT_REFUSED_THROTTLE),
	    stats_get(STAT_REFUSED_MAX_SESSIONS),
	    stats_get(STAT_REFUSED_PER_SOURCE),
	    stats_get(STAT_REFUSED_THROTTLE), ts.tracked,
	    stats_get(STAT_CONVERT_REPLAYS), rs.live,
	    stats_get(STAT_BYTES_UP), stats_get(STAT_BYTES_DOWN));
}
