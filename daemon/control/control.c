/*
 * The control socket's connections: framing, the output queue, and the
 * choke point every message passes before a command runs (see control.h
 * and proto/PROTOCOL.md).  The listener and the peer's identity are in
 * control-accept.c, the named fd table in control-fd.c, the protocol trace
 * in control-trace.c.
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
 * frees it from its own zero-timeout event (resume_ev).  When it is freed,
 * the snapshot list hears of it (snapshots_conn_closed()): a pre-armed
 * snapshot it never armed is cancelled.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol.h"
#include "log.h"
#include "config.h"
#include "cmd.h"
#include "snapshot.h"
#include "snapshots.h"
#include "uffd.h"
#include "control.h"
#include "control-internal.h"
#include "control-trace.h"

/* Bytes of output a connection may have queued before it is dropped. */
#define CONTROL_OUT_MIN		(1024 * 1024)

static TAILQ_HEAD(, conn) control_conns = TAILQ_HEAD_INITIALIZER(control_conns);
static unsigned			 control_count;
static uint64_t			 control_last_id;
static int			 control_pagemap_scan = -1;

static void	conn_kill(struct conn *);
static void	conn_process(struct conn *);

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

/* ---- the choke point ------------------------------------------------- */

/*
 * The choke point: check that msg is a command this connection may run now,
 * with arguments of the right shape.  Returns its entry, with *argsp its
 * arguments (a new empty object, and *empty_args set, when it has none);
 * or NULL once the error is sent.
 */
static const struct cmd_entry *
conn_check(struct conn *c, json_t *msg, json_t *id, json_t **argsp,
    int *empty_args)
{
	const struct cmd_entry	*entry;
	json_t			*exec, *args, *v;
	const char		*key, *name;
	char			 err[512];

	json_object_foreach(msg, key, v) {
		if (strcmp(key, "execute") != 0 && strcmp(key, "arguments") &&
		    strcmp(key, "id") != 0) {
			snprintf(err, sizeof(err), "unknown member '%.64s'", key);
			conn_send_error(c, id, SNAPD_ERR_INVALID, err);
			return NULL;
		}
	}
	exec = json_object_get(msg, "execute");
	if (exec == NULL || !json_is_string(exec)) {
		conn_send_error(c, id, SNAPD_ERR_INVALID,
		    "'execute' must be present and name a command (a string)");
		return NULL;
	}
	name = json_string_value(exec);
	args = json_object_get(msg, "arguments");
	if (args == NULL) {
		args = control_check(json_object());
		*empty_args = 1;
	} else if (!json_is_object(args)) {
		conn_send_error(c, id, SNAPD_ERR_INVALID,
		    "'arguments' must be an object");
		return NULL;
	}
	*argsp = args;

	entry = cmd_find(name);
	if (!c->negotiated) {
		if (entry == NULL || !(entry->flags & CMD_BEFORE_NEGOTIATION)) {
			conn_send_error(c, id, SNAPD_ERR_COMMAND_NOT_FOUND,
			    "Expecting capabilities negotiation with "
			    "'qmp_capabilities'");
			return NULL;
		}
	} else if (entry == NULL) {
		snprintf(err, sizeof(err), "The command %.64s has not been "
		    "found", name);
		conn_send_error(c, id, SNAPD_ERR_COMMAND_NOT_FOUND, err);
		return NULL;
	} else if (entry->flags & CMD_BEFORE_NEGOTIATION) {
		conn_send_error(c, id, SNAPD_ERR_COMMAND_NOT_FOUND,
		    "Capabilities negotiation is already complete, command "
		    "ignored");
		return NULL;
	}
	if (cmd_check_args(entry, args, err, sizeof(err)) == -1) {
		conn_send_error(c, id, SNAPD_ERR_INVALID, err);
		return NULL;
	}
	return entry;
}

/*
 * Parse one message, check it and run its command.  fds are the
 * descriptors that came with it; the command takes what it keeps, the
 * caller closes the rest.
 */
static void
conn_dispatch(struct conn *c, const char *line, size_t len, int *fds,
    int nfds)
{
	const struct cmd_entry	*entry;
	struct cmd_ctx		 ctx;
	json_error_t		 jerr;
	json_t			*msg, *id, *args = NULL;
	char			 err[512];
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
	if ((entry = conn_check(c, msg, id, &args, &empty_args)) == NULL)
		goto out;

	memset(&ctx, 0, sizeof(ctx));
	ctx.conn = c;
	ctx.args = args;
	ctx.id = id;
	ctx.fds = fds;
	ctx.nfds = nfds;
	log_debug("connection %llu (uid %u): %s", (unsigned long long)c->id,
	    (unsigned)c->uid, entry->name);
	switch (entry->exec(&ctx)) {
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

/* ---- new connections ------------------------------------------------ */

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


void
conn_new(struct event_base *base, int fd, const struct ucred *cred,
    int pidfd)
{
	struct conn *c;

	c = xcalloc(1, sizeof(*c));
	c->id = ++control_last_id;
	c->fd = fd;
	c->uid = cred->uid;
	c->gid = cred->gid;
	c->pid = cred->pid;
	c->pidfd = pidfd;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->read_ev = event_new(base, fd, EV_READ | EV_PERSIST,
	    conn_read_cb, c);
	c->write_ev = event_new(base, fd, EV_WRITE, conn_write_cb, c);
	c->stall_ev = evtimer_new(base, conn_stall_cb, c);
	c->resume_ev = evtimer_new(base, conn_resume_cb, c);
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

unsigned
control_connections_of_uid(uid_t uid)
{
	struct conn	*c;
	unsigned	 n = 0;

	TAILQ_FOREACH(c, &control_conns, entry)
		if (c->uid == uid && conn_alive(c))
			n++;
	return n;
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
	control_accept_free();
	control_trace_close();
}

/* ---- what commands and snapshots call -------------------------------- */

unsigned
control_connection_count(void)
{
	return control_count;
}

json_t *
control_kernel_features(void)
{
	uint64_t f = snapshot_kernel_features();

	if (control_pagemap_scan == -1)
		control_pagemap_scan = uffd_probe_pagemap_scan();
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

