/*
 * libsnapclient's connection to snapd: connecting and negotiating, sending
 * commands and matching their replies, queueing events, and the snapshot
 * calls built on them (snap_start, snap_wait, snap_cancel).  The protocol
 * is proto/PROTOCOL.md: newline-delimited JSON in QMP's manner.
 *
 * All of it runs on the caller's thread; a snap_client is used by one
 * thread at a time (snapclient.h), so nothing is locked.
 *
 * The socket is non-blocking and every wait is a poll(2) against a
 * deadline, so no call blocks longer than its timeout.  Writes use
 * MSG_NOSIGNAL: a library must not install a SIGPIPE handler, and a dead
 * daemon must give an error, not kill the host.
 *
 * Replies carry the id of their command.  A reply with an id we are not
 * waiting for belongs to a command that timed out earlier and is dropped.
 * Events that arrive while a reply is awaited are queued (at most
 * SC_EVENTS_MAX, oldest dropped first) for snap_wait() and
 * snap_next_event().  Note that snap_fd() becoming readable is then not
 * the only sign of a pending event: call snap_next_event(c, 0) after every
 * other call to drain the queue.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "protocol.h"
#include "client-internal.h"

#define UFFD_FDNAME	"snapclient-uffd"

/* ---- time ---------------------------------------------------------------- */

static int64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A deadline in CLOCK_MONOTONIC ms, or -1 for none. */
static int64_t
deadline_after(int timeout_ms)
{
	if (timeout_ms < 0)
		return -1;
	return now_ms() + timeout_ms;
}

/* What is left until deadline, as a poll(2) timeout. */
static int
time_left(int64_t deadline)
{
	int64_t	 left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	if (left < 0)
		return 0;
	if (left > INT32_MAX)
		return INT32_MAX;
	return (int)left;
}

/* ---- errors -------------------------------------------------------------- */

/* Put "prefix: " in front of c's current message, keeping errno. */
static void
error_prefix(struct snap_client *c, const char *prefix)
{
	char	 msg[SC_ERROR_MAX];
	int	 saved = errno;

	snprintf(msg, sizeof(msg), "%s", c->err.msg);
	sc_set_error(c, saved, "%s: %s", prefix, msg);
}

/* The errno that best says what an error reply's class means. */
static int
error_class_errno(const char *class)
{
	static const struct {
		const char	*class;
		int		 err;
	} map[] = {
		{ SNAPD_ERR_COMMAND_NOT_FOUND,	EOPNOTSUPP },
		{ SNAPD_ERR_INVALID,		EINVAL },
		{ SNAPD_ERR_PERMISSION,		EPERM },
		{ SNAPD_ERR_NOT_FOUND,		ENOENT },
		{ SNAPD_ERR_BUSY,		EBUSY },
		{ SNAPD_ERR_PARSE,		EPROTO },
		{ SNAPD_ERR_TOO_LARGE,		EMSGSIZE },
	};
	size_t	 i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(class, map[i].class) == 0)
			return map[i].err;
	}
	return EIO;
}

/* ---- the event queue ----------------------------------------------------- */

static void
event_push(struct snap_client *c, char *line)
{
	struct sc_event	*ev, *old;

	if ((ev = malloc(sizeof(*ev))) == NULL) {
		/* Losing an event beats failing the call that read it. */
		free(line);
		c->events_dropped++;
		return;
	}
	ev->line = line;
	TAILQ_INSERT_TAIL(&c->events, ev, entry);
	if (++c->nevents > SC_EVENTS_MAX) {
		old = TAILQ_FIRST(&c->events);
		TAILQ_REMOVE(&c->events, old, entry);
		free(old->line);
		free(old);
		c->nevents--;
		c->events_dropped++;
	}
}

static void
event_remove(struct snap_client *c, struct sc_event *ev)
{
	TAILQ_REMOVE(&c->events, ev, entry);
	c->nevents--;
	free(ev->line);
	free(ev);
}

/* ---- reading and writing lines ------------------------------------------- */

