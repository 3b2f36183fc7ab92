/*
 * The control socket: accept loop, connections, framing and the choke
 * point every message passes before a command runs (see control.h and
 * proto/PROTOCOL.md).
 *
 * Everything here runs on the main thread, from libevent callbacks.
 *
 * Reading.  Each connection reads with recvmsg() itself (bufferevents
 * cannot receive SCM_RIGHTS) into an evbuffer.  Received fds are queued
 * with the stream offset of the byte they came with; the kernel never
 * merges an fd-carrying write with bytes queued before it, so that byte is
 * the first of the sender's sendmsg(), and the fds belong to the message
 * that byte is part of.  Whatever that message does not claim is closed
 * right after it runs.
 *
 * Limits.  A message (newline included) longer than max_message_size gets
 * MessageTooLarge and the connection closes; a client that leaves a message
 * half sent for client_timeout seconds is dropped; output is buffered per
 * connection and a client whose queued output passes control_out_max()
 * (because it does not read its events) is dropped.  Input is processed one
 * message at a time, and not at all while a deferred reply (snapshot-start
 * waiting to arm) is outstanding, with reading paused, so replies keep
 * command order and input cannot pile up.
 *
 * Lifetime.  A connection is never freed from inside a callback that may
 * still use it: conn_kill() closes the socket and stops its events, then
 * frees it from its own zero-timeout event (resume_ev).
 *
 * Identity.  At accept the peer's uid, gid and pid come from SO_PEERCRED
 * and a pidfd from SO_PEERPIDFD; on a kernel without it (before 6.5) from
 * pidfd_open(pid), checked afterwards against a pid recycled meanwhile
 * (control_peer_pidfd()).  snapshot-start hands a dup of that pidfd to the
 * engine, so the process snapshotted is the very one that connected.
 *
 * Tracing.  With SNAPD_PROTOCOL_TRACE set in snapd's environment, every
 * message received and sent is appended to a trace file, one JSON object a
 * line (see control_trace_open()).  It is a debugging aid, and what the
 * test suite validates against proto/schema.json.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "compat.h"
#include "protocol.h"
#include "log.h"
#include "config.h"
#include "cmd.h"
#include "snapshot.h"
#include "snapshots.h"
#include "control.h"

/* Bytes of output a connection may have queued before it is dropped. */
#define CONTROL_OUT_MIN		(1024 * 1024)
/* Connections accepted per accept callback, so one flood cannot starve. */
#define CONTROL_ACCEPT_BATCH	64
/* The environment variable naming the protocol trace file or directory. */
#define CONTROL_TRACE_ENV	"SNAPD_PROTOCOL_TRACE"

static TAILQ_HEAD(, conn) control_conns = TAILQ_HEAD_INITIALIZER(control_conns);
static struct event_base	*control_base;
static struct event		*control_accept_ev;
static struct event		*control_pause_ev;
static int			 control_listen_fd = -1;
static int			 control_reserve_fd = -1;
static int			 control_accepting;
static unsigned			 control_count;
static uint64_t			 control_last_id;
static struct timespec		 control_started;
static int			 control_pagemap_scan = -1;
static int			 control_trace_fd = -1;
static char			 control_trace_path[PATH_MAX];

static void	conn_kill(struct conn *);
static void	conn_process(struct conn *);

/* ---- protocol trace ------------------------------------------------- */

/*
 * Open the trace named by $SNAPD_PROTOCOL_TRACE, if set and not empty: a
 * directory gets a file of its own, snapd-PID.trace, so that every daemon
 * of a test run can write into one shared directory; anything else is a
 * file, appended to.  Each line is
 *
 *	{"time": S.US, "pid": P, "conn": N, "dir": "recv"|"send", "msg": M}
 *
 * with M the message, or "raw": TEXT instead of "msg" for a received line
 * that was not JSON (bytes outside printable ASCII as \xNN).  conn is the
 * connection's id (0 for a peer refused at accept).  Every line is one
 * write() on an O_APPEND descriptor, so a killed daemon leaves whole lines.
 */
