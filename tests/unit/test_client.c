/*
 * Unit tests of libsnapclient's connection half (client/lib/client.c,
 * client/lib/uffd.c), without a daemon.
 *
 * Where a conversation is needed, a TEST PEER thread plays snapd's side of
 * the protocol from a script over a real Unix socket in a temporary
 * directory: it is not snapd, only enough of it to check that the library
 * matches replies by id, queues events that arrive while it waits, passes
 * the userfaultfd and keeps no copy, populates regions when the greeting
 * says it must, and reports a vanished daemon as ECONNRESET.
 *
 * The main thread runs the library; each scenario runs one peer thread.
 * Exit 0 when every check passed, 1 otherwise.
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "compat.h"
#include "protocol.h"
#include "client-internal.h"
#include "snapclient.h"

static int	failures;

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "FAIL %s:%d: %s: ", __func__, __LINE__,	\
		    #cond);						\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		failures++;						\
	}								\
} while (0)

/* ---- the test peer ------------------------------------------------------- */

struct peer {
	char		 dir[64];
	char		 path[96];
	int		 listen_fd;
	int		 fd;		/* the accepted connection */
	pthread_t	 thread;
	void		 (*script)(struct peer *);
	const char	*greeting;
	char		 buf[65536];
	size_t		 len;
	int		 passed_fd;	/* last fd received with SCM_RIGHTS */
	char		 error[512];	/* first thing the peer found wrong */
	void		*arg;		/* scenario data */
};

static void
peer_fail(struct peer *p, const char *fmt, ...)
{
	va_list	 ap;

	if (p->error[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(p->error, sizeof(p->error), fmt, ap);
	va_end(ap);
}

static void
peer_send(struct peer *p, const char *line)
{
	size_t	 len = strlen(line);

	if (send(p->fd, line, len, MSG_NOSIGNAL) != (ssize_t)len ||
	    send(p->fd, "\n", 1, MSG_NOSIGNAL) != 1)
		peer_fail(p, "test peer: send: %s", strerror(errno));
}

/* Read one message; fds that come with it land in p->passed_fd. */
static json_t *
peer_recv(struct peer *p)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * 4)];
	} cbuf;
	struct msghdr	 msg;
	struct cmsghdr	*cmsg;
	struct iovec	 iov;
	json_error_t	 jerr;
	json_t		*obj;
	char		*nl;
	ssize_t		 n;

	while ((nl = memchr(p->buf, '\n', p->len)) == NULL) {
		iov.iov_base = p->buf + p->len;
		iov.iov_len = sizeof(p->buf) - p->len - 1;
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		n = recvmsg(p->fd, &msg, MSG_CMSG_CLOEXEC);
		if (n <= 0) {
			peer_fail(p, "test peer: recvmsg: %s",
			    n == 0 ? "EOF" : strerror(errno));
			return NULL;
		}
		for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL;
		    cmsg = CMSG_NXTHDR(&msg, cmsg)) {
			if (cmsg->cmsg_level == SOL_SOCKET &&
			    cmsg->cmsg_type == SCM_RIGHTS)
				memcpy(&p->passed_fd, CMSG_DATA(cmsg),
				    sizeof(int));
		}
		p->len += (size_t)n;
	}
	*nl = '\0';
	obj = json_loads(p->buf, 0, &jerr);
	if (obj == NULL)
		peer_fail(p, "test peer: client sent bad JSON: %s: %s",
		    jerr.text, p->buf);
	p->len -= (size_t)(nl + 1 - p->buf);
	memmove(p->buf, nl + 1, p->len);
	return obj;
}

/* Receive a command, check it is cmd, return it (for its id/arguments). */
static json_t *
peer_expect(struct peer *p, const char *cmd)
{
	json_t		*m = peer_recv(p);
	const char	*got;

	if (m == NULL)
		return NULL;
	got = json_string_value(json_object_get(m, "execute"));
	if (got == NULL || strcmp(got, cmd) != 0) {
		peer_fail(p, "test peer: expected %s, got %s", cmd,
		    got != NULL ? got : "no execute");
		json_decref(m);
		return NULL;
	}
	return m;
}