/*
 * Read one line (without its newline) into *line, malloc'ed.  Complete
 * lines already buffered are returned even after snapd went away.
 * Returns 0, or -1 with ETIMEDOUT, ECONNRESET (EOF), EMSGSIZE, ENOMEM or
 * the errno of poll/recv.
 */
static int
read_line(struct snap_client *c, int64_t deadline, char **line)
{
	struct pollfd	 pfd;
	char		*nl, *nbuf;
	size_t		 len, nsize;
	ssize_t		 n;
	int		 r;

	for (;;) {
		nl = c->rlen > 0 ? memchr(c->rbuf, '\n', c->rlen) : NULL;
		if (nl != NULL) {
			len = (size_t)(nl - c->rbuf);
			if ((*line = malloc(len + 1)) == NULL) {
				sc_set_error(c, ENOMEM, "reading from snapd: %m");
				return -1;
			}
			memcpy(*line, c->rbuf, len);
			(*line)[len] = '\0';
			c->rlen -= len + 1;
			memmove(c->rbuf, nl + 1, c->rlen);
			return 0;
		}
		if (c->dead) {
			sc_set_error(c, ECONNRESET,
			    "snapd closed the connection");
			return -1;
		}
		if (c->rlen >= SC_LINE_MAX) {
			c->dead = 1;
			sc_set_error(c, EMSGSIZE, "snapd sent a line longer "
			    "than %u bytes", SC_LINE_MAX);
			return -1;
		}
		if (c->rsize - c->rlen < 4096) {
			nsize = c->rsize == 0 ? 65536 : c->rsize * 2;
			if ((nbuf = realloc(c->rbuf, nsize)) == NULL) {
				sc_set_error(c, ENOMEM, "reading from snapd: %m");
				return -1;
			}
			c->rbuf = nbuf;
			c->rsize = nsize;
		}

		pfd.fd = c->fd;
		pfd.events = POLLIN;
		r = poll(&pfd, 1, time_left(deadline));
		if (r == -1) {
			if (errno == EINTR)
				continue;
			sc_set_error(c, errno, "poll on snapd's socket: %m");
			return -1;
		}
		if (r == 0) {
			sc_set_error(c, ETIMEDOUT, "no answer from snapd: %s",
			    strerror(ETIMEDOUT));
			return -1;
		}
		n = recv(c->fd, c->rbuf + c->rlen, c->rsize - c->rlen,
		    MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == EWOULDBLOCK)
				continue;
			if (errno == ECONNRESET)
				c->dead = 1;
			sc_set_error(c, errno, "reading from snapd: %m");
			return -1;
		}
		if (n == 0)
			c->dead = 1;	/* the loop says so after the lines */
		c->rlen += (size_t)n;
	}
}

/* Wait until the socket takes more bytes. */
static int
wait_writable(struct snap_client *c, int64_t deadline)
{
	struct pollfd	 pfd;
	int		 r;

	pfd.fd = c->fd;
	pfd.events = POLLOUT;
	do {
		r = poll(&pfd, 1, time_left(deadline));
	} while (r == -1 && errno == EINTR);
	if (r == -1) {
		sc_set_error(c, errno, "poll on snapd's socket: %m");
		return -1;
	}
	if (r == 0) {
		sc_set_error(c, ETIMEDOUT, "snapd does not read its socket: "
		    "%s", strerror(ETIMEDOUT));
		return -1;
	}
	return 0;
}

/*
 * Send buf (one message, newline included).  If *fdp is not -1, the fd
 * travels with the first byte (SCM_RIGHTS) and is closed here the moment
 * sendmsg() succeeded, *fdp set to -1: from then on snapd holds the only
 * copy, which is what lets the kernel drop every protection if snapd dies.
 */
