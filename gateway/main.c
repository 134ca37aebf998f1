/*
 * mpgw: the daemon's entry point. Loads the config, opens the listeners
 * (each worker its own), starts the workers and the blocking-work pool, and
 * then waits for signals: SIGHUP reloads, SIGTERM/SIGINT drain and stop.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <termios.h>
#include <unistd.h>

#include "auth/keys.h"
#include "auth/replay.h"
#include "auth/throttle.h"
#include "auth/userdb.h"
#include "conf/conf.h"
#include "gateway/access.h"
#include "gateway/metrics.h"
#include "gateway/mptcp.h"
#include "gateway/notify.h"
#include "gateway/pool.h"
#include "gateway/priv.h"
#include "gateway/session.h"
#include "gateway/snap.h"
#include "gateway/state.h"
#include "gateway/stats.h"
#include "gateway/version.h"
#include "gateway/worker.h"
#include "lib/log.h"

#define DEFAULT_CONFIG "/etc/mpgw/mpgw.ini"
#define MAX_WORKERS 256
/* Seconds SIGTERM waits for sessions to finish before closing them. */
#define DRAIN_TIMEOUT 30.

static struct worker *workers;
static unsigned n_workers;
static const char *config_path = DEFAULT_CONFIG;
static bool draining;
static bool debug_flag;			/* -d: debug level over the config's */
static ev_timer drain_timer;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mpgw [-t] [-d] [-c FILE]\n"
	    "       mpgw passwd FILE USER\n"
	    "       mpgw key new USER FILE\n"
	    "\n"
	    "SOCKS5 gateway that carries connections upstream over Multipath TCP.\n"
	    "\n"
	    "  -c, --config FILE  configuration file (default " DEFAULT_CONFIG ")\n"
	    "  -t, --test         check the configuration and the files it names, then exit\n"
	    "  -d, --debug        log at debug level (overrides gateway.log_level)\n"
	    "  -h, --help         this text\n"
	    "  -V, --version      print the version\n"
	    "\n"
	    "  passwd FILE USER   set USER's password in the users file FILE (a yescrypt\n"
	    "                     hash; the password is read without echo, or from stdin)\n"
	    "  key new USER FILE  give USER a fresh random key in the Convert keys file\n"
	    "                     FILE and print it (base64: the client's MPGW_KEY)\n"
	    "\n"
	    "Runs in the foreground and logs to stderr; under systemd (Type=notify)\n"
	    "it reports start-up, reloads and stopping through $NOTIFY_SOCKET.\n"
	    "With gateway.user it gives up root once its listeners are bound.\n"
	    "Signals: HUP reloads the configuration and the files it names,\n"
	    "TERM/INT stop accepting and drain (a second one closes everything at\n"
	    "once), USR1 logs counters. mpgw(8) and mpgw.ini(5) (or README.md)\n"
	    "describe every option and config key.\n");
}

static struct gw_snap *
load(char *err, size_t errlen)
{
	return snap_load(config_path, err, errlen);
}

static bool
listen_same(const struct conf_addr_list *a, const struct conf_addr_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->a[i].text, b->a[i].text) != 0)
			return false;
	return true;
}