static void
control_trace_open(void)
{
	const char	*env = getenv(CONTROL_TRACE_ENV);
	struct stat	 st;

	if (env == NULL || env[0] == '\0')
		return;
	if (stat(env, &st) == 0 && S_ISDIR(st.st_mode))
		snprintf(control_trace_path, sizeof(control_trace_path),
		    "%s/snapd-%d.trace", env, (int)getpid());
	else
		snprintf(control_trace_path, sizeof(control_trace_path), "%s",
		    env);
	control_trace_fd = open(control_trace_path, O_WRONLY | O_APPEND |
	    O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (control_trace_fd == -1) {
		log_warn("protocol trace %s (from $%s): open; not tracing",
		    control_trace_path, CONTROL_TRACE_ENV);
		return;
	}
	log_info("protocol trace: every message goes to %s",
	    control_trace_path);
}

/* Append one trace line: member is "msg" (text is JSON) or "raw". */
static void
control_trace(uint64_t conn_id, const char *dir, const char *member,
    const char *text, size_t len)
{
	struct timeval	 tv;
	char		 head[160];
	struct iovec	 iov[3];
	ssize_t		 n;
	size_t		 total;
	int		 hlen;

	if (control_trace_fd == -1)
		return;
	gettimeofday(&tv, NULL);
	hlen = snprintf(head, sizeof(head), "{\"time\":%lld.%06ld,\"pid\":%d,"
	    "\"conn\":%llu,\"dir\":\"%s\",\"%s\":", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (int)getpid(), (unsigned long long)conn_id, dir,
	    member);
	iov[0].iov_base = head;
	iov[0].iov_len = (size_t)hlen;
	iov[1].iov_base = (void *)(uintptr_t)text;
	iov[1].iov_len = len;
	iov[2].iov_base = (void *)(uintptr_t)"}\n";
	iov[2].iov_len = 2;
	total = iov[0].iov_len + iov[1].iov_len + iov[2].iov_len;
	n = writev(control_trace_fd, iov, 3);
	if (n == -1 || (size_t)n != total) {
		if (n == -1)
			log_warn("protocol trace %s: write; tracing stops",
			    control_trace_path);
		else
			log_warnx("protocol trace %s: short write (%zd of %zu "
			    "bytes); tracing stops", control_trace_path, n,
			    total);
		close(control_trace_fd);
		control_trace_fd = -1;
	}
}

/* Trace a received line that is not JSON, as a string of printable ASCII. */
static void
control_trace_raw(uint64_t conn_id, const char *line, size_t len)
{
	json_t	*str;
	char	*text, *esc, *p;

	if (control_trace_fd == -1)
		return;
	esc = p = xmalloc(len * 4 + 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if (ch >= 0x20 && ch < 0x7f)
			*p++ = (char)ch;
		else
			p += sprintf(p, "\\x%02x", ch);
	}
	*p = '\0';
	str = json_string(esc);
	free(esc);
	if (str == NULL || (text = json_dumps(str, JSON_ENCODE_ANY)) == NULL)
		fatalx("out of memory tracing a message");
	json_decref(str);
	control_trace(conn_id, "recv", "raw", text, strlen(text));
	free(text);
}

/* Trace a received message that parsed as JSON. */
static void
control_trace_recv(uint64_t conn_id, json_t *msg)
{
	char *text;

	if (control_trace_fd == -1)
		return;
	if ((text = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
		fatalx("out of memory tracing a message");
	control_trace(conn_id, "recv", "msg", text, strlen(text));
	free(text);
}

/* ---- output --------------------------------------------------------- */

/* Output a peer may leave unread: four messages' worth, at least 1 MiB. */
static size_t
control_out_max(void)
{
	uint64_t four = 4 * config_get()->max_message_size;

	return four > CONTROL_OUT_MIN ? (size_t)four : CONTROL_OUT_MIN;
}

static int
conn_alive(const struct conn *c)
{
	return c->fd != -1;
}

/* Queue msg (a reference is stolen) as one line; drop a peer that lags. */
static void
conn_send(struct conn *c, json_t *msg)
{
	char	*text;
	size_t	 queued;

	if (!conn_alive(c)) {
		json_decref(msg);
		return;
	}
	text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (text == NULL)
		fatalx("out of memory encoding a message");
	control_trace(c->id, "send", "msg", text, strlen(text));
	if (evbuffer_add(c->out, text, strlen(text)) == -1 ||
	    evbuffer_add(c->out, "\n", 1) == -1)
		fatalx("out of memory queueing a message");
	free(text);
	queued = evbuffer_get_length(c->out);
	if (queued > control_out_max()) {
		log_warnx("connection %llu (uid %u, pid %d): %zu bytes of "
		    "output queued and not read; dropping it",
		    (unsigned long long)c->id, (unsigned)c->uid, (int)c->pid,
		    queued);
		conn_kill(c);
		return;
	}
	/*
	 * A reply may end a client's pause: write it now if the socket takes
	 * it.  What is left, and any error, is for conn_write_cb.
	 */
	(void)evbuffer_write(c->out, c->fd);
	event_add(c->write_ev, NULL);
}

static json_t *
control_check(json_t *o)
{
	if (o == NULL)
		fatalx("out of memory building a message");
	return o;
}

static void
conn_send_error(struct conn *c, json_t *id, const char *class,
    const char *desc)
{
	json_t *msg;

	msg = control_check(json_pack("{s{ss ss}}", "error", "class", class,
	    "desc", desc));
	if (id != NULL)
		json_object_set(msg, "id", id);
	conn_send(c, msg);
}

static void
conn_send_return(struct conn *c, json_t *id, json_t *ret)
{
	json_t *msg;

	if (ret == NULL)
		ret = control_check(json_object());
	msg = control_check(json_pack("{so}", "return", ret));
	if (id != NULL)
		json_object_set(msg, "id", id);
	conn_send(c, msg);
}

/* Close once everything queued is written. */
static void
conn_close_gracefully(struct conn *c)
{
	if (!conn_alive(c))
		return;
	c->closing = 1;
	event_del(c->read_ev);
	event_del(c->stall_ev);
	if (evbuffer_get_length(c->out) == 0)
		conn_kill(c);
	else
		event_add(c->write_ev, NULL);
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;
	int		 n = 0;

	/* conn_send() may have written it all already. */
	if (evbuffer_get_length(c->out) > 0)
		n = evbuffer_write(c->out, fd);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR) {
			event_add(c->write_ev, NULL);
			return;
		}
		log_debug("connection %llu (uid %u): write: %s",
		    (unsigned long long)c->id, (unsigned)c->uid,
		    strerror(errno));
		conn_kill(c);
		return;
	}
	if (evbuffer_get_length(c->out) > 0)
		event_add(c->write_ev, NULL);
	else if (c->closing)
		conn_kill(c);
}

/* ---- fds ------------------------------------------------------------- */

int
control_fd_store(struct conn *c, const char *name, int fd)
{
	for (int i = 0; i < c->nfds; i++) {
		if (strcmp(c->fds[i].name, name) == 0) {
			close(c->fds[i].fd);
			c->fds[i].fd = fd;
			return 0;
		}
	}
	if (c->nfds == SNAPD_FDS_PER_CONNECTION_MAX) {
		close(fd);
		errno = EMFILE;
		return -1;
	}
	snprintf(c->fds[c->nfds].name, sizeof(c->fds[c->nfds].name), "%s",
	    name);
	c->fds[c->nfds].fd = fd;
	c->nfds++;
	return 0;
}

int
control_fd_peek(struct conn *c, const char *name)
{
	for (int i = 0; i < c->nfds; i++)
		if (strcmp(c->fds[i].name, name) == 0)
			return c->fds[i].fd;
	return -1;
}

int
control_fd_take(struct conn *c, const char *name)
{
	for (int i = 0; i < c->nfds; i++) {
		if (strcmp(c->fds[i].name, name) == 0) {
			int fd = c->fds[i].fd;

			c->fds[i] = c->fds[--c->nfds];
			return fd;
		}
	}
	return -1;
}

int
control_fd_close(struct conn *c, const char *name)
{
	int fd = control_fd_take(c, name);

	if (fd == -1)
		return -1;
	close(fd);
	return 0;
}

/* ---- the choke point ------------------------------------------------- */

/*
 * Check one message and run its command.  fds are the descriptors that
 * came with it; the command takes what it keeps, the caller closes the
 * rest.
 */
static void
conn_dispatch(struct conn *c, const char *line, size_t len, int *fds,
    int nfds)
{
	const struct cmd_entry	*entry;
	struct cmd_ctx		 ctx;
	json_error_t		 jerr;
	json_t			*msg, *id, *exec, *args, *v;
	const char		*key, *name;
	char			 err[512];
	enum cmd_retval		 rv;
	int			 empty_args = 0;

	msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (msg == NULL)
		control_trace_raw(c->id, line, len);
	else
		control_trace_recv(c->id, msg);
	if (msg == NULL) {
		snprintf(err, sizeof(err), "invalid JSON at column %d: %s",
		    jerr.column, jerr.text);
		conn_send_error(c, NULL, SNAPD_ERR_PARSE, err);
		return;
	}
	if (!json_is_object(msg)) {
		conn_send_error(c, NULL, SNAPD_ERR_PARSE,
		    "message is not a JSON object");
		json_decref(msg);
		return;
	}
	id = json_object_get(msg, "id");
	json_object_foreach(msg, key, v) {
		if (strcmp(key, "execute") != 0 && strcmp(key, "arguments") &&
		    strcmp(key, "id") != 0) {
			snprintf(err, sizeof(err), "unknown member '%.64s'", key);
			conn_send_error(c, id, SNAPD_ERR_INVALID, err);
			goto out;
		}
	}
	exec = json_object_get(msg, "execute");
	if (exec == NULL || !json_is_string(exec)) {
		conn_send_error(c, id, SNAPD_ERR_INVALID,
		    "'execute' must be present and name a command (a string)");
		goto out;
	}
	name = json_string_value(exec);
	args = json_object_get(msg, "arguments");
	if (args == NULL) {
		args = control_check(json_object());
		empty_args = 1;
	} else if (!json_is_object(args)) {
		conn_send_error(c, id, SNAPD_ERR_INVALID,
		    "'arguments' must be an object");
		goto out;
	}

	entry = cmd_find(name);
	if (!c->negotiated) {
		if (entry == NULL || !(entry->flags & CMD_BEFORE_NEGOTIATION)) {
			conn_send_error(c, id, SNAPD_ERR_COMMAND_NOT_FOUND,
			    "Expecting capabilities negotiation with "
			    "'qmp_capabilities'");
			goto out;
		}
	} else if (entry == NULL) {
		snprintf(err, sizeof(err), "The command %.64s has not been "
		    "found", name);
		conn_send_error(c, id, SNAPD_ERR_COMMAND_NOT_FOUND, err);
		goto out;
	} else if (entry->flags & CMD_BEFORE_NEGOTIATION) {
		conn_send_error(c, id, SNAPD_ERR_COMMAND_NOT_FOUND,
		    "Capabilities negotiation is already complete, command "
		    "ignored");
		goto out;
	}
	if (cmd_check_args(entry, args, err, sizeof(err)) == -1) {
		conn_send_error(c, id, SNAPD_ERR_INVALID, err);
		goto out;
	}

	memset(&ctx, 0, sizeof(ctx));
	ctx.conn = c;
	ctx.args = args;
	ctx.id = id;
	ctx.fds = fds;
	ctx.nfds = nfds;
	log_debug("connection %llu (uid %u): %s", (unsigned long long)c->id,
	    (unsigned)c->uid, entry->name);
	rv = entry->exec(&ctx);
	switch (rv) {
	case CMD_RETURN:
		if (entry->flags & CMD_BEFORE_NEGOTIATION)
			c->negotiated = 1;
		conn_send_return(c, id, ctx.ret);
		break;
	case CMD_ERROR:
		if (ctx.ret != NULL)
			json_decref(ctx.ret);
		conn_send_error(c, id, ctx.err_class != NULL ? ctx.err_class :
		    SNAPD_ERR_GENERIC, ctx.err_desc);
		break;
	case CMD_DEFER:
		c->waiting = 1;
		event_del(c->read_ev);
		event_del(c->stall_ev);
		break;
	}
out:
	if (empty_args)
		json_decref(args);
	json_decref(msg);
}

static void
conn_too_large(struct conn *c)
{
	char desc[128];

	snprintf(desc, sizeof(desc), "message longer than %llu bytes",
	    (unsigned long long)config_get()->max_message_size);
	log_info("connection %llu (uid %u, pid %d): %s; closing it",
	    (unsigned long long)c->id, (unsigned)c->uid, (int)c->pid, desc);
	conn_send_error(c, NULL, SNAPD_ERR_TOO_LARGE, desc);
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	conn_close_gracefully(c);
}

static int
line_is_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

/* Run every complete message in the input, one at a time. */
static void
conn_process(struct conn *c)
{
	uint64_t	max = config_get()->max_message_size;
	size_t		eol_len;

	while (conn_alive(c) && !c->waiting && !c->closing) {
		struct evbuffer_ptr	 p;
		size_t			 len;
		char			*line;
		int			 fds[SNAPD_FDS_PER_MESSAGE_MAX], nfds = 0;
		int			 i, j;

		p = evbuffer_search_eol(c->in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (p.pos == -1) {
			if (evbuffer_get_length(c->in) >= max)
				conn_too_large(c);
			break;
		}
		len = (size_t)p.pos;
		if (len + 1 > max) {
			conn_too_large(c);
			break;
		}
		line = xmalloc(len + 1);
		evbuffer_remove(c->in, line, len + 1);
		line[len] = '\0';
		c->in_offset += len + 1;

		/* The fds that came with bytes of this message. */
		for (i = 0, j = 0; i < c->nrxfds; i++) {
			if (c->rxfds[i].offset >= c->in_offset)
				c->rxfds[j++] = c->rxfds[i];
			else if (nfds < SNAPD_FDS_PER_MESSAGE_MAX)
				fds[nfds++] = c->rxfds[i].fd;
			else
				close(c->rxfds[i].fd);
		}
		c->nrxfds = j;

		if (!line_is_blank(line, len))
			conn_dispatch(c, line, len, fds, nfds);
		for (i = 0; i < nfds; i++)
			if (fds[i] != -1)
				close(fds[i]);
		free(line);
	}
	if (!conn_alive(c) || c->closing)
		return;
	if (!c->waiting && c->read_eof) {
		conn_close_gracefully(c);
		return;
	}
	if (!c->waiting && evbuffer_get_length(c->in) > 0) {
		struct timeval tv = { config_get()->client_timeout, 0 };

		event_add(c->stall_ev, &tv);
	} else
		event_del(c->stall_ev);
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;
	char		 buf[65536];
	union {
		struct cmsghdr	hdr;
		char		space[CMSG_SPACE(sizeof(int) *
				    SNAPD_FDS_PER_MESSAGE_MAX * 2)];
	}		 cbuf;
	struct iovec	 iov = { buf, sizeof(buf) };
	struct msghdr	 mh;
	struct cmsghdr	*cm;
	ssize_t		 n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf.space;
	mh.msg_controllen = sizeof(cbuf.space);
	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		log_debug("connection %llu (uid %u): read: %s",
		    (unsigned long long)c->id, (unsigned)c->uid,
		    strerror(errno));
		conn_kill(c);
		return;
	}
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		int	*cfds;
		size_t	 k, count;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		cfds = (int *)CMSG_DATA(cm);
		count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < count; k++) {
			int rfd;

			memcpy(&rfd, &cfds[k], sizeof(rfd));
			if (c->nrxfds == (int)(sizeof(c->rxfds) /
			    sizeof(c->rxfds[0]))) {
				close(rfd);
				continue;
			}
			c->rxfds[c->nrxfds].fd = rfd;
			c->rxfds[c->nrxfds].offset = c->in_offset +
			    evbuffer_get_length(c->in);
			c->nrxfds++;
		}
	}
	if (mh.msg_flags & MSG_CTRUNC)
		log_warnx("connection %llu (uid %u): more descriptors than "
		    "allowed with one message; the extra ones were dropped",
		    (unsigned long long)c->id, (unsigned)c->uid);
	if (n == 0) {
		c->read_eof = 1;
		event_del(c->read_ev);
	} else if (evbuffer_add(c->in, buf, (size_t)n) == -1)
		fatalx("out of memory reading from a connection");
	conn_process(c);
}