/* Reply to m with a return value given as JSON text. */
static void
peer_reply(struct peer *p, const json_t *m, const char *ret)
{
	char	*id = json_dumps(json_object_get(m, "id"), JSON_ENCODE_ANY);
	char	 line[8192];

	snprintf(line, sizeof(line), "{\"return\": %s, \"id\": %s}", ret,
	    id != NULL ? id : "null");
	free(id);
	peer_send(p, line);
}

static void
peer_handshake(struct peer *p)
{
	json_t	*m;

	peer_send(p, p->greeting);
	if ((m = peer_expect(p, "qmp_capabilities")) == NULL)
		return;
	peer_reply(p, m, "{}");
	json_decref(m);
}

static void *
peer_main(void *arg)
{
	struct peer	*p = arg;

	p->fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (p->fd == -1) {
		peer_fail(p, "test peer: accept: %s", strerror(errno));
		return NULL;
	}
	p->script(p);
	close(p->fd);
	return NULL;
}

#define GREETING_WP \
	"{\"QMP\": {\"version\": {\"qemu\": {\"major\": 0, \"minor\": 1, " \
	"\"micro\": 0}, \"package\": \"snapd 0.1.0\"}, \"capabilities\": [], " \
	"\"protocol\": 2, \"features\": {\"wp-unpopulated\": true, " \
	"\"wp-async\": true, \"pagemap-scan\": true}}}"
#define GREETING_NO_WP \
	"{\"QMP\": {\"version\": {\"qemu\": {\"major\": 0, \"minor\": 1, " \
	"\"micro\": 0}, \"package\": \"snapd 0.1.0\"}, \"capabilities\": [], " \
	"\"protocol\": 2, \"features\": {\"wp-unpopulated\": false, " \
	"\"wp-async\": false, \"pagemap-scan\": false}}}"

static void
peer_start(struct peer *p, void (*script)(struct peer *), const char *greeting,
    void *arg)
{
	struct sockaddr_un	 sun;

	memset(p, 0, sizeof(*p));
	p->script = script;
	p->greeting = greeting;
	p->arg = arg;
	p->passed_fd = -1;
	snprintf(p->dir, sizeof(p->dir), "/tmp/test_client.XXXXXX");
	if (mkdtemp(p->dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(p->path, sizeof(p->path), "%s/s.sock", p->dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", p->path);
	p->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->listen_fd == -1 ||
	    bind(p->listen_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(p->listen_fd, 4) == -1) {
		fprintf(stderr, "test peer: listen %s: %s\n", p->path,
		    strerror(errno));
		exit(1);
	}
	if ((errno = pthread_create(&p->thread, NULL, peer_main, p)) != 0) {
		perror("pthread_create");
		exit(1);
	}
}

/* Join the peer and report what it found wrong. */
static void
peer_finish(struct peer *p, const char *scenario)
{
	pthread_join(p->thread, NULL);
	close(p->listen_fd);
	if (p->passed_fd != -1)
		close(p->passed_fd);
	unlink(p->path);
	rmdir(p->dir);
	if (p->error[0] != '\0') {
		fprintf(stderr, "FAIL %s: %s\n", scenario, p->error);
		failures++;
	}
}

/* ---- helpers ------------------------------------------------------------- */

static int
is_userfaultfd(int fd)
{
	char	 link[64], target[128];
	ssize_t	 n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, target, sizeof(target) - 1)) == -1)
		return 0;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[userfaultfd]") == 0;
}

static int
count_userfaultfds(void)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' && is_userfaultfd(atoi(de->d_name)))
			n++;
	}
	closedir(d);
	return n;
}

static const char *
event_name(const char *line)
{
	static char	 name[64];
	json_t		*m = json_loads(line, 0, NULL);

	snprintf(name, sizeof(name), "%s",
	    m != NULL && json_is_string(json_object_get(m, "event")) ?
	    json_string_value(json_object_get(m, "event")) : "(not an event)");
	json_decref(m);
	return name;
}

/* ---- tests without a peer ------------------------------------------------ */

