/*
 * The process record (proto/procrec.h) of a stopped process: every
 * thread's registers as tracer_stop() read them, the mappings as mapsel.h
 * decided them, the auxiliary vector, and what ps shows.  Read on the
 * attach thread while the process is stopped.
 */
#ifndef SNAPD_PROCINFO_H
#define SNAPD_PROCINFO_H

#include <stddef.h>
#include <sys/types.h>

#include "mapsel.h"
#include "procrec.h"
#include "tracer.h"

/*
 * Fill rec; it takes ms's mappings (ms->maps NULL afterwards).  The
 * thread snapd injected through is flagged.  0, or -1 with why; rec is
 * always to be procrec_free()d.
 */
int	procinfo_build(struct procrec *rec, const struct tracer *tr,
	    pid_t injected, struct mapsel *ms, char *why, size_t whylen);

#endif /* SNAPD_PROCINFO_H */
