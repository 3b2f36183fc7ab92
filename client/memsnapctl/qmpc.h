/*
 * A client of QEMU's QMP monitor, for the qemu-* commands: connect to a
 * socket, negotiate, run one command at a time (events are read and
 * dropped), pass a descriptor with a command (SCM_RIGHTS, as add-fd wants
 * it).  Every read waits at most QMPC_TIMEOUT_MS; a monitor that says
 * nothing for that long is treated as gone.
 *
 * QEMU serves one client per monitor socket at a time: a second connection
 * waits, unanswered, until the first closes.
 */
#ifndef MEMSNAPCTL_QMPC_H
#define MEMSNAPCTL_QMPC_H

#include <sys/types.h>

#include <jansson.h>

#define QMPC_TIMEOUT_MS		60000

struct qmpc;

/*
 * Connect to the QMP socket at path and negotiate capabilities.  NULL with
 * what failed in err.
 */
struct qmpc	*qmpc_open(const char *path, char *err, size_t errlen);
void		 qmpc_close(struct qmpc *q);

/* The pid of the QEMU process at the other end (SO_PEERCRED). */
pid_t		 qmpc_pid(const struct qmpc *q);

/* The connection's descriptor (for a watchdog that must outlive us). */
int		 qmpc_fd(const struct qmpc *q);

/*
 * Run cmd with args (stolen; NULL for none), passing fd with it when it is
 * not -1.  Returns the "return" value (a new reference); NULL with err set
 * to QEMU's error ("Class: desc") or to why the connection failed, and
 * *broken set when the connection cannot be used again.
 */
json_t		*qmpc_execute(struct qmpc *q, const char *cmd, json_t *args,
		    int fd, char *err, size_t errlen);
int		 qmpc_broken(const struct qmpc *q);

/* human-monitor-command: the text HMP prints for line; NULL as above. */
char		*qmpc_hmp(struct qmpc *q, const char *line, char *err,
		    size_t errlen);

#endif /* MEMSNAPCTL_QMPC_H */