static void
conn_stall_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	log_info("connection %llu (uid %u, pid %d): sent part of a message "
	    "and nothing for %d seconds; dropping it",
	    (unsigned long long)c->id, (unsigned)c->uid, (int)c->pid,
	    config_get()->client_timeout);
	conn_kill(c);
}

static void
conn_free(struct conn *c)
{
	int i;

	TAILQ_REMOVE(&control_conns, c, entry);
	control_count--;
	snapshots_conn_closed(c->id);
	for (i = 0; i < c->nfds; i++)
		close(c->fds[i].fd);
	for (i = 0; i < c->nrxfds; i++)
		close(c->rxfds[i].fd);
	/* Events first: removing them needs the fd still open. */
	event_free(c->read_ev);
	event_free(c->write_ev);
	event_free(c->stall_ev);
	event_free(c->resume_ev);
	if (c->fd != -1)
		close(c->fd);
	if (c->pidfd != -1)
		close(c->pidfd);
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	free(c);
}

/* Resume after a deferred reply, or free a killed connection. */
static void
conn_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (!conn_alive(c)) {
		conn_free(c);
		return;
	}
	if (c->waiting || c->closing)
		return;
	if (!c->read_eof)
		event_add(c->read_ev, NULL);
	conn_process(c);
}

static void
conn_kill(struct conn *c)
{
	struct timeval zero = { 0, 0 };

	if (!conn_alive(c))
		return;
	log_debug("connection %llu (uid %u): closed", (unsigned long long)c->id,
	    (unsigned)c->uid);
	event_del(c->read_ev);
	event_del(c->write_ev);
	event_del(c->stall_ev);
	close(c->fd);
	c->fd = -1;
	event_add(c->resume_ev, &zero);
}

