/*
 * QEMU's QMP monitor, as a client (qmpc.h).  Lines are read into a bounded
 * buffer: a reply longer than QMPC_LINE_MAX is an error, not a reason to
 * grow without end.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmpc.h"

#define QMPC_LINE_MAX	(4 << 20)
#define QMPC_GREETING_MS	10000

struct qmpc {
	int	 fd;
	int	 broken;
	pid_t	 pid;
	char	*buf;		/* QMPC_LINE_MAX + 1 bytes */
	size_t	 len;		/* bytes in buf */
};

int
qmpc_fd(const struct qmpc *q)
{
	return q->fd;
}

pid_t
qmpc_pid(const struct qmpc *q)
{
	return q->pid;
}

int
qmpc_broken(const struct qmpc *q)
{
	return q->broken;
}

/* Fail the connection for good: err says why. */
static void
qmpc_fail(struct qmpc *q, char *err, size_t errlen, const char *fmt,
    const char *why)
{
	q->broken = 1;
	snprintf(err, errlen, fmt, why);
}

/*
 * The next line from QEMU into a new JSON value; NULL with err set (the
 * connection is then broken).
 */
static json_t *
qmpc_read(struct qmpc *q, int timeout_ms, char *err, size_t errlen)
{
	struct pollfd	 pfd = { .fd = q->fd, .events = POLLIN };
	char		*nl;
	json_error_t	 jerr;
	json_t		*v;
	ssize_t		 got;
	int		 rc;

	while ((nl = memchr(q->buf, '\n', q->len)) == NULL) {
		if (q->len == QMPC_LINE_MAX) {
			qmpc_fail(q, err, errlen, "QMP: %s",
			    "a message longer than 4 MiB");
			return NULL;
		}
		do
			rc = poll(&pfd, 1, timeout_ms);
		while (rc == -1 && errno == EINTR);
		if (rc == 0) {
			qmpc_fail(q, err, errlen, "QMP: %s", timeout_ms ==
			    QMPC_GREETING_MS ? "no greeting from QEMU in 10 s: "
			    "another client holds the monitor (QEMU serves "
			    "one at a time)" : "no answer from QEMU in 60 s");
			return NULL;
		}
		do
			got = read(q->fd, q->buf + q->len,
			    QMPC_LINE_MAX - q->len);
		while (got == -1 && errno == EINTR);
		if (got <= 0) {
			qmpc_fail(q, err, errlen, "QMP: %s", got == 0 ?
			    "QEMU closed the monitor connection" :
			    strerror(errno));
			return NULL;
		}
		q->len += (size_t)got;
	}
	*nl = '\0';
	v = json_loads(q->buf, JSON_REJECT_DUPLICATES, &jerr);
	q->len -= (size_t)(nl + 1 - q->buf);
	memmove(q->buf, nl + 1, q->len);
	if (v == NULL || !json_is_object(v)) {
		json_decref(v);
		qmpc_fail(q, err, errlen, "QMP: not a JSON object from QEMU: "
		    "%s", jerr.text);
		return NULL;
	}
	return v;
}

/* Send line (NUL-terminated), with fd on its first byte when fd != -1. */
static int
qmpc_send(struct qmpc *q, const char *line, int fd, char *err, size_t errlen)
{
	size_t	 len = strlen(line), off = 0;
	ssize_t	 put;

	if (fd != -1) {
		union {
			struct cmsghdr	hdr;
			char		buf[CMSG_SPACE(sizeof(int))];
		} u;
		struct iovec	 iov = { .iov_base = (void *)line, .iov_len = 1 };
		struct msghdr	 msg = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = u.buf,
				    .msg_controllen = sizeof(u.buf) };
		struct cmsghdr	*cm = CMSG_FIRSTHDR(&msg);

		memset(&u, 0, sizeof(u));
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		do
			put = sendmsg(q->fd, &msg, MSG_NOSIGNAL);
		while (put == -1 && errno == EINTR);
		if (put != 1) {
			qmpc_fail(q, err, errlen, "QMP: send: %s",
			    strerror(errno));
			return -1;
		}
		off = 1;
	}
	while (off < len) {
		put = send(q->fd, line + off, len - off, MSG_NOSIGNAL);
		if (put == -1 && errno == EINTR)
			continue;
		if (put <= 0) {
			qmpc_fail(q, err, errlen, "QMP: send: %s",
			    strerror(errno));
			return -1;
		}
		off += (size_t)put;
	}
	return 0;
}

