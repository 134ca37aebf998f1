/*
 * mpgw-run [-d] [-c FILE] CMD ARGS...: run CMD with libmpgw.so preloaded
 * (DESIGN.md section 5).
 *
 * Checks the configuration first (the same parser as the shim), then
 * refuses programs the shim cannot see into, because their connections
 * would silently bypass the gateway: static binaries (no PT_INTERP), Go
 * binaries (their own syscalls), and binaries whose set-user-ID,
 * set-group-ID or file capabilities make the loader ignore LD_PRELOAD.
 * A "#!" script is judged by its interpreter. Then sets LD_PRELOAD (ours
 * first, an existing value kept after a ':') and MPGW_CONFIG, and execs.
 *
 * Exit status: 2 usage or configuration, 126 refused, 127 not found.
 */
#include <elf.h>
#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* The config parser is shared with the shim (Makefile links shimconf.o). */
#include "client-shim/shimconf.h"

#define LIBNAME "libmpgw.so"
#define GO_BUILDINFO_MAGIC "\xff Go buildinf:"

static const char *prog = "mpgw-run";

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mpgw-run [-d] [-c FILE] CMD [ARGS...]\n"
	    "\n"
	    "Runs CMD with the mpgw client shim (libmpgw.so) preloaded, so its\n"
	    "TCP connections go through the mpgw gateway.\n"
	    "\n"
	    "  -c, --config FILE  shim configuration ([shim] section; default $MPGW_CONFIG)\n"
	    "  -d, --debug        debug log of the shim on stderr (MPGW_DEBUG=1)\n"
	    "  -h, --help         this text\n"
	    "\n"
	    "MPGW_GATEWAY, MPGW_MODE, MPGW_METHOD, MPGW_USER, MPGW_PASSWORD,\n"
	    "MPGW_KEY, MPGW_CA, MPGW_REMOTE_DNS, MPGW_MPTCP, MPGW_TFO_NO_COOKIE\n"
	    "and the others in client-shim/shim.ini override the file.\n"
	    "Static, Go, set-user-ID/set-group-ID and file-capability programs\n"
	    "are refused: the shim cannot work in them.\n");
}

/* Finds cmd on PATH (or takes it as a path if it has a '/'). */
static int
resolve_cmd(const char *cmd, char *out, size_t cap)
{
	const char *path = getenv("PATH"), *p, *e;

	if (strchr(cmd, '/') != NULL) {
		if ((size_t)snprintf(out, cap, "%s", cmd) >= cap)
			return -1;
		return access(out, F_OK);
	}
	if (path == NULL || *path == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path;; p = e + 1) {
		size_t n;

		e = strchr(p, ':');
		n = e ? (size_t)(e - p) : strlen(p);
		if ((size_t)snprintf(out, cap, "%.*s%s%s", (int)n, p,
		    n ? "/" : "./", cmd) < cap && access(out, X_OK) == 0) {
			struct stat st;

			if (stat(out, &st) == 0 && S_ISREG(st.st_mode))
				return 0;
		}
		if (e == NULL)
			break;
	}
	errno = ENOENT;
	return -1;
}

static bool
range_ok(size_t size, uint64_t off, uint64_t len)
{
	return off <= size && len <= size - off;
}

/* Section names of an ELF image: whether one is name. */
#define HAS_SECTION(EHDR, SHDR)						\
	static bool							\
	has_section_##EHDR(const uint8_t *m, size_t size, const char *name) \
	{								\
		const EHDR *eh = (const EHDR *)m;			\
		const SHDR *sh, *strs;					\
									\
		if (eh->e_shoff == 0 || eh->e_shentsize != sizeof(SHDR) || \
		    !range_ok(size, eh->e_shoff,			\
		    (uint64_t)eh->e_shnum * sizeof(SHDR)) ||		\
		    eh->e_shstrndx >= eh->e_shnum)			\
			return false;					\
		sh = (const SHDR *)(m + eh->e_shoff);			\
		strs = &sh[eh->e_shstrndx];				\
		if (!range_ok(size, strs->sh_offset, strs->sh_size))	\
			return false;					\
		for (unsigned i = 0; i < eh->e_shnum; i++) {		\
			uint64_t o = sh[i].sh_name;			\
			size_t n = strlen(name);			\
									\
			if (o < strs->sh_size && strs->sh_size - o > n && \
			    memcmp(m + strs->sh_offset + o, name, n + 1) == 0) \
				return true;				\
		}							\
		return false;						\
	}