static int
send_message(struct snap_client *c, const char *buf, size_t len, int *fdp,
    int64_t deadline)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cmsgbuf;
	struct msghdr	 msg;
	struct cmsghdr	*cmsg;
	struct iovec	 iov;
	size_t		 off = 0;
	ssize_t		 n;

	if (c->dead) {
		sc_set_error(c, ECONNRESET, "snapd closed the connection");
		return -1;
	}
	while (off < len) {
		iov.iov_base = (void *)(uintptr_t)(buf + off);
		iov.iov_len = len - off;
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		if (fdp != NULL && *fdp != -1) {
			memset(&cmsgbuf, 0, sizeof(cmsgbuf));
			msg.msg_control = cmsgbuf.buf;
			msg.msg_controllen = sizeof(cmsgbuf.buf);
			cmsg = CMSG_FIRSTHDR(&msg);
			cmsg->cmsg_level = SOL_SOCKET;
			cmsg->cmsg_type = SCM_RIGHTS;
			cmsg->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cmsg), fdp, sizeof(int));
		}
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (wait_writable(c, deadline) == -1)
					return -1;
				continue;
			}
			if (errno == EPIPE || errno == ECONNRESET) {
				c->dead = 1;
				sc_set_error(c, ECONNRESET, "writing to snapd: "
				    "%s (snapd closed the connection)",
				    strerror(errno));
				return -1;
			}
			sc_set_error(c, errno, "writing to snapd: %m");
			return -1;
		}
		if (fdp != NULL && *fdp != -1) {
			close(*fdp);
			*fdp = -1;
		}
		off += (size_t)n;
	}
	return 0;
}

/* ---- messages ------------------------------------------------------------ */

/*
 * Read one message: *msg the parsed object, *line its text (malloc'ed).
 */
static int
read_message(struct snap_client *c, int64_t deadline, json_t **msg,
    char **line)
{
	json_error_t	 jerr;
	json_t		*obj;

	if (read_line(c, deadline, line) == -1)
		return -1;
	obj = json_loads(*line, JSON_DECODE_ANY, &jerr);
	if (obj == NULL || !json_is_object(obj)) {
		sc_set_error(c, EPROTO, "snapd sent a line that is not a "
		    "JSON object: %s: \"%.80s\"",
		    obj == NULL ? jerr.text : "not an object", *line);
		json_decref(obj);
		free(*line);
		*line = NULL;
		return -1;
	}
	*msg = obj;
	return 0;
}

static int
message_is_event(const json_t *msg)
{
	return json_is_string(json_object_get(msg, "event"));
}

static int
message_is_reply(const json_t *msg)
{
	return json_object_get(msg, "return") != NULL ||
	    json_is_object(json_object_get(msg, "error"));
}

/*
 * Is reply the answer to the command sent with id (NULL: sent without)?
 * An error without an id answers whatever is pending: snapd cannot echo the
 * id of a line it could not parse.
 */
static int
reply_matches(const json_t *reply, const json_t *id)
{
	const json_t	*rid = json_object_get(reply, "id");

	if (id == NULL)
		return rid == NULL;
	if (rid == NULL)
		return json_object_get(reply, "error") != NULL;
	return json_equal(rid, id);
}

/*
 * Read until the reply to the command sent with id arrives, queueing every
 * event met on the way.  Returns the reply object and, if linep is not
 * NULL, its text.
 */
static int
await_reply(struct snap_client *c, const json_t *id, int64_t deadline,
    json_t **reply, char **linep)
{
	json_t	*msg;
	char	*line;

	for (;;) {
		if (read_message(c, deadline, &msg, &line) == -1)
			return -1;
		if (message_is_event(msg)) {
			event_push(c, line);
			json_decref(msg);
			continue;
		}
		if (message_is_reply(msg) && reply_matches(msg, id)) {
			*reply = msg;
			if (linep != NULL)
				*linep = line;
			else
				free(line);
			return 0;
		}
		/* A late reply to a command that timed out, or noise. */
		json_decref(msg);
		free(line);
	}
}

/*
 * Run one command: send {"execute", "arguments", "id"} (with fd attached if
 * fdp is given; see send_message()), wait for the reply and return its
 * "return" value in *ret (a new reference; may be NULL if ret is NULL).  An
 * error reply becomes -1 with errno from its class and the message
 * "CMD: desc".  args is stolen.
 */