/* Load the config again and swap it in if it is usable. 0, or -1. */
static int
reload(void)
{
	char err[CONF_ERR_MAX];
	struct gw_snap *s = load(err, sizeof(err)), *old;

	if (s == NULL) {
		log_error("reload failed, keeping the running config: %s", err);
		return -1;
	}
	old = snap_current();
	if (!listen_same(&old->conf.socks5_listen, &s->conf.socks5_listen) ||
	    !listen_same(&old->conf.tls_listen, &s->conf.tls_listen) ||
	    !listen_same(&old->conf.convert_listen, &s->conf.convert_listen) ||
	    strcmp(s->conf.metrics_listen.text,
	    old->conf.metrics_listen.text) != 0 ||
	    s->conf.socks5_proxy_protocol != old->conf.socks5_proxy_protocol ||
	    s->conf.tls_proxy_protocol != old->conf.tls_proxy_protocol ||
	    s->conf.convert_proxy_protocol !=
	    old->conf.convert_proxy_protocol ||
	    s->conf.workers != old->conf.workers ||
	    s->conf.buffer_size != old->conf.buffer_size ||
	    s->conf.buffer_max != old->conf.buffer_max ||
	    strcmp(s->conf.user, old->conf.user) != 0 ||
	    strcmp(s->conf.group, old->conf.group) != 0)
		log_warnx("reload: listen addresses, proxy_protocol, workers, "
		    "buffer_size, buffer_max, user and group change only on "
		    "restart");
	if (strcmp(s->conf.redis.text, old->conf.redis.text) != 0 ||
	    strcmp(s->redis_password, old->redis_password) != 0)
		log_warnx("reload: state.redis and its password change only on "
		    "restart");
	/*
	 * The listeners stay as they are: the new methods are judged against
	 * them, not against addresses that would apply only after a restart
	 * (a login-only public listener must not become an open one).
	 */
	s->conf.socks5_listen = old->conf.socks5_listen;
	s->conf.tls_listen = old->conf.tls_listen;
	s->conf.convert_listen = old->conf.convert_listen;
	s->conf.metrics_listen = old->conf.metrics_listen;
	s->conf.socks5_proxy_protocol = old->conf.socks5_proxy_protocol;
	s->conf.tls_proxy_protocol = old->conf.tls_proxy_protocol;
	s->conf.convert_proxy_protocol = old->conf.convert_proxy_protocol;
	snap_unref(old);
	if (conf_check_open_proxy(&s->conf, err, sizeof(err)) == -1) {
		log_error("reload refused, keeping the running config: the "
		    "running listeners would be open: %s", err);
		snap_unref(s);
		return -1;
	}
	if (conf_check_proxy_from(&s->conf, err, sizeof(err)) == -1) {
		log_error("reload refused, keeping the running config: the "
		    "running listeners expect PROXY headers: %s", err);
		snap_unref(s);
		return -1;
	}
	log_set_level(debug_flag ? LOG_LVL_DEBUG : s->conf.log_level);
	if (access_open(s->conf.access_log) == -1)
		log_warn("reload: access log %s", s->conf.access_log);
	snap_install(s);
	log_info("reloaded %s", config_path);
	return 0;
}

static void
stop_all(struct ev_loop *loop)
{
	(void)loop;
	for (unsigned i = 0; i < n_workers; i++)
		worker_command(&workers[i], WORKER_CMD_STOP);
}

static void
drain_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t;
	(void)revents;
	log_warnx("drain: %u session(s) still open after %.0f s: closing them",
	    (unsigned)stats_get(STAT_OPEN), DRAIN_TIMEOUT);
	stop_all(loop);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
	(void)revents;
	if (sig->signum == SIGHUP) {
		/* The service manager holds `systemctl reload` until READY=1. */
		if (notify_reloading() == -1)
			log_warn("NOTIFY_SOCKET");
		if (notify_send("READY=1\nSTATUS=%s", reload() == 0 ?
		    "running; reloaded" : "running; the last reload failed, "
		    "see the log") == -1)
			log_warn("NOTIFY_SOCKET");
		return;
	}
	if (draining) {
		log_info("second signal: closing %u session(s) now",
		    (unsigned)stats_get(STAT_OPEN));
		stop_all(loop);
		return;
	}
	draining = true;
	log_info("signal %d: no new connections; draining %u session(s)",
	    sig->signum, (unsigned)stats_get(STAT_OPEN));
	if (notify_send("STOPPING=1\nSTATUS=draining %u session(s)",
	    (unsigned)stats_get(STAT_OPEN)) == -1)
		log_warn("NOTIFY_SOCKET");
	for (unsigned i = 0; i < n_workers; i++)
		worker_command(&workers[i], WORKER_CMD_DRAIN);
	ev_timer_init(&drain_timer, drain_timeout_cb, DRAIN_TIMEOUT, 0.);
	ev_timer_start(loop, &drain_timer);
}

/* SIGUSR1: one log line with the counters an operator asks about. */
static void
stats_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
	(void)loop;
	(void)sig;
	(void)revents;
	stats_log();
}

static void
worker_exit_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)a;
	(void)revents;
	for (unsigned i = 0; i < n_workers; i++)
		if (!atomic_load(&workers[i].exited))
			return;
	ev_break(loop, EVBREAK_ALL);
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("raising the open-file limit");
	}
}