static void
test_connect_nonexistent_socket_says_why(void)
{
	struct snap_client	*c;

	c = snap_connect("/nonexistent/snapd-test/s.sock");
	CHECK(c == NULL, "connected to a nonexistent socket");
	CHECK(errno == ENOENT, "errno %d (%s)", errno, strerror(errno));
	CHECK(strstr(snap_strerror(NULL), "/nonexistent/snapd-test/s.sock") &&
	    strstr(snap_strerror(NULL), strerror(ENOENT)),
	    "message \"%s\" does not name the socket and the reason",
	    snap_strerror(NULL));
	snap_close(c);
}

static void
test_connect_honours_snapd_socket_env(void)
{
	struct snap_client	*c;

	setenv(SNAPD_SOCKET_ENV, "/nonexistent/from-env.sock", 1);
	c = snap_connect(NULL);
	unsetenv(SNAPD_SOCKET_ENV);
	CHECK(c == NULL && strstr(snap_strerror(NULL),
	    "/nonexistent/from-env.sock") != NULL,
	    "$SNAPD_SOCKET ignored: \"%s\"", snap_strerror(NULL));
	snap_close(c);
}

static void
test_connect_path_too_long(void)
{
	char	 path[200];

	memset(path, 'x', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	CHECK(snap_connect(path) == NULL && errno == ENAMETOOLONG,
	    "errno %s", strerror(errno));
}

/* Returns 0 if the test ran, 77-like 1 if userfaultfd is not available. */
static int
test_uffd_create_gives_fresh_userfaultfd(void)
{
	struct snap_client	 c;
	struct uffdio_api	 api;
	int			 fd, fl;

	memset(&c, 0, sizeof(c));
	if ((fd = sc_uffd_create(&c)) == -1) {
		fprintf(stderr, "skip uffd test: %s\n", sc_error(&c));
		CHECK(c.err.msg[0] != '\0', "no message on failure");
		return 1;
	}
	CHECK(is_userfaultfd(fd), "fd %d is not a userfaultfd", fd);
	fl = fcntl(fd, F_GETFL);
	CHECK(fl != -1 && (fl & O_NONBLOCK), "uffd is not O_NONBLOCK");
	fl = fcntl(fd, F_GETFD);
	CHECK(fl != -1 && (fl & FD_CLOEXEC), "uffd is not FD_CLOEXEC");
	/* UFFDIO_API succeeds only once: it must be left to snapd. */
	memset(&api, 0, sizeof(api));
	api.api = UFFD_API;
	CHECK(ioctl(fd, UFFDIO_API, &api) == 0,
	    "UFFDIO_API on a fresh uffd: %s", strerror(errno));
	close(fd);
	return 0;
}

static void
test_populate_faults_pages_in(void)
{
	struct snap_client	 c;
	struct snap_region	 r;
	unsigned char		 vec[16];
	long			 pg = sysconf(_SC_PAGESIZE);
	char			*mem;
	int			 i, resident = 0;

	memset(&c, 0, sizeof(c));
	mem = mmap(NULL, 16 * pg, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(mem != MAP_FAILED, "mmap: %s", strerror(errno));
	if (mem == MAP_FAILED)
		return;
	mem[3 * pg] = 42;
	r.start = (uintptr_t)mem;
	r.length = 16 * pg;
	r.name = "t";
	CHECK(sc_regions_populate(&c, &r, 1) == 0, "%s", sc_error(&c));
	mincore(mem, 16 * pg, vec);
	for (i = 0; i < 16; i++)
		resident += vec[i] & 1;
	CHECK(resident == 16, "%d of 16 pages resident after populate",
	    resident);
	CHECK(mem[3 * pg] == 42 && mem[5 * pg] == 0, "populate changed data");

	/* A read-only region cannot be populated for writing: say so. */
	mprotect(mem, 16 * pg, PROT_READ);
	CHECK(sc_regions_populate(&c, &r, 1) == -1 &&
	    strstr(c.err.msg, "region 0 (t)") != NULL,
	    "read-only region: \"%s\"", c.err.msg);
	munmap(mem, 16 * pg);
}

/* ---- scenarios with the test peer ---------------------------------------- */

/* An event and a stale reply arrive before the reply to a raw command. */
static void
script_interleaved(struct peer *p)
{
	json_t	*m;

	peer_handshake(p);
	if ((m = peer_recv(p)) == NULL)
		return;
	if (strcmp(json_string_value(json_object_get(m, "id")) ?: "",
	    "cmd-7") != 0)
		peer_fail(p, "test peer: raw command's id not kept");
	peer_send(p, "{\"event\": \"SNAPSHOT_PROGRESS\", \"data\": {\"id\": 3,"
	    " \"pages-saved\": 1, \"pages-total\": 2}, \"timestamp\": "
	    "{\"seconds\": 1, \"microseconds\": 2}}");
	peer_send(p, "{\"return\": {\"stale\": true}, \"id\": 99}");
	peer_reply(p, m, "{\"version\": \"0.1.0\", \"pid\": 1}");
	json_decref(m);
	/* A second command, multi-line on the client's side. */
	if ((m = peer_expect(p, "query-version")) == NULL)
		return;
	if (json_object_get(m, "id") != NULL)
		peer_fail(p, "test peer: an id was added to a raw command");
	peer_send(p, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	    "\"no\"}}");
	json_decref(m);
}

static void
test_reply_matched_event_queued(void)
{
	struct peer		 p;
	struct snap_client	*c;
	char			*reply, *ev;
	json_t			*r;

	peer_start(&p, script_interleaved, GREETING_WP, NULL);
	c = snap_connect(p.path);
	CHECK(c != NULL, "connect: %s", snap_strerror(NULL));
	if (c == NULL) {
		peer_finish(&p, __func__);
		return;
	}
	reply = snap_command(c, "{\"execute\": \"query-status\", "
	    "\"id\": \"cmd-7\"}");
	CHECK(reply != NULL, "%s", snap_strerror(c));
	r = reply != NULL ? json_loads(reply, 0, NULL) : NULL;
	CHECK(json_is_object(json_object_get(r, "return")) &&
	    json_integer_value(json_object_get(json_object_get(r, "return"),
	    "pid")) == 1, "wrong reply: %s", reply != NULL ? reply : "none");
	json_decref(r);
	free(reply);

	reply = snap_command(c, "{\"execute\":\n \"query-version\"}");
	CHECK(reply != NULL && strstr(reply, "GenericError") != NULL,
	    "error reply not returned: %s", reply ? reply : snap_strerror(c));
	free(reply);

	ev = snap_next_event(c, 0);
	CHECK(ev != NULL && strcmp(event_name(ev), "SNAPSHOT_PROGRESS") == 0,
	    "queued event lost: %s", ev ? ev : snap_strerror(c));
	free(ev);
	CHECK(snap_command(c, "[1, 2]") == NULL && errno == EINVAL,
	    "a JSON array was accepted as a command");
	snap_close(c);
	peer_finish(&p, __func__);
}

/* query-snapshots says running; progress, then completion. */
static void
script_wait_running(struct peer *p)
{
	json_t	*m;

	peer_handshake(p);
	if ((m = peer_expect(p, "query-snapshots")) == NULL)
		return;
	peer_reply(p, m, "[{\"id\": 4, \"name\": \"other\", \"state\": "
	    "\"completed\"}, {\"id\": 5, \"name\": \"s5\", \"state\": "
	    "\"running\", \"pages-total\": 10, \"pages-saved\": 3}]");
	json_decref(m);
	peer_send(p, "{\"event\": \"SNAPSHOT_PROGRESS\", \"data\": {\"id\": 5,"
	    " \"pages-saved\": 6, \"pages-total\": 10}, \"timestamp\": "
	    "{\"seconds\": 1, \"microseconds\": 2}}");
	peer_send(p, "{\"event\": \"SNAPSHOT_COMPLETED\", \"data\": {\"id\": 4,"
	    " \"name\": \"other\", \"file\": \"/x/other.zsnap\"}, "
	    "\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}");
	peer_send(p, "{\"event\": \"SNAPSHOT_COMPLETED\", \"data\": {\"id\": 5,"
	    " \"name\": \"s5\", \"file\": \"/x/s5.zsnap\", \"bytes-written\": "
	    "1234, \"pages-total\": 10, \"pages-faulted\": 2, \"pages-zero\": 7, "
	    "\"pages-lost\": 0, \"buffer-full-waits\": 0, \"buffer-peak\": "
	    "8192, \"stall-max-us\": 55, \"arm-us\": 12, \"duration-us\": "
	    "999}, \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}");
	/* Then the snapshot that failed (asked about second). */
	if ((m = peer_expect(p, "query-snapshots")) == NULL)
		return;
	peer_send(p, "{\"event\": \"SNAPSHOT_FAILED\", \"data\": {\"id\": 6, "
	    "\"name\": \"s6\", \"error\": \"process_vm_readv: No such "
	    "process\", \"cancelled\": false}, \"timestamp\": {\"seconds\": "
	    "1, \"microseconds\": 2}}");
	peer_reply(p, m, "[{\"id\": 6, \"name\": \"s6\", \"state\": "
	    "\"running\"}]");
	json_decref(m);
	/* Then one that never ends, then the daemon goes away. */
	if ((m = peer_expect(p, "query-snapshots")) == NULL)
		return;
	peer_reply(p, m, "[{\"id\": 7, \"state\": \"running\"}]");
	json_decref(m);
	if ((m = peer_expect(p, "query-snapshots")) == NULL)
		return;
	peer_reply(p, m, "[{\"id\": 7, \"state\": \"running\"}]");
	json_decref(m);
	usleep(100000);
}

static void
test_wait_sees_events_and_timeouts(void)
{
	struct peer		 p;
	struct snap_client	*c;
	struct snap_result	 res;
	char			*ev;
	int			 r;

	peer_start(&p, script_wait_running, GREETING_WP, NULL);
	c = snap_connect(p.path);
	CHECK(c != NULL, "connect: %s", snap_strerror(NULL));
	if (c == NULL) {
		peer_finish(&p, __func__);
		return;
	}
	r = snap_wait(c, 5, &res, 5000);
	CHECK(r == 0, "snap_wait 5: %s", snap_strerror(c));
	CHECK(res.id == 5 && res.completed && strcmp(res.name, "s5") == 0 &&
	    strcmp(res.file, "/x/s5.zsnap") == 0 && res.size == 1234 &&
	    res.pages == 10 && res.pages_faulted == 2 && res.pages_zero == 7 &&
	    res.buffer_peak == 8192 && res.stall_max_us == 55 &&
	    res.arm_us == 12 && res.duration_us == 999,
	    "result not filled from SNAPSHOT_COMPLETED");

	/* The completion arrived before the query's reply: still seen. */
	r = snap_wait(c, 6, &res, 5000);
	CHECK(r == 0 && !res.completed &&
	    strstr(res.error, "No such process") != NULL,
	    "snap_wait 6: r %d completed %d error \"%s\" (%s)", r,
	    res.completed, res.error, snap_strerror(c));

	/* Other events stayed queued, in order. */
	ev = snap_next_event(c, 0);
	CHECK(ev != NULL && strstr(ev, "SNAPSHOT_PROGRESS") != NULL,
	    "first queued event: %s", ev ? ev : snap_strerror(c));
	free(ev);
	ev = snap_next_event(c, 0);
	CHECK(ev != NULL && strstr(ev, "\"other\"") != NULL,
	    "second queued event: %s", ev ? ev : snap_strerror(c));
	free(ev);
	ev = snap_next_event(c, 0);
	CHECK(ev == NULL && errno == ETIMEDOUT, "unexpected event %s", ev);
	free(ev);

	r = snap_wait(c, 7, &res, 200);
	CHECK(r == -1 && errno == ETIMEDOUT, "snap_wait 7: r %d errno %s",
	    r, strerror(errno));
	r = snap_wait(c, 7, &res, -1);
	CHECK(r == -1 && errno == ECONNRESET &&
	    strstr(snap_strerror(c), "closed") != NULL,
	    "daemon gone: r %d errno %s: %s", r, strerror(errno),
	    snap_strerror(c));
	CHECK(snap_cancel(c, 7) == -1 && errno == ECONNRESET,
	    "a call after EOF: errno %s", strerror(errno));
	snap_close(c);
	peer_finish(&p, __func__);
}

static void
script_errors(struct peer *p)
{
	json_t	*m;

	peer_handshake(p);
	if ((m = peer_expect(p, "snapshot-cancel")) == NULL)
		return;
	if (json_integer_value(json_object_get(json_object_get(m,
	    "arguments"), "id")) != 42)
		peer_fail(p, "test peer: snapshot-cancel without id 42");
	peer_send(p, "{\"error\": {\"class\": \"NotFound\", \"desc\": "
	    "\"no snapshot 42\"}, \"id\": 12345}");	/* stale */
	{
		char	*id = json_dumps(json_object_get(m, "id"),
		    JSON_ENCODE_ANY);
		char	 line[256];

		snprintf(line, sizeof(line), "{\"error\": {\"class\": "
		    "\"NotFound\", \"desc\": \"snapshot 42: no such snapshot\"},"
		    " \"id\": %s}", id);
		free(id);
		peer_send(p, line);
	}
	json_decref(m);
	if ((m = peer_expect(p, "query-snapshots")) == NULL)
		return;
	peer_reply(p, m, "[]");
	json_decref(m);
}

static void
test_error_replies_set_errno_and_message(void)
{
	struct peer		 p;
	struct snap_client	*c;
	struct snap_result	 res;

	peer_start(&p, script_errors, GREETING_WP, NULL);
	c = snap_connect(p.path);
	CHECK(c != NULL, "connect: %s", snap_strerror(NULL));
	if (c == NULL) {
		peer_finish(&p, __func__);
		return;
	}
	CHECK(snap_cancel(c, 42) == -1 && errno == ENOENT &&
	    strcmp(snap_strerror(c), "snapshot-cancel: snapshot 42: no such "
	    "snapshot") == 0, "errno %s message \"%s\"", strerror(errno),
	    snap_strerror(c));
	CHECK(snap_wait(c, 9, &res, 1000) == -1 && errno == ENOENT,
	    "waiting for an unknown snapshot: errno %s", strerror(errno));
	snap_close(c);
	peer_finish(&p, __func__);
}

static void
script_bad_protocol(struct peer *p)
{
	peer_send(p, "{\"QMP\": {\"protocol\": 99, \"capabilities\": []}}");
	usleep(200000);
}

static void
test_connect_refuses_other_protocol(void)
{
	struct peer	 p;

	peer_start(&p, script_bad_protocol, NULL, NULL);
	CHECK(snap_connect(p.path) == NULL && errno == EPROTONOSUPPORT &&
	    strstr(snap_strerror(NULL), "protocol 99") != NULL,
	    "errno %s: %s", strerror(errno), snap_strerror(NULL));
	peer_finish(&p, __func__);
}

struct start_check {
	uint64_t	 start;
	uint64_t	 length;
	int		 uffds_at_start;	/* userfaultfds in this process */
	int		 got_uffd;
};

/* getfd + snapshot-start: the uffd arrives, the client's copy is gone. */
static void
script_start(struct peer *p)
{
	struct start_check	*sc = p->arg;
	json_t			*m, *args, *r0;
	const char		*fdname;

	peer_handshake(p);
	if ((m = peer_expect(p, "getfd")) == NULL)
		return;
	fdname = json_string_value(json_object_get(json_object_get(m,
	    "arguments"), "fdname"));
	sc->got_uffd = p->passed_fd != -1 && is_userfaultfd(p->passed_fd);
	peer_reply(p, m, "{}");
	if ((args = peer_expect(p, "snapshot-start")) == NULL) {
		json_decref(m);
		return;
	}
	/* By now the library must have closed its own copy. */
	sc->uffds_at_start = count_userfaultfds();
	r0 = json_array_get(json_object_get(json_object_get(args,
	    "arguments"), "regions"), 0);
	if (fdname == NULL || strcmp(json_string_value(json_object_get(
	    json_object_get(args, "arguments"), "uffd")) ?: "", fdname) != 0)
		peer_fail(p, "test peer: snapshot-start names another uffd");
	if ((uint64_t)json_integer_value(json_object_get(r0, "start")) !=
	    sc->start ||
	    (uint64_t)json_integer_value(json_object_get(r0, "length")) !=
	    sc->length ||
	    strcmp(json_string_value(json_object_get(r0, "name")) ?: "",
	    "heap") != 0)
		peer_fail(p, "test peer: region 0 wrong in snapshot-start");
	if (json_integer_value(json_object_get(json_object_get(args,
	    "arguments"), "level")) != 3 ||
	    strcmp(json_string_value(json_object_get(json_object_get(args,
	    "arguments"), "name")) ?: "", "t1") != 0)
		peer_fail(p, "test peer: options not passed");
	peer_send(p, "{\"event\": \"SNAPSHOT_ARMED\", \"data\": {\"id\": 77}}");
	peer_reply(p, args, "{\"id\": 77, \"name\": \"t1\", \"file\": "
	    "\"/x/t1.zsnap\", \"arm-us\": 5, \"pages-total\": 8}");
	json_decref(m);
	json_decref(args);
}

static void
run_start(const char *greeting, int expect_populated)
{
	struct start_check	 sc;
	struct snap_options	 opts = { .name = "t1", .level = 3 };
	struct snap_region	 r;
	struct snap_client	*c;
	struct peer		 p;
	unsigned char		 vec[8];
	long			 pg = sysconf(_SC_PAGESIZE);
	uint64_t		 id = 0;
	char			*mem;
	int			 i, resident = 0;

	mem = mmap(NULL, 8 * pg, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		CHECK(0, "mmap: %s", strerror(errno));
		return;
	}
	memset(&sc, 0, sizeof(sc));
	sc.start = (uintptr_t)mem;
	sc.length = 8 * pg;
	r.start = sc.start;
	r.length = sc.length;
	r.name = "heap";
	peer_start(&p, script_start, greeting, &sc);
	c = snap_connect(p.path);
	CHECK(c != NULL, "connect: %s", snap_strerror(NULL));
	if (c != NULL) {
		CHECK(snap_start(c, &r, 1, &opts, &id) == 0, "snap_start: %s",
		    snap_strerror(c));
		CHECK(id == 77, "id %" PRIu64, id);
	}
	peer_finish(&p, expect_populated ? "snap_start (populate)" :
	    "snap_start");
	CHECK(sc.got_uffd, "the peer did not receive a userfaultfd");
	CHECK(sc.uffds_at_start == 1, "%d userfaultfds open when "
	    "snapshot-start arrived: the library kept its copy",
	    sc.uffds_at_start);
	CHECK(count_userfaultfds() == 0, "userfaultfd left open");
	mincore(mem, 8 * pg, vec);
	for (i = 0; i < 8; i++)
		resident += vec[i] & 1;
	CHECK(expect_populated ? resident == 8 : resident == 0,
	    "%d of 8 pages resident; greeting %s populating",
	    resident, expect_populated ? "asks for" : "forbids");
	if (c != NULL) {
		char	*ev = snap_next_event(c, 0);

		CHECK(ev != NULL && strstr(ev, "SNAPSHOT_ARMED") != NULL,
		    "ARMED event lost: %s", ev ? ev : snap_strerror(c));
		free(ev);
	}
	snap_close(c);
	munmap(mem, 8 * pg);
}

static void
test_start_bad_arguments(void)
{
	struct snap_client	 c;
	struct snap_region	 r = { .start = 4096 + 1, .length = 4096 };
	uint64_t		 id;

	memset(&c, 0, sizeof(c));
	c.fd = -1;
	CHECK(snap_start(&c, &r, 1, NULL, &id) == -1 && errno == EINVAL &&
	    strstr(c.err.msg, "page-aligned") != NULL, "unaligned region: %s",
	    c.err.msg);
	CHECK(snap_start(&c, &r, 0, NULL, &id) == -1 && errno == EINVAL,
	    "no regions accepted");
}

int
main(void)
{
	int	 have_uffd;

	test_connect_nonexistent_socket_says_why();
	test_connect_honours_snapd_socket_env();
	test_connect_path_too_long();
	have_uffd = test_uffd_create_gives_fresh_userfaultfd() == 0;
	test_populate_faults_pages_in();
	test_reply_matched_event_queued();
	test_wait_sees_events_and_timeouts();
	test_error_replies_set_errno_and_message();
	test_connect_refuses_other_protocol();
	test_start_bad_arguments();
	if (have_uffd) {
		run_start(GREETING_WP, 0);
		run_start(GREETING_NO_WP, 1);
	} else
		fprintf(stderr, "snap_start scenarios skipped: no "
		    "userfaultfd here\n");
	if (failures > 0) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("all client checks passed\n");
	return 0;
}
