/*
 * The protocol trace: with SNAPD_PROTOCOL_TRACE set in snapd's environment,
 * every message the control socket receives and sends is appended to a
 * trace file, one JSON object a line.  It is a debugging aid, and what the
 * test suite validates against proto/schema.json (tests/integration/
 * zz_schema.sh).  Nothing else reads the file; nothing here changes what a
 * client sees.
 *
 * Main thread only, like the rest of the control socket; the trace fd is
 * this file's own.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "control-trace.h"

/* The environment variable naming the protocol trace file or directory. */
#define CONTROL_TRACE_ENV	"SNAPD_PROTOCOL_TRACE"
/* How many earlier daemons with our pid a trace directory may hold. */
#define CONTROL_TRACE_MAX_SEQ	1000

static int	control_trace_fd = -1;
static char	control_trace_path[PATH_MAX];

/*
 * Open the trace named by $SNAPD_PROTOCOL_TRACE, if set and not empty: a
 * directory gets a file of its own, snapd-PID.trace (snapd-PID.N.trace
 * when an earlier daemon with the same pid left one), so that every daemon
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
void
control_trace_open(void)
{
	const char	*env = getenv(CONTROL_TRACE_ENV);
	struct stat	 st;

	if (env == NULL || env[0] == '\0')
		return;
	if (stat(env, &st) == 0 && S_ISDIR(st.st_mode)) {
		/*
		 * A file no other daemon wrote: pids are reused (pid_max is
		 * 32768 by default), and a reader pairs replies with commands
		 * by connection id, which every daemon counts from 1.
		 */
		for (int seq = 0; seq < CONTROL_TRACE_MAX_SEQ; seq++) {
			if (seq == 0)
				snprintf(control_trace_path,
				    sizeof(control_trace_path),
				    "%s/snapd-%d.trace", env, (int)getpid());
			else
				snprintf(control_trace_path,
				    sizeof(control_trace_path),
				    "%s/snapd-%d.%d.trace", env, (int)getpid(),
				    seq);
			control_trace_fd = open(control_trace_path,
			    O_WRONLY | O_APPEND | O_CREAT | O_EXCL |
			    O_NOFOLLOW | O_CLOEXEC, 0600);
			if (control_trace_fd != -1 || errno != EEXIST)
				break;
		}
	} else {
		snprintf(control_trace_path, sizeof(control_trace_path), "%s",
		    env);
		control_trace_fd = open(control_trace_path, O_WRONLY |
		    O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	}
	if (control_trace_fd == -1) {
		log_warn("protocol trace %s (from $%s): open; not tracing",
		    control_trace_path, CONTROL_TRACE_ENV);
		return;
	}
	log_info("protocol trace: every message goes to %s",
	    control_trace_path);
}

/* Append one trace line: member is "msg" (text is JSON) or "raw". */
void
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
void
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
void
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

void
control_trace_close(void)
{
	if (control_trace_fd != -1) {
		close(control_trace_fd);
		control_trace_fd = -1;
	}
}