/* ---- accepting ------------------------------------------------------- */

static void
control_greeting(struct conn *c)
{
	unsigned	major = 0, minor = 0, micro = 0;
	char		package[64];

	sscanf(SNAPD_VERSION, "%u.%u.%u", &major, &minor, &micro);
	snprintf(package, sizeof(package), "snapd %s", SNAPD_VERSION);
	conn_send(c, control_check(json_pack(
	    "{s{s{s{si si si} ss} s[] si so}}", "QMP",
	    "version", "qemu", "major", (int)major, "minor", (int)minor,
	    "micro", (int)micro, "package", package,
	    "capabilities",
	    "protocol", SNAPD_PROTOCOL_VERSION,
	    "features", control_kernel_features())));
}

/* Tell a peer we will not serve it, without waiting, and close. */
static void
control_refuse(int fd, const char *class, const char *desc)
{
	json_t	*msg;
	char	*text;

	msg = json_pack("{s{ss ss}}", "error", "class", class, "desc", desc);
	if (msg != NULL && (text = json_dumps(msg, JSON_COMPACT)) != NULL) {
		size_t len = strlen(text);

		control_trace(0, "send", "msg", text, len);
		(void)!send(fd, text, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)!send(fd, "\n", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		free(text);
	}
	json_decref(msg);
	close(fd);
}

/*
 * The uid owning /proc/PID (the process's effective uid), or -1 with errno.
 */
static int
control_proc_uid(pid_t pid, uid_t *uid)
{
	struct stat	st;
	char		path[32];

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (stat(path, &st) == -1)
		return -1;
	*uid = st.st_uid;
	return 0;
}

/*
 * A pidfd of the peer of socket fd, whose SO_PEERCRED is cred.  Returns it,
 * or -1 with errno: ESRCH when the peer process has exited (or cannot be
 * told from a process that took its pid), anything else when no pidfd
 * could be had (EMFILE...).
 *
 * SO_PEERPIDFD (linux 6.5) names the very process that connected.  Before
 * it, pidfd_open(pid) may race with the peer exiting and its pid being
 * reused, so the fallback checks afterwards that the pidfd's process is
 * alive, that the socket's peer pid is still that pid, and that the
 * process has the peer's uid: a pid recycled meanwhile by another user's
 * process is refused (one recycled by the same user gains that user
 * nothing: it may snapshot its own processes anyway).
 */
static int
control_peer_pidfd(int fd, const struct ucred *cred)
{
	struct ucred	again;
	socklen_t	len;
	uid_t		puid;
	int		pidfd, saved;

	len = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0)
		return pidfd;
	if (errno != ENOPROTOOPT && errno != EINVAL && errno != EOPNOTSUPP)
		return -1;

	pidfd = (int)syscall(SYS_pidfd_open, cred->pid, 0);
	if (pidfd == -1)
		return -1;
	len = sizeof(again);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &again, &len) == -1) {
		saved = errno;
		close(pidfd);
		errno = saved;
		return -1;
	}
	if (again.pid != cred->pid ||
	    syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == -1 ||
	    control_proc_uid(cred->pid, &puid) == -1 || puid != cred->uid) {
		close(pidfd);
		errno = ESRCH;
		return -1;
	}
	return pidfd;
}

