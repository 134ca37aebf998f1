#include "gateway/priv.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"

/* A message into err; a long one is cut, which is fine for a message. */
static void __attribute__((format(printf, 3, 4)))
priv_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* True if mpgw already runs as c's user (and group, if one is named). */
static bool
priv_already(const struct gw_conf *c)
{
	if (getuid() != c->uid || geteuid() != c->uid)
		return false;
	return c->group[0] == '\0' ||
	    (getgid() == c->gid && getegid() == c->gid);
}

/* True if the process holds no effective or permitted capability. */
static bool
priv_no_caps(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0,
	};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &h, d) == -1)
		return false;
	for (size_t i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		if (d[i].effective != 0 || d[i].permitted != 0)
			return false;
	return true;
}

/*
 * After a switch: every uid and gid is the target, the way back to root
 * is closed, no capability is left. 0, or -1 with err.
 */
static int
priv_verify(const struct gw_conf *c, char *err, size_t errlen)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (getresuid(&ru, &eu, &su) == -1 || getresgid(&rg, &eg, &sg) == -1 ||
	    ru != c->uid || eu != c->uid || su != c->uid || rg != c->gid ||
	    eg != c->gid || sg != c->gid) {
		priv_err(err, errlen, "gateway.user = %s: the switch did not "
		    "take (uids %u/%u/%u, gids %u/%u/%u)", c->user,
		    (unsigned)ru, (unsigned)eu, (unsigned)su, (unsigned)rg,
		    (unsigned)eg, (unsigned)sg);
		return -1;
	}
	if (setuid(0) != -1 || setgid(0) != -1) {
		priv_err(err, errlen, "gateway.user = %s: root could be "
		    "regained after the switch", c->user);
		return -1;
	}
	if (!priv_no_caps()) {
		priv_err(err, errlen, "gateway.user = %s: capabilities are "
		    "left after the switch", c->user);
		return -1;
	}
	return 0;
}

/*
 * Switch to c's user and group: groups first, since only root may set
 * them, then the gid, then the uid, which gives up root. 1 if it switched,
 * 0 if there was nothing to do, -1 with err.
 */
static int
priv_become(const struct gw_conf *c, char *err, size_t errlen)
{
	const char *step;

	if (priv_already(c))
		return 0;
	if (geteuid() != 0) {
		priv_err(err, errlen, "gateway.user = %s%s%s: switching to uid "
		    "%u gid %u needs root, and mpgw runs as uid %u gid %u "
		    "(start it as root, or as that user with the key naming "
		    "it)", c->user, c->group[0] != '\0' ? ", group = " : "",
		    c->group, (unsigned)c->uid, (unsigned)c->gid,
		    (unsigned)geteuid(), (unsigned)getegid());
		return -1;
	}
	step = "setgroups";
	if (c->group[0] != '\0' ? setgroups(1, &c->gid) == -1 :
	    initgroups(c->user, c->gid) == -1)
		goto err;
	step = "setresgid";
	if (setresgid(c->gid, c->gid, c->gid) == -1)
		goto err;
	step = "setresuid";
	if (setresuid(c->uid, c->uid, c->uid) == -1)
		goto err;
	if (priv_verify(c, err, errlen) == -1)
		return -1;
	return 1;
err:
	priv_err(err, errlen, "gateway.user = %s: %s: %s", c->user, step,
	    strerror(errno));
	return -1;
}

int
priv_drop(const struct gw_conf *c, char *err, size_t errlen)
{
	int r, ngroups;

	if (c->user[0] == '\0') {
		if (geteuid() == 0)
			log_warnx("running as root: set gateway.user to give "
			    "up root once the listeners are bound");
		return 0;
	}
	if ((r = priv_become(c, err, errlen)) == -1)
		return -1;
	if (r == 0) {
		log_info("gateway.user = %s: already running as uid %u",
		    c->user, (unsigned)c->uid);
		return 0;
	}
	/*
	 * mpgw executes nothing; should that change, nothing it runs may
	 * gain privileges from set-user-ID bits or file capabilities.
	 */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		priv_err(err, errlen, "PR_SET_NO_NEW_PRIVS: %s",
		    strerror(errno));
		return -1;
	}
	ngroups = getgroups(0, NULL);
	log_info("dropped privileges: now user %s (uid %u), gid %u, %d "
	    "group(s), no capabilities", c->user, (unsigned)c->uid,
	    (unsigned)c->gid, ngroups);
	return 0;
}