HAS_SECTION(Elf64_Ehdr, Elf64_Shdr)
HAS_SECTION(Elf32_Ehdr, Elf32_Shdr)

#define HAS_INTERP(EHDR, PHDR)						\
	static int							\
	has_interp_##EHDR(const uint8_t *m, size_t size)		\
	{								\
		const EHDR *eh = (const EHDR *)m;			\
		const PHDR *ph;						\
									\
		if (eh->e_phentsize != sizeof(PHDR) ||			\
		    !range_ok(size, eh->e_phoff,			\
		    (uint64_t)eh->e_phnum * sizeof(PHDR)))		\
			return -1;					\
		ph = (const PHDR *)(m + eh->e_phoff);			\
		for (unsigned i = 0; i < eh->e_phnum; i++)		\
			if (ph[i].p_type == PT_INTERP)			\
				return 1;				\
		return 0;						\
	}
HAS_INTERP(Elf64_Ehdr, Elf64_Phdr)
HAS_INTERP(Elf32_Ehdr, Elf32_Phdr)

/*
 * Whether the shim can work in the program at path: 0, or -1 with the
 * reason in why. depth bounds "#!" chains.
 */
static int
check_program(const char *path, char *why, size_t cap, int depth)
{
	struct stat st;
	uint8_t *m;
	size_t size;
	int fd, rc = 0, interp;
	bool go;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1 || fstat(fd, &st) == -1) {
		snprintf(why, cap, "%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	if ((st.st_mode & S_ISUID) && st.st_uid != geteuid()) {
		snprintf(why, cap, "%s is set-user-ID: the loader ignores "
		    "LD_PRELOAD for it", path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & S_ISGID) && st.st_gid != getegid()) {
		snprintf(why, cap, "%s is set-group-ID: the loader ignores "
		    "LD_PRELOAD for it", path);
		close(fd);
		return -1;
	}
	if (geteuid() != 0 && fgetxattr(fd, "security.capability", NULL,
	    0) > 0) {
		snprintf(why, cap, "%s has file capabilities: the loader "
		    "ignores LD_PRELOAD for it", path);
		close(fd);
		return -1;
	}
	size = (size_t)st.st_size;
	if (size < 4) {
		close(fd);
		return 0;
	}
	m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return 0;		/* let execve say what is wrong */
	if (m[0] == '#' && m[1] == '!') {
		char interp_path[PATH_MAX];
		size_t i = 2, n = 0;

		while (i < size && (m[i] == ' ' || m[i] == '\t'))
			i++;
		while (i < size && m[i] != ' ' && m[i] != '\t' &&
		    m[i] != '\n' && n < sizeof(interp_path) - 1)
			interp_path[n++] = (char)m[i++];
		interp_path[n] = '\0';
		munmap(m, size);
		if (n == 0 || depth >= 4)
			return 0;
		return check_program(interp_path, why, cap, depth + 1);
	}
	if (size < EI_NIDENT || memcmp(m, ELFMAG, SELFMAG) != 0 ||
	    m[EI_DATA] != (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ?
	    ELFDATA2LSB : ELFDATA2MSB)) {
		munmap(m, size);
		return 0;
	}
	if (m[EI_CLASS] == ELFCLASS64 && size >= sizeof(Elf64_Ehdr)) {
		interp = has_interp_Elf64_Ehdr(m, size);
		go = has_section_Elf64_Ehdr(m, size, ".go.buildinfo") ||
		    has_section_Elf64_Ehdr(m, size, ".note.go.buildid");
	} else if (m[EI_CLASS] == ELFCLASS32 && size >= sizeof(Elf32_Ehdr)) {
		interp = has_interp_Elf32_Ehdr(m, size);
		go = has_section_Elf32_Ehdr(m, size, ".go.buildinfo") ||
		    has_section_Elf32_Ehdr(m, size, ".note.go.buildid");
	} else {
		munmap(m, size);
		return 0;
	}
	/* Stripped of section headers: the build info blob is still there. */
	if (!go && memmem(m, size, GO_BUILDINFO_MAGIC,
	    sizeof(GO_BUILDINFO_MAGIC) - 1) != NULL)
		go = true;
	if (go) {
		snprintf(why, cap, "%s is a Go program: Go makes its own "
		    "system calls, so LD_PRELOAD cannot redirect them", path);
		rc = -1;
	} else if (interp == 0) {
		snprintf(why, cap, "%s is statically linked: LD_PRELOAD "
		    "cannot work in it", path);
		rc = -1;
	}
	munmap(m, size);
	return rc;
}