static void
control_conn_new(int fd)
{
	struct ucred	 cred;
	socklen_t	 len = sizeof(cred);
	struct conn	*c;
	unsigned	 same = 0;
	char		 desc[128];
	int		 pidfd;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		log_warn("control socket: new connection: SO_PEERCRED");
		close(fd);
		return;
	}
	TAILQ_FOREACH(c, &control_conns, entry)
		if (c->uid == cred.uid && conn_alive(c))
			same++;
	if (same >= (unsigned)config_get()->max_connections_per_uid) {
		snprintf(desc, sizeof(desc), "too many connections for uid %u "
		    "(limit %d)", (unsigned)cred.uid,
		    config_get()->max_connections_per_uid);
		log_warnx("control socket: pid %d: %s; refused", (int)cred.pid,
		    desc);
		control_refuse(fd, SNAPD_ERR_BUSY, desc);
		return;
	}
	if ((pidfd = control_peer_pidfd(fd, &cred)) == -1) {
		if (errno != ESRCH && errno != ENODATA) {
			snprintf(desc, sizeof(desc), "cannot identify the "
			    "peer process (pidfd of pid %d): %s", (int)cred.pid,
			    strerror(errno));
			log_warnx("control socket: uid %u: %s; refused",
			    (unsigned)cred.uid, desc);
			control_refuse(fd, SNAPD_ERR_BUSY, desc);
			return;
		}
		/* It may still query; snapshot-start of itself is refused. */
		log_debug("control socket: uid %u pid %d: no pidfd of the peer "
		    "process: %s", (unsigned)cred.uid, (int)cred.pid,
		    strerror(errno));
	}

	c = xcalloc(1, sizeof(*c));
	c->id = ++control_last_id;
	c->fd = fd;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->pid = cred.pid;
	c->pidfd = pidfd;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->read_ev = event_new(control_base, fd, EV_READ | EV_PERSIST,
	    conn_read_cb, c);
	c->write_ev = event_new(control_base, fd, EV_WRITE, conn_write_cb, c);
	c->stall_ev = evtimer_new(control_base, conn_stall_cb, c);
	c->resume_ev = evtimer_new(control_base, conn_resume_cb, c);
	if (c->in == NULL || c->out == NULL || c->read_ev == NULL ||
	    c->write_ev == NULL || c->stall_ev == NULL || c->resume_ev == NULL)
		fatalx("out of memory setting up a connection");
	TAILQ_INSERT_TAIL(&control_conns, c, entry);
	control_count++;
	log_debug("connection %llu: uid %u gid %u pid %d",
	    (unsigned long long)c->id, (unsigned)c->uid, (unsigned)c->gid,
	    (int)c->pid);
	event_add(c->read_ev, NULL);
	control_greeting(c);
}