json_t *
qmpc_execute(struct qmpc *q, const char *cmd, json_t *args, int fd,
    char *err, size_t errlen)
{
	json_t	*req, *reply, *ret, *e;
	char	*line;
	int	 rc;

	if (q->broken) {
		json_decref(args);
		snprintf(err, errlen, "QMP: the connection to QEMU failed");
		return NULL;
	}
	req = json_pack("{s:s}", "execute", cmd);
	if (args != NULL)
		json_object_set_new(req, "arguments", args);
	line = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (line == NULL) {
		snprintf(err, errlen, "QMP: out of memory");
		return NULL;
	}
	/* json_dumps leaves room for nothing more: send the newline apart. */
	rc = qmpc_send(q, line, fd, err, errlen);
	free(line);
	if (rc == -1 || qmpc_send(q, "\n", -1, err, errlen) == -1)
		return NULL;
	for (;;) {
		if ((reply = qmpc_read(q, QMPC_TIMEOUT_MS, err, errlen)) ==
		    NULL)
			return NULL;
		if (json_object_get(reply, "event") == NULL)
			break;
		json_decref(reply);
	}
	if ((ret = json_object_get(reply, "return")) != NULL) {
		json_incref(ret);
		json_decref(reply);
		return ret;
	}
	e = json_object_get(reply, "error");
	snprintf(err, errlen, "QEMU refused %s: %s: %s", cmd,
	    json_string_value(json_object_get(e, "class")) ?: "?",
	    json_string_value(json_object_get(e, "desc")) ?: "?");
	json_decref(reply);
	return NULL;
}

char *
qmpc_hmp(struct qmpc *q, const char *line, char *err, size_t errlen)
{
	json_t	*ret;
	char	*text;

	ret = qmpc_execute(q, "human-monitor-command",
	    json_pack("{s:s}", "command-line", line), -1, err, errlen);
	if (ret == NULL)
		return NULL;
	if (!json_is_string(ret) ||
	    (text = strdup(json_string_value(ret))) == NULL) {
		snprintf(err, errlen, "QMP: human-monitor-command %s: no text",
		    line);
		json_decref(ret);
		return NULL;
	}
	json_decref(ret);
	return text;
}

static int
qmpc_connect(struct qmpc *q, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un	 sun = { .sun_family = AF_UNIX };
	struct ucred		 cred;
	socklen_t		 len = sizeof(cred);

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "QMP socket %s: path too long", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (q->fd == -1 ||
	    connect(q->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		snprintf(err, errlen, "QMP socket %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (getsockopt(q->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		snprintf(err, errlen, "QMP socket %s: SO_PEERCRED: %s", path,
		    strerror(errno));
		return -1;
	}
	q->pid = cred.pid;
	return 0;
}

struct qmpc *
qmpc_open(const char *path, char *err, size_t errlen)
{
	struct qmpc	*q;
	json_t		*v;

	if ((q = calloc(1, sizeof(*q))) == NULL ||
	    (q->buf = malloc(QMPC_LINE_MAX + 1)) == NULL) {
		snprintf(err, errlen, "QMP: out of memory");
		free(q);
		return NULL;
	}
	q->fd = -1;
	if (qmpc_connect(q, path, err, errlen) == -1)
		goto fail;
	if ((v = qmpc_read(q, QMPC_GREETING_MS, err, errlen)) == NULL)
		goto fail;
	if (json_object_get(v, "QMP") == NULL) {
		json_decref(v);
		snprintf(err, errlen, "QMP socket %s: no QMP greeting (not a "
		    "QEMU monitor?)", path);
		goto fail;
	}
	json_decref(v);
	if ((v = qmpc_execute(q, "qmp_capabilities", NULL, -1, err,
	    errlen)) == NULL)
		goto fail;
	json_decref(v);
	return q;
fail:
	qmpc_close(q);
	return NULL;
}

void
qmpc_close(struct qmpc *q)
{
	if (q == NULL)
		return;
	if (q->fd != -1)
		close(q->fd);
	free(q->buf);
	free(q);
}