/* libmpgw.so next to this binary, or in ../lib/mpgw/ (make install). */
static int
find_lib(char *out, size_t cap)
{
	const char *env = getenv("MPGW_LIB");
	char self[PATH_MAX], *slash;
	ssize_t n;

	if (env != NULL && env[0] != '\0') {
		if ((size_t)snprintf(out, cap, "%s", env) >= cap)
			return -1;
		return access(out, R_OK);
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -1;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL)
		return -1;
	*slash = '\0';
	if ((size_t)snprintf(out, cap, "%s/%s", self, LIBNAME) < cap &&
	    access(out, R_OK) == 0)
		return 0;
	if ((size_t)snprintf(out, cap, "%s/../lib/mpgw/%s", self, LIBNAME) <
	    cap && access(out, R_OK) == 0)
		return 0;
	errno = ENOENT;
	return -1;
}

int
main(int argc, char **argv)
{
	char cmd[PATH_MAX], lib[PATH_MAX], cfgpath[PATH_MAX], why[PATH_MAX + 128];
	char err[512], *preload;
	const char *cfg = NULL, *old;
	struct shim_conf c;
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "+c:dh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cfg = optarg;
			break;
		case 'd':
			setenv("MPGW_DEBUG", "1", 1);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (cfg != NULL) {
		if (realpath(cfg, cfgpath) == NULL) {
			fprintf(stderr, "%s: %s: %s\n", prog, cfg,
			    strerror(errno));
			return 2;
		}
		setenv("MPGW_CONFIG", cfgpath, 1);
	}
	cfg = getenv("MPGW_CONFIG");
	shim_conf_defaults(&c);
	if ((cfg != NULL && cfg[0] != '\0' &&
	    shim_conf_load(&c, cfg, err, sizeof(err)) == -1) ||
	    shim_conf_env(&c, err, sizeof(err)) == -1 ||
	    shim_conf_finish(&c, getaddrinfo, freeaddrinfo, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "%s: configuration: %s\n", prog, err);
		return 2;
	}
	explicit_bzero(&c, sizeof(c));
	if (resolve_cmd(argv[optind], cmd, sizeof(cmd)) == -1) {
		fprintf(stderr, "%s: %s: command not found\n", prog,
		    argv[optind]);
		return 127;
	}
	if (check_program(cmd, why, sizeof(why), 0) == -1) {
		fprintf(stderr, "%s: refusing to run %s: %s\n", prog,
		    argv[optind], why);
		return 126;
	}
	if (find_lib(lib, sizeof(lib)) == -1) {
		fprintf(stderr, "%s: cannot find %s (set MPGW_LIB)\n", prog,
		    LIBNAME);
		return 2;
	}
	old = getenv("LD_PRELOAD");
	if (old != NULL && old[0] != '\0') {
		size_t n = strlen(lib) + strlen(old) + 2;

		if ((preload = malloc(n)) == NULL) {
			perror(prog);
			return 2;
		}
		snprintf(preload, n, "%s:%s", lib, old);
	} else {
		preload = lib;
	}
	setenv("LD_PRELOAD", preload, 1);
	execv(cmd, argv + optind);
	fprintf(stderr, "%s: %s: %s\n", prog, cmd, strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