static void
control_reserve(void)
{
	if (control_reserve_fd == -1)
		control_reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void
control_pause_cb(evutil_socket_t fd, short what, void *arg)
{
	control_reserve();
	if (control_accepting)
		event_add(control_accept_ev, NULL);
}

/* Stop accepting for a second: the fd table is full. */
static void
control_pause(void)
{
	struct timeval one = { 1, 0 };

	event_del(control_accept_ev);
	event_add(control_pause_ev, &one);
}

static void
control_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	int fd, i;

	for (i = 0; i < CONTROL_ACCEPT_BATCH; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd != -1) {
			control_conn_new(fd);
			continue;
		}
		switch (errno) {
		case EAGAIN:
			return;
		case EINTR:
		case ECONNABORTED:
			continue;
		case EMFILE:
		case ENFILE:
			log_warn("control socket: accept");
			/*
			 * Use the reserve fd to take the waiting peer off the
			 * queue and tell it, rather than letting the listener
			 * stay readable and spin.
			 */
			if (control_reserve_fd != -1) {
				close(control_reserve_fd);
				control_reserve_fd = -1;
				fd = accept4(lfd, NULL, NULL,
				    SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (fd != -1)
					control_refuse(fd, SNAPD_ERR_BUSY,
					    "snapd is out of file descriptors");
			}
			control_pause();
			return;
		default:
			log_warn("control socket: accept");
			control_pause();
			return;
		}
	}
}