/* Fail early, with a clear message, if another process holds a port. */
static int
probe_list(const struct conf_addr_list *l, char *err, size_t errlen)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct conf_addr *a = &l->a[i];
		int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int one = 1;

		if (fd == -1)
			continue;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one));
		/* No SO_REUSEPORT here: only a free port binds. */
		if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1) {
			snprintf(err, errlen, "listen on %s: %s", a->text,
			    strerror(errno));
			close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

static int
probe_listen(const struct gw_conf *c, char *err, size_t errlen)
{
	if (probe_list(&c->socks5_listen, err, errlen) == -1 ||
	    probe_list(&c->tls_listen, err, errlen) == -1 ||
	    probe_list(&c->convert_listen, err, errlen) == -1)
		return -1;
	return 0;
}

/*
 * Tell the operator whether SYN data will reach the Convert listener: the
 * kernel keeps it only with the server bit (0x2) of net.ipv4.tcp_fastopen,
 * and without a cookie only with 0x200 or convert.tfo_no_cookie.
 */
static void
report_fastopen(const struct gw_conf *c)
{
	unsigned long v = 0;
	FILE *f;

	if (c->convert_listen.n == 0)
		return;
	if ((f = fopen("/proc/sys/net/ipv4/tcp_fastopen", "r")) != NULL) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 0;
		fclose(f);
	}
	if ((v & 0x2) == 0)
		log_warnx("convert: net.ipv4.tcp_fastopen = %#lx has no server "
		    "bit (0x2): the kernel drops data in SYNs, so each Convert "
		    "message arrives after the handshake and costs one extra "
		    "client round trip (sysctl -w net.ipv4.tcp_fastopen=%#lx)",
		    v, v | 0x2);
	else
		log_info("convert: SYN data accepted (net.ipv4.tcp_fastopen = "
		    "%#lx); %s", v, c->convert_tfo_no_cookie || (v & 0x200) ?
		    "no TFO cookie needed" : "first contact needs a TFO cookie "
		    "round trip (convert.tfo_no_cookie = yes to skip it)");
}

static void
log_listeners(const struct conf_addr_list *l, const char *what, bool proxy)
{
	for (size_t i = 0; i < l->n; i++)
		log_info("%s listening on %s%s", what, l->a[i].text, proxy ?
		    " (PROXY protocol)" : "");
}