static int
execute(struct snap_client *c, const char *cmd, json_t *args, int *fdp,
    int timeout_ms, json_t **ret)
{
	json_t		*msg, *id, *reply = NULL, *error;
	const char	*class, *desc;
	char		*text = NULL;
	size_t		 len;
	int64_t		 deadline = deadline_after(timeout_ms);
	int		 rc = -1;

	id = json_integer((json_int_t)++c->next_id);
	msg = json_object();
	if (id == NULL || msg == NULL ||
	    json_object_set_new(msg, "execute", json_string(cmd)) == -1 ||
	    (args != NULL && json_object_set(msg, "arguments", args) == -1) ||
	    json_object_set(msg, "id", id) == -1 ||
	    (text = json_dumps(msg, JSON_COMPACT)) == NULL) {
		sc_set_error(c, ENOMEM, "%s: building the command: %s", cmd,
		    strerror(ENOMEM));
		goto out;
	}
	len = strlen(text);
	text[len] = '\n';	/* json_dumps' NUL becomes the newline */
	if (send_message(c, text, len + 1, fdp, deadline) == -1 ||
	    await_reply(c, id, deadline, &reply, NULL) == -1) {
		error_prefix(c, cmd);
		goto out;
	}
	if ((error = json_object_get(reply, "error")) != NULL) {
		class = json_string_value(json_object_get(error, "class"));
		desc = json_string_value(json_object_get(error, "desc"));
		if (desc == NULL)
			desc = class != NULL ? class : "error without "
			    "description";
		/* snapd may name the command itself. */
		if (strncmp(desc, cmd, strlen(cmd)) == 0 &&
		    strncmp(desc + strlen(cmd), ": ", 2) == 0)
			sc_set_error(c, error_class_errno(class ? class : ""),
			    "%s", desc);
		else
			sc_set_error(c, error_class_errno(class ? class : ""),
			    "%s: %s", cmd, desc);
		goto out;
	}
	if (ret != NULL)
		*ret = json_incref(json_object_get(reply, "return"));
	rc = 0;
out:
	free(text);
	json_decref(msg);
	json_decref(args);
	json_decref(id);
	json_decref(reply);
	return rc;
}

/* ---- connecting ---------------------------------------------------------- */

static int
socket_connect(struct snap_client *c, const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		sc_set_error(c, ENAMETOOLONG, "connect %s: %m", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		sc_set_error(c, errno, "socket: %m");
		return -1;
	}
	/* Blocking for connect(): a full backlog makes a non-blocking
	 * AF_UNIX connect fail with EAGAIN instead of waiting. */
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno == EINTR)
			continue;
		sc_set_error(c, errno, "connect %s: %m", path);
		close(fd);
		return -1;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
		sc_set_error(c, errno, "fcntl O_NONBLOCK: %m");
		close(fd);
		return -1;
	}
	return fd;
}

/* Read and check the greeting; note the kernel features it reports. */
static int
read_greeting(struct snap_client *c)
{
	json_t		*msg, *qmp, *features, *proto, *pkg, *wp;
	char		*line;

	if (read_message(c, deadline_after(SC_REPLY_TIMEOUT_MS), &msg,
	    &line) == -1) {
		error_prefix(c, "greeting");
		return -1;
	}
	free(line);
	if (!json_is_object(qmp = json_object_get(msg, "QMP"))) {
		json_decref(msg);
		sc_set_error(c, EPROTO, "greeting: no \"QMP\" object: "
		    "not snapd");
		return -1;
	}
	proto = json_object_get(qmp, "protocol");
	if (!json_is_integer(proto) ||
	    json_integer_value(proto) != SNAPD_PROTOCOL_VERSION) {
		sc_set_error(c, EPROTONOSUPPORT, "greeting: snapd speaks "
		    "protocol %lld, this library %d",
		    json_is_integer(proto) ?
		    (long long)json_integer_value(proto) : -1LL,
		    SNAPD_PROTOCOL_VERSION);
		json_decref(msg);
		return -1;
	}
	c->protocol = (int)json_integer_value(proto);
	pkg = json_object_get(json_object_get(qmp, "version"), "package");
	if (json_is_string(pkg))
		snprintf(c->version, sizeof(c->version), "%s",
		    json_string_value(pkg));
	/* Absent means unknown: populate, which is always safe. */
	features = json_object_get(qmp, "features");
	wp = json_object_get(features, "wp-unpopulated");
	c->wp_unpopulated = json_is_true(wp);
	json_decref(msg);
	return 0;
}