/* 0 if the user can open path for reading, else -1 with err. */
static int
check_read(const struct gw_conf *c, const char *what, const char *path,
    char *err, size_t errlen)
{
	int fd;

	if (path[0] == '\0')
		return 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK)) == -1) {
		priv_err(err, errlen, "gateway.user = %s cannot read %s %s: "
		    "%s (a reload reads it as that user)", c->user, what, path,
		    strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * 0 if the user can append to the access log, or create it in its
 * directory; else -1 with err. Nothing is written or created.
 */
static int
check_append(const struct gw_conf *c, const char *path, char *err,
    size_t errlen)
{
	char dir[CONF_PATH_MAX];
	const char *slash;
	int fd;

	if (strcmp(path, "stderr") == 0 || strcmp(path, "off") == 0)
		return 0;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK)) != -1) {
		close(fd);
		return 0;
	}
	if (errno == ENOENT) {
		slash = strrchr(path, '/');
		if (slash == NULL)
			strcpy(dir, ".");
		else if (slash == path)
			strcpy(dir, "/");
		else
			snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path),
			    path);
		if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == 0)
			return 0;
		priv_err(err, errlen, "gateway.user = %s cannot create "
		    "gateway.access_log %s in %s: %s (a reload opens it as "
		    "that user)", c->user, path, dir, strerror(errno));
		return -1;
	}
	priv_err(err, errlen, "gateway.user = %s cannot append to "
	    "gateway.access_log %s: %s (a reload opens it as that user)",
	    c->user, path, strerror(errno));
	return -1;
}

/* In the child, after the switch: every file, first failure in err. */
static int
check_all(const struct gw_conf *c, char *err, size_t errlen)
{
	if (check_read(c, "the config file", c->path, err, errlen) == -1 ||
	    check_read(c, "auth.users", c->users, err, errlen) == -1 ||
	    check_read(c, "convert.keys", c->convert_keys, err, errlen) ==
	    -1 ||
	    check_read(c, "upstream.via_keys", c->via_keys, err, errlen) ==
	    -1 ||
	    check_read(c, "tls.cert", c->tls_cert, err, errlen) == -1 ||
	    check_read(c, "tls.key", c->tls_key, err, errlen) == -1 ||
	    check_read(c, "tls.client_ca", c->tls_client_ca, err, errlen) ==
	    -1 ||
	    check_read(c, "state.redis_password_file", c->redis_password_file,
	    err, errlen) == -1 ||
	    check_append(c, c->access_log, err, errlen) == -1)
		return -1;
	return 0;
}

int
priv_check_files(const struct gw_conf *c, char *err, size_t errlen)
{
	char msg[CONF_ERR_MAX + 256];
	size_t got = 0;
	ssize_t n;
	int fds[2], status;
	pid_t pid;

	if (c->user[0] == '\0')
		return 0;
	/* Fail here, in the parent, with the message the drop would give. */
	if (!priv_already(c) && geteuid() != 0)
		return priv_become(c, err, errlen) == -1 ? -1 : 0;
	if (pipe2(fds, O_CLOEXEC) == -1)
		goto err_sys;
	if ((pid = fork()) == -1) {
		close(fds[0]);
		close(fds[1]);
		goto err_sys;
	}
	if (pid == 0) {
		close(fds[0]);
		msg[0] = '\0';
		if (priv_become(c, msg, sizeof(msg)) == -1 ||
		    check_all(c, msg, sizeof(msg)) == -1) {
			/* A short write still fails the check, by status. */
			n = write(fds[1], msg, strlen(msg));
			_exit(n == -1 ? 2 : 1);
		}
		_exit(0);
	}
	close(fds[1]);
	while (got < sizeof(msg) - 1 &&
	    ((n = read(fds[0], msg + got, sizeof(msg) - 1 - got)) > 0 ||
	    (n == -1 && errno == EINTR)))
		if (n > 0)
			got += (size_t)n;
	msg[got] = '\0';
	close(fds[0]);
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			goto err_sys;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (got > 0)
		priv_err(err, errlen, "%s", msg);
	else
		priv_err(err, errlen, "gateway.user = %s: the file check "
		    "ended with status %#x", c->user, (unsigned)status);
	return -1;
err_sys:
	priv_err(err, errlen, "gateway.user = %s: checking files as that "
	    "user: %s", c->user, strerror(errno));
	return -1;
}