static int
run(bool debug)
{
	char err[CONF_ERR_MAX];
	struct gw_snap *snap;
	struct ev_loop *loop;
	ev_signal sig_hup, sig_term, sig_int, sig_usr1;
	ev_async exit_async;
	sigset_t set;
	long ncpu;

	if ((snap = load(err, sizeof(err))) == NULL)
		fatalx("%s", err);
	debug_flag = debug;
	log_set_level(debug ? LOG_LVL_DEBUG : snap->conf.log_level);
	if (priv_check_files(&snap->conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	snap_install(snap_ref(snap));
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if (snap->conf.upstream_mptcp)
		mptcp_report();
	else
		log_info("upstream.mptcp = off: upstream connections are TCP");

	n_workers = snap->conf.workers;
	if (n_workers == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		n_workers = ncpu < 1 ? 1 : ncpu > MAX_WORKERS ? MAX_WORKERS :
		    (unsigned)ncpu;
	}
	if (probe_listen(&snap->conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	report_fastopen(&snap->conf);
	if (snap->conf.convert_listen.n > 0 && auth_replay_init(0) == -1)
		fatal("replay cache");
	if ((workers = calloc(n_workers, sizeof(*workers))) == NULL)
		fatal("workers");
	for (unsigned i = 0; i < n_workers; i++)
		if (worker_init(&workers[i], i, &snap->conf, err,
		    sizeof(err)) == -1)
			fatalx("%s", err);
	/* One Redis connection per worker, on its loop (state.h). */
	for (unsigned i = 0; i < n_workers && snap->conf.redis.set; i++)
		if ((workers[i].state = state_new(workers[i].loop, i,
		    &snap->conf, snap->redis_ip, snap->redis_password)) ==
		    NULL)
			fatal("state");
	if (snap->conf.redis.set)
		log_info("state: replay cache and login throttle shared in %s "
		    "(%s)", snap->conf.redis.text, snap->redis_ip);
	loop = ev_default_loop(EVFLAG_AUTO);
	/* The main thread's loop: a scrape never waits on a worker. */
	if (snap->conf.metrics_listen.len > 0 && metrics_start(loop,
	    &snap->conf.metrics_listen, err, sizeof(err)) == -1)
		fatalx("%s", err);
	/*
	 * Every listener is bound and no thread runs yet: give up root. The
	 * access log is opened after, as the user that reopens it on SIGHUP.
	 */
	if (priv_drop(&snap->conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (access_open(snap->conf.access_log) == -1)
		fatal("access log %s", snap->conf.access_log);
	/* Signals go to the main thread only; every thread inherits the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	/* Blocking work (password hashing); names resolve on the loops. */
	if (pool_start(n_workers < 2 ? 4 : 2 * n_workers) == -1)
		fatal("thread pool");

	ev_async_init(&exit_async, worker_exit_cb);
	ev_async_start(loop, &exit_async);
	worker_notify_exit(loop, &exit_async);
	for (unsigned i = 0; i < n_workers; i++)
		if (worker_start(&workers[i]) == -1)
			fatal("worker thread");
	ev_signal_init(&sig_hup, signal_cb, SIGHUP);
	ev_signal_init(&sig_term, signal_cb, SIGTERM);
	ev_signal_init(&sig_int, signal_cb, SIGINT);
	ev_signal_start(loop, &sig_hup);
	ev_signal_start(loop, &sig_term);
	ev_signal_start(loop, &sig_int);
	ev_signal_init(&sig_usr1, stats_cb, SIGUSR1);
	ev_signal_start(loop, &sig_usr1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	log_listeners(&snap->conf.socks5_listen, "socks5",
	    snap->conf.socks5_proxy_protocol);
	log_listeners(&snap->conf.tls_listen, "socks5+tls",
	    snap->conf.tls_proxy_protocol);
	log_listeners(&snap->conf.convert_listen, "convert",
	    snap->conf.convert_proxy_protocol);
	log_info("mpgw %s started: %u worker(s), config %s", MPGW_VERSION,
	    n_workers, config_path);
	if (notify_send("READY=1\nSTATUS=running: %u worker(s), %zu "
	    "listener(s)", n_workers, snap->conf.socks5_listen.n +
	    snap->conf.tls_listen.n + snap->conf.convert_listen.n) == -1)
		log_warn("NOTIFY_SOCKET");
	snap_unref(snap);

	ev_run(loop, 0);

	for (unsigned i = 0; i < n_workers; i++)
		worker_join(&workers[i]);
	pool_stop();
	for (unsigned i = 0; i < n_workers; i++)
		worker_fini(&workers[i]);
	free(workers);
	ev_timer_stop(loop, &drain_timer);
	metrics_stop();
	ev_loop_destroy(loop);
	snap_install(NULL);
	auth_replay_fini();
	access_close();
	log_info("stopped");
	return 0;
}

/* Read a password from the terminal without echo, or a line from stdin. */
static int
read_password(const char *prompt, char *buf, size_t len)
{
	struct termios old, noecho;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	size_t n;

	if (tty) {
		fputs(prompt, stderr);
		noecho = old;
		noecho.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
	}
	if (fgets(buf, (int)len, stdin) == NULL)
		buf[0] = '\0';
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	return n == 0 ? -1 : 0;
}

static int
cmd_passwd(int argc, char **argv)
{
	char pass[256], again[256], hash[AUTH_HASH_MAX], err[CONF_ERR_MAX];
	int rc = 1;

	if (argc != 3) {
		usage(stderr);
		return 2;
	}
	if (read_password("Password: ", pass, sizeof(pass)) == -1) {
		fprintf(stderr, "mpgw passwd: empty password\n");
		goto out;
	}
	if (isatty(STDIN_FILENO)) {
		read_password("Again: ", again, sizeof(again));
		if (strcmp(pass, again) != 0) {
			fprintf(stderr, "mpgw passwd: passwords differ\n");
			goto out;
		}
	}
	if (auth_hash_password(pass, hash, sizeof(hash)) == -1) {
		fprintf(stderr, "mpgw passwd: hashing: %s\n", strerror(errno));
		goto out;
	}
	if (auth_userdb_set(argv[1], argv[2], hash, err, sizeof(err)) == -1) {
		fprintf(stderr, "mpgw passwd: %s\n", err);
		goto out;
	}
	rc = 0;
out:
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(again, sizeof(again));
	return rc;
}

static int
cmd_key(int argc, char **argv)
{
	char b64[AUTH_KEY_B64_SIZE], err[CONF_ERR_MAX];

	if (argc != 4 || strcmp(argv[1], "new") != 0) {
		usage(stderr);
		return 2;
	}
	if (auth_keys_new(argv[3], argv[2], b64, sizeof(b64), err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "mpgw key: %s\n", err);
		return 1;
	}
	printf("%s\n", b64);
	explicit_bzero(b64, sizeof(b64));
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	bool test = false, debug = false;
	int ch;

	if (argc > 1 && strcmp(argv[1], "passwd") == 0)
		return cmd_passwd(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "key") == 0)
		return cmd_key(argc - 1, argv + 1);
	while ((ch = getopt_long(argc, argv, "c:tdhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 't':
			test = true;
			break;
		case 'd':
			debug = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("mpgw %s\n", MPGW_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "mpgw: unexpected argument \"%s\"\n",
		    argv[optind]);
		usage(stderr);
		return 2;
	}
	if (test) {
		char err[CONF_ERR_MAX];
		struct gw_snap *s = load(err, sizeof(err));

		if (s == NULL) {
			fprintf(stderr, "mpgw: %s\n", err);
			return 1;
		}
		if (priv_check_files(&s->conf, err, sizeof(err)) == -1) {
			fprintf(stderr, "mpgw: %s\n", err);
			snap_unref(s);
			return 1;
		}
		snap_unref(s);
		printf("mpgw: %s: configuration OK\n", config_path);
		return 0;
	}
	return run(debug);
}