struct snap_client *
snap_connect(const char *path)
{
	struct snap_client	*c;
	const char		*env;

	if (path == NULL) {
		env = getenv(SNAPD_SOCKET_ENV);
		path = env != NULL && *env != '\0' ? env :
		    SNAPD_DEFAULT_SOCKET;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		sc_set_error(NULL, ENOMEM, "connect %s: %m", path);
		return NULL;
	}
	c->fd = -1;
	TAILQ_INIT(&c->events);
	if ((c->fd = socket_connect(c, path)) == -1)
		goto fail;
	if (read_greeting(c) == -1 ||
	    execute(c, "qmp_capabilities", NULL, NULL, SC_REPLY_TIMEOUT_MS,
	    NULL) == -1) {
		error_prefix(c, path);
		goto fail;
	}
	return c;
fail:
	/* There is no client to ask: the thread's message says it. */
	sc_set_error(NULL, errno, "%s", c->err.msg);
	snap_close(c);
	return NULL;
}

void
snap_close(struct snap_client *c)
{
	struct sc_event	*ev;
	int		 saved = errno;

	if (c == NULL)
		return;
	while ((ev = TAILQ_FIRST(&c->events)) != NULL)
		event_remove(c, ev);
	if (c->fd != -1)
		close(c->fd);
	free(c->rbuf);
	free(c);
	errno = saved;
}

const char *
snap_strerror(struct snap_client *c)
{
	return sc_error(c);
}

int
snap_fd(const struct snap_client *c)
{
	return c != NULL ? c->fd : -1;
}

/* ---- snapshots ----------------------------------------------------------- */

static int
regions_check(struct snap_client *c, const struct snap_region *regions,
    size_t nregions)
{
	uint64_t	 mask = (uint64_t)sysconf(_SC_PAGESIZE) - 1;
	size_t		 i;

	if (regions == NULL || nregions == 0 ||
	    nregions > SNAPD_REGIONS_MAX) {
		sc_set_error(c, EINVAL, "snap_start: %zu regions: need 1 to "
		    "%d", regions == NULL ? 0 : nregions, SNAPD_REGIONS_MAX);
		return -1;
	}
	for (i = 0; i < nregions; i++) {
		if ((regions[i].start & mask) != 0 ||
		    (regions[i].length & mask) != 0 ||
		    regions[i].length == 0 ||
		    regions[i].start + regions[i].length < regions[i].start) {
			sc_set_error(c, EINVAL, "snap_start: region %zu "
			    "(0x%" PRIx64 ", %" PRIu64 " bytes): not a "
			    "non-empty page-aligned range", i,
			    regions[i].start, regions[i].length);
			return -1;
		}
	}
	return 0;
}

static json_t *
start_arguments(const struct snap_region *regions, size_t nregions,
    const struct snap_options *opts)
{
	json_t	*args, *array, *r;
	char	 name[16];
	size_t	 i;
	int	 bad = 0;

	args = json_object();
	array = json_array();
	if (args == NULL || array == NULL) {
		json_decref(args);
		json_decref(array);
		return NULL;
	}
	for (i = 0; i < nregions; i++) {
		snprintf(name, sizeof(name), "r%zu", i);
		r = json_pack("{s:I, s:I, s:s}",
		    "start", (json_int_t)regions[i].start,
		    "length", (json_int_t)regions[i].length,
		    "name", regions[i].name != NULL ? regions[i].name : name);
		bad |= json_array_append_new(array, r);
	}
	bad |= json_object_set_new(args, "uffd", json_string(UFFD_FDNAME));
	bad |= json_object_set_new(args, "regions", array);
	if (opts != NULL) {
		if (opts->name != NULL)
			bad |= json_object_set_new(args, "name",
			    json_string(opts->name));
		if (opts->format != NULL)
			bad |= json_object_set_new(args, "format",
			    json_string(opts->format));
		if (opts->level != 0)
			bad |= json_object_set_new(args, "level",
			    json_integer(opts->level));
		if (opts->buffer_size != 0)
			bad |= json_object_set_new(args, "buffer-size",
			    json_integer((json_int_t)opts->buffer_size));
		if (opts->prearm)
			bad |= json_object_set_new(args, "prearm", json_true());
		if (opts->test_hold != NULL) {
			json_t *hold = json_loads(opts->test_hold, 0, NULL);

			bad |= hold == NULL ||
			    json_object_set_new(args, "test-hold", hold);
		}
	}
	if (bad) {
		/* json_string() refuses invalid UTF-8 in a name, too. */
		json_decref(args);
		return NULL;
	}
	return args;
}

