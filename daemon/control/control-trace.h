/*
 * The protocol trace of the control socket (control-trace.c): every
 * message received and sent, one JSON line each, in the file or directory
 * named by $SNAPD_PROTOCOL_TRACE.  Every call is a no-op when it is not
 * set.  Main thread only.
 */
#ifndef SNAPD_CONTROL_TRACE_H
#define SNAPD_CONTROL_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

void	control_trace_open(void);
void	control_trace_close(void);

/*
 * Append one line about connection conn_id (0: a peer refused at accept);
 * dir is "recv" or "send", member "msg" (text is JSON) or "raw".
 */
void	control_trace(uint64_t conn_id, const char *dir, const char *member,
	    const char *text, size_t len);
/* A received line that is not JSON, as a string of printable ASCII. */
void	control_trace_raw(uint64_t conn_id, const char *line, size_t len);
/* A received message that parsed as JSON. */
void	control_trace_recv(uint64_t conn_id, json_t *msg);

#endif /* SNAPD_CONTROL_TRACE_H */