void
control_init(struct event_base *base, int listen_fd)
{
	int flags;

	control_base = base;
	control_listen_fd = listen_fd;
	clock_gettime(CLOCK_MONOTONIC, &control_started);
	control_trace_open();
	if ((flags = fcntl(listen_fd, F_GETFL)) == -1 ||
	    fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) == -1)
		fatal("control socket: set non-blocking");
	control_accept_ev = event_new(base, listen_fd, EV_READ | EV_PERSIST,
	    control_accept_cb, NULL);
	control_pause_ev = evtimer_new(base, control_pause_cb, NULL);
	if (control_accept_ev == NULL || control_pause_ev == NULL)
		fatalx("cannot create the accept events");
	control_reserve();
	if (control_reserve_fd == -1)
		log_warn("control socket: open /dev/null for the reserve fd");
	control_accepting = 1;
	event_add(control_accept_ev, NULL);
}

void
control_stop_accepting(void)
{
	control_accepting = 0;
	if (control_accept_ev != NULL)
		event_del(control_accept_ev);
	if (control_pause_ev != NULL)
		event_del(control_pause_ev);
}

void
control_close_all(void)
{
	struct conn *c;

	control_stop_accepting();
	while ((c = TAILQ_FIRST(&control_conns)) != NULL) {
		if (conn_alive(c) && evbuffer_get_length(c->out) > 0)
			(void)evbuffer_write(c->out, c->fd);
		conn_free(c);
	}
	if (control_accept_ev != NULL) {
		event_free(control_accept_ev);
		event_free(control_pause_ev);
		control_accept_ev = control_pause_ev = NULL;
	}
	if (control_reserve_fd != -1) {
		close(control_reserve_fd);
		control_reserve_fd = -1;
	}
	if (control_trace_fd != -1) {
		close(control_trace_fd);
		control_trace_fd = -1;
	}
}