int
snap_start(struct snap_client *c, const struct snap_region *regions,
    size_t nregions, const struct snap_options *opts, uint64_t *id)
{
	json_t	*args, *getfd, *ret = NULL, *jid;
	int	 uffd;

	if (c == NULL) {
		sc_set_error(NULL, EINVAL, "snap_start: no client");
		return -1;
	}
	if (regions_check(c, regions, nregions) == -1)
		return -1;
	if (c->dead) {
		sc_set_error(c, ECONNRESET, "snap_start: snapd closed the "
		    "connection");
		return -1;
	}
	if ((args = start_arguments(regions, nregions, opts)) == NULL) {
		sc_set_error(c, EINVAL, "snap_start: cannot build the "
		    "arguments (out of memory, or a name not valid UTF-8)");
		return -1;
	}
	if ((getfd = json_pack("{s:s}", "fdname", UFFD_FDNAME)) == NULL) {
		json_decref(args);
		sc_set_error(c, ENOMEM, "snap_start: %m");
		return -1;
	}
	/* Before anything is sent: no hole may be left for snapd to
	 * write-protect if its kernel cannot protect unpopulated pages. */
	if (!c->wp_unpopulated &&
	    sc_regions_populate(c, regions, nregions) == -1) {
		error_prefix(c, "snap_start");
		json_decref(args);
		json_decref(getfd);
		return -1;
	}
	if ((uffd = sc_uffd_create(c)) == -1) {
		error_prefix(c, "snap_start");
		json_decref(args);
		json_decref(getfd);
		return -1;
	}
	/* execute() closes uffd as soon as it has been sent. */
	if (execute(c, "getfd", getfd, &uffd, SC_REPLY_TIMEOUT_MS,
	    NULL) == -1) {
		if (uffd != -1)
			close(uffd);
		json_decref(args);
		return -1;
	}
	if (execute(c, "snapshot-start", args, NULL, SC_REPLY_TIMEOUT_MS,
	    &ret) == -1)
		return -1;
	jid = json_object_get(ret, "id");
	if (!json_is_integer(jid) || json_integer_value(jid) < 0) {
		json_decref(ret);
		sc_set_error(c, EPROTO, "snapshot-start: the reply has no "
		    "snapshot id");
		return -1;
	}
	if (id != NULL)
		*id = (uint64_t)json_integer_value(jid);
	json_decref(ret);
	return 0;
}

int
snap_arm(struct snap_client *c, uint64_t id)
{
	if (c == NULL) {
		sc_set_error(NULL, EINVAL, "snap_arm: no client");
		return -1;
	}
	return execute(c, "snapshot-arm",
	    json_pack("{s:I}", "id", (json_int_t)id), NULL,
	    SC_REPLY_TIMEOUT_MS, NULL);
}

int
snap_cancel(struct snap_client *c, uint64_t id)
{
	if (c == NULL) {
		sc_set_error(NULL, EINVAL, "snap_cancel: no client");
		return -1;
	}
	return execute(c, "snapshot-cancel",
	    json_pack("{s:I}", "id", (json_int_t)id), NULL,
	    SC_REPLY_TIMEOUT_MS, NULL);
}

