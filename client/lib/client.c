/*
 * libsnapclient's connection to snapd: connecting and negotiating, sending
 * commands and matching their replies, queueing events, and raw access for
 * memsnapctl.  The snapshot calls built on them (snap_start, snap_arm,
 * snap_cancel, snap_wait) are in snapshot-calls.c.  The protocol is
 * proto/PROTOCOL.md: newline-delimited JSON in QMP's manner.
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

/* ---- time ---------------------------------------------------------------- */

static int64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A deadline in CLOCK_MONOTONIC ms, or -1 for none. */
int64_t
sc_deadline_after(int timeout_ms)
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
void
sc_error_prefix(struct snap_client *c, const char *prefix)
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

void
sc_event_push(struct snap_client *c, char *line)
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

void
sc_event_remove(struct snap_client *c, struct sc_event *ev)
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
int
sc_read_message(struct snap_client *c, int64_t deadline, json_t **msg,
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

int
sc_message_is_event(const json_t *msg)
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
		if (sc_read_message(c, deadline, &msg, &line) == -1)
			return -1;
		if (sc_message_is_event(msg)) {
			sc_event_push(c, line);
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
int
sc_execute(struct snap_client *c, const char *cmd, json_t *args, int *fdp,
    int timeout_ms, json_t **ret)
{
	json_t		*msg, *id, *reply = NULL, *error;
	const char	*class, *desc;
	char		*text = NULL;
	size_t		 len;
	int64_t		 deadline = sc_deadline_after(timeout_ms);
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
		sc_error_prefix(c, cmd);
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

	if (sc_read_message(c, sc_deadline_after(SC_REPLY_TIMEOUT_MS), &msg,
	    &line) == -1) {
		sc_error_prefix(c, "greeting");
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
	    sc_execute(c, "qmp_capabilities", NULL, NULL, SC_REPLY_TIMEOUT_MS,
	    NULL) == -1) {
		sc_error_prefix(c, path);
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
		sc_event_remove(c, ev);
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

/* ---- raw access, for memsnapctl --------------------------------------------- */

char *
snap_command(struct snap_client *c, const char *text)
{
	json_error_t	 jerr;
	json_t		*cmd, *reply = NULL;
	char		*out = NULL, *line = NULL;
	size_t		 len;
	int64_t		 deadline = sc_deadline_after(SC_REPLY_TIMEOUT_MS);

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
		sc_error_prefix(c, "command");
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
	int64_t		 deadline = sc_deadline_after(timeout_ms);

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
		if (sc_read_message(c, deadline, &msg, &line) == -1) {
			if (errno == ETIMEDOUT)
				sc_set_error(c, ETIMEDOUT, "no event within "
				    "%d ms", timeout_ms);
			else
				sc_error_prefix(c, "waiting for events");
			return NULL;
		}
		if (sc_message_is_event(msg)) {
			json_decref(msg);
			return line;
		}
		json_decref(msg);
		free(line);
	}
}