/* ---- what commands and snapshots call -------------------------------- */

unsigned
control_connection_count(void)
{
	return control_count;
}

uint64_t
control_uptime_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - control_started.tv_sec) * 1000 +
	    (uint64_t)((now.tv_nsec - control_started.tv_nsec) / 1000000);
}

/*
 * PAGEMAP_SCAN with an empty range walks nothing: it succeeds where the
 * ioctl exists and fails with ENOTTY where it does not.
 */
static int
control_probe_pagemap_scan(void)
{
	struct pm_scan_arg	arg;
	int			fd, ok;

	if ((fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	ok = ioctl(fd, PAGEMAP_SCAN, &arg) >= 0;
	close(fd);
	return ok;
}

json_t *
control_kernel_features(void)
{
	uint64_t f = snapshot_kernel_features();

	if (control_pagemap_scan == -1)
		control_pagemap_scan = control_probe_pagemap_scan();
	return control_check(json_pack("{sb sb sb}",
	    "wp-unpopulated", (f & UFFD_FEATURE_WP_UNPOPULATED) != 0,
	    "wp-async", (f & UFFD_FEATURE_WP_ASYNC) != 0,
	    "pagemap-scan", control_pagemap_scan));
}

static struct conn *
control_find(uint64_t conn_id)
{
	struct conn *c;

	TAILQ_FOREACH(c, &control_conns, entry)
		if (c->id == conn_id && conn_alive(c))
			return c;
	return NULL;
}

static void
control_reply_done(struct conn *c)
{
	struct timeval zero = { 0, 0 };

	c->waiting = 0;
	event_add(c->resume_ev, &zero);
}

void
control_reply(uint64_t conn_id, json_t *id, json_t *ret)
{
	struct conn *c = control_find(conn_id);

	if (c == NULL) {
		log_debug("connection %llu has gone; reply dropped",
		    (unsigned long long)conn_id);
		json_decref(ret);
		return;
	}
	conn_send_return(c, id, ret);
	if (conn_alive(c))
		control_reply_done(c);
}

void
control_reply_error(uint64_t conn_id, json_t *id, const char *class,
    const char *desc)
{
	struct conn *c = control_find(conn_id);

	if (c == NULL) {
		log_debug("connection %llu has gone; error reply dropped",
		    (unsigned long long)conn_id);
		return;
	}
	conn_send_error(c, id, class, desc);
	if (conn_alive(c))
		control_reply_done(c);
}

void
control_event(uid_t owner, const char *name, json_t *data)
{
	struct conn	*c, *next;
	struct timeval	 tv;
	json_t		*msg;

	gettimeofday(&tv, NULL);
	msg = control_check(json_pack("{ss so s{sI sI}}", "event", name,
	    "data", data, "timestamp", "seconds", (json_int_t)tv.tv_sec,
	    "microseconds", (json_int_t)tv.tv_usec));
	for (c = TAILQ_FIRST(&control_conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (!conn_alive(c) || c->closing || !c->negotiated)
			continue;
		if (c->uid != 0 && c->uid != owner)
			continue;
		conn_send(c, json_incref(msg));
	}
	json_decref(msg);
}