static uint64_t
get_u64(const json_t *obj, const char *key)
{
	json_int_t	 v = json_integer_value(json_object_get(obj, key));

	return v > 0 ? (uint64_t)v : 0;
}

static void
copy_string(char *dst, size_t size, const json_t *obj, const char *key)
{
	const char	*s = json_string_value(json_object_get(obj, key));

	snprintf(dst, size, "%s", s != NULL ? s : "");
}

/*
 * Fill res from the figures of a finished snapshot: a query-snapshots entry
 * or the data of SNAPSHOT_COMPLETED or SNAPSHOT_FAILED, which use the same
 * names (proto/PROTOCOL.md).  why is the error to give when a failure names
 * none.
 */
static void
result_parse(struct snap_result *res, const json_t *d, int completed,
    const char *why)
{
	memset(res, 0, sizeof(*res));
	res->id = get_u64(d, "id");
	res->completed = completed;
	copy_string(res->name, sizeof(res->name), d, "name");
	copy_string(res->file, sizeof(res->file), d, "file");
	copy_string(res->error, sizeof(res->error), d, "error");
	if (!completed && res->error[0] == '\0')
		snprintf(res->error, sizeof(res->error), "%s", why);
	res->size = get_u64(d, "bytes-written");
	res->pages = get_u64(d, "pages-total");
	res->pages_faulted = get_u64(d, "pages-faulted");
	res->pages_zero = get_u64(d, "pages-zero");
	res->pages_lost = get_u64(d, "pages-lost");
	res->buffer_full_waits = get_u64(d, "buffer-full-waits");
	res->buffer_peak = get_u64(d, "buffer-peak");
	res->stall_max_us = get_u64(d, "stall-max-us");
	res->arm_us = get_u64(d, "arm-us");
	res->duration_us = get_u64(d, "duration-us");
}

/*
 * If msg is SNAPSHOT_COMPLETED or SNAPSHOT_FAILED for id, fill res from it
 * and return 1.
 */
static int
result_from_event(struct snap_result *res, const json_t *msg, uint64_t id)
{
	const char	*name = json_string_value(json_object_get(msg, "event"));
	const json_t	*d = json_object_get(msg, "data");

	if (name == NULL || !json_is_integer(json_object_get(d, "id")) ||
	    get_u64(d, "id") != id)
		return 0;
	if (strcmp(name, SNAPD_EV_COMPLETED) == 0)
		result_parse(res, d, 1, "");
	else if (strcmp(name, SNAPD_EV_FAILED) == 0)
		result_parse(res, d, 0,
		    json_is_true(json_object_get(d, "cancelled")) ?
		    "cancelled" : "failed");
	else
		return 0;
	return 1;
}

/* Ask snapd about id.  Returns 1 (finished, res filled), 0 (running) or -1. */
static int
wait_query(struct snap_client *c, uint64_t id, struct snap_result *res)
{
	json_t		*list = NULL, *e;
	const char	*state;
	size_t		 i;
	int		 rc;

	if (execute(c, "query-snapshots", NULL, NULL, SC_REPLY_TIMEOUT_MS,
	    &list) == -1)
		return -1;
	json_array_foreach(list, i, e) {
		if (!json_is_integer(json_object_get(e, "id")) ||
		    get_u64(e, "id") != id)
			continue;
		state = json_string_value(json_object_get(e, "state"));
		if (state == NULL) {
			sc_set_error(c, EPROTO, "query-snapshots: snapshot "
			    "%" PRIu64 " has no state", id);
			rc = -1;
		} else if (strcmp(state, "completed") == 0 ||
		    strcmp(state, "failed") == 0 ||
		    strcmp(state, "cancelled") == 0) {
			result_parse(res, e, strcmp(state, "completed") == 0,
			    state);
			rc = 1;
		} else
			rc = 0;
		json_decref(list);
		return rc;
	}
	json_decref(list);
	sc_set_error(c, ENOENT, "snapshot %" PRIu64 ": no such snapshot "
	    "(or not one this client may see)", id);
	return -1;
}

int
snap_wait(struct snap_client *c, uint64_t id, struct snap_result *res,
    int timeout_ms)
{
	struct snap_result	 scratch;
	struct sc_event		*ev, *next;
	json_t			*msg;
	char			*line;
	int64_t			 deadline = deadline_after(timeout_ms);
	int			 r, found;

	if (c == NULL) {
		sc_set_error(NULL, EINVAL, "snap_wait: no client");
		return -1;
	}
	if (res == NULL)
		res = &scratch;
	if ((r = wait_query(c, id, res)) != 0)
		return r == 1 ? 0 : -1;

	/* Did its end arrive while the query's reply was awaited? */
	for (ev = TAILQ_FIRST(&c->events); ev != NULL; ev = next) {
		next = TAILQ_NEXT(ev, entry);
		if ((msg = json_loads(ev->line, 0, NULL)) == NULL)
			continue;
		found = result_from_event(res, msg, id);
		json_decref(msg);
		if (found) {
			event_remove(c, ev);
			return 0;
		}
	}

	for (;;) {
		if (read_message(c, deadline, &msg, &line) == -1) {
			if (errno == ETIMEDOUT)
				sc_set_error(c, ETIMEDOUT, "snapshot %" PRIu64
				    ": still running after %d ms", id,
				    timeout_ms);
			else
				error_prefix(c, "waiting for the snapshot");
			return -1;
		}
		if (message_is_event(msg)) {
			found = result_from_event(res, msg, id);
			if (found)
				free(line);
			else
				event_push(c, line);
			json_decref(msg);
			if (found)
				return 0;
			continue;
		}
		/* No command is pending: a stale reply. */
		json_decref(msg);
		free(line);
	}
}

/* ---- raw access, for snapctl --------------------------------------------- */

char *
snap_command(struct snap_client *c, const char *text)
{
	json_error_t	 jerr;
	json_t		*cmd, *reply = NULL;
	char		*out = NULL, *line = NULL;
	size_t		 len;
	int64_t		 deadline = deadline_after(SC_REPLY_TIMEOUT_MS);

	if (c == NULL || text == NULL) {
		sc_set_error(c, EINVAL, "snap_command: no %s",
		    c == NULL ? "client" : "command");
		return NULL;
	}
	cmd = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (cmd == NULL || !json_is_object(cmd)) {
		sc_set_error(c, EINVAL, "command is not a JSON object: %s",
		    cmd == NULL ? jerr.text : "another JSON value");
		json_decref(cmd);
		return NULL;
	}
	/* Re-encoded, so a command written over several lines is one. */
	if ((out = json_dumps(cmd, JSON_COMPACT)) == NULL) {
		sc_set_error(c, ENOMEM, "snap_command: %m");
		json_decref(cmd);
		return NULL;
	}
	len = strlen(out);
	out[len] = '\n';
	if (send_message(c, out, len + 1, NULL, deadline) == 0 &&
	    await_reply(c, json_object_get(cmd, "id"), deadline, &reply,
	    &line) == 0)
		json_decref(reply);
	else
		error_prefix(c, "command");
	free(out);
	json_decref(cmd);
	return line;
}

char *
snap_next_event(struct snap_client *c, int timeout_ms)
{
	struct sc_event	*ev;
	json_t		*msg;
	char		*line;
	int64_t		 deadline = deadline_after(timeout_ms);

	if (c == NULL) {
		sc_set_error(NULL, EINVAL, "snap_next_event: no client");
		return NULL;
	}
	if ((ev = TAILQ_FIRST(&c->events)) != NULL) {
		TAILQ_REMOVE(&c->events, ev, entry);
		c->nevents--;
		line = ev->line;
		free(ev);
		return line;
	}
	for (;;) {
		if (read_message(c, deadline, &msg, &line) == -1) {
			if (errno == ETIMEDOUT)
				sc_set_error(c, ETIMEDOUT, "no event within "
				    "%d ms", timeout_ms);
			else
				error_prefix(c, "waiting for events");
			return NULL;
		}
		if (message_is_event(msg)) {
			json_decref(msg);
			return line;
		}
		json_decref(msg);
		free(line);
	}
}
