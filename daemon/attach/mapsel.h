/*
 * Which mappings of an attached process a snapshot saves, and how.
 *
 * Every mapping of the stopped process is classified:
 *   live	write-protected and saved while the process runs: private
 *		writable anonymous memory (heap, thread stacks, anonymous
 *		mmaps), shared anonymous and memfd/tmpfs memory;
 *   stopped	copied whole while the process is stopped, because uffd-wp
 *		cannot protect it and it may differ from any file: private
 *		file mappings holding written pages (.data, .bss, RELRO),
 *		read-only anonymous memory, the vdso;
 *   skipped	not saved, with the reason: guard pages, program code and
 *		never-written file pages (the file holds them), shared file
 *		mappings, kernel pages ([vvar]), hugetlbfs memory, mappings
 *		the "maps" filter left out, stopped copies past the budget.
 * The filter ("maps"): comma-separated items, each a range START-END
 * (hex; a mapping overlapping it is chosen) or a glob matched against the
 * mapping's name as /proc/PID/maps shows it ("[anon]" for none).
 *
 * Runs on the attach thread while the process is stopped.
 */
#ifndef SNAPD_MAPSEL_H
#define SNAPD_MAPSEL_H

#include <stdint.h>
#include <sys/types.h>

#include "output.h"
#include "procrec.h"

#define MAPSEL_FILTER_ITEMS_MAX	64
#define MAPSEL_REGIONS_MAX	65536

struct mapsel {
	struct procrec_mapping	*maps;		/* every mapping, in address order */
	uint32_t		 nmaps;
	struct output_region	*regions;	/* live and stopped ones */
	uint32_t		 nregions;
	unsigned		 live, stopped, skipped;
	uint64_t		 pages_live;
	uint64_t		 bytes_stopped;
};

/*
 * Check a filter's syntax without a process: 0, or -1 with why (for the
 * command's InvalidParameter before anything is stopped).
 */
int	mapsel_filter_check(const char *filter, char *why, size_t whylen);

/*
 * Classify the mappings of pid (pidfd names it) with filter (NULL: the
 * default) and at most stopped_max bytes copied while stopped.  0, or -1
 * with why.  Nothing chosen at all is an error.
 */
int	mapsel_choose(struct mapsel *ms, pid_t pid, int pidfd,
	    const char *filter, uint64_t stopped_max, char *why,
	    size_t whylen);

/*
 * An incremental snapshot by attach saves its parent's regions, not a new
 * choice: after mapsel_choose() (default filter), give every mapping the
 * kind of the parent region (of nregions at regions) that holds it, and
 * make ms->regions a copy of those regions.  A mapping that lies in no
 * region was mapped since the parent: it is skipped, with that reason.  -1
 * with why when the parent's regions no longer fit the process: a region
 * no longer wholly mapped (unmapped since the parent), or a mapping that
 * runs past one (it grew or moved), whose pages would be missing.
 */
int	mapsel_match(struct mapsel *ms, pid_t pid,
	    const struct output_region *regions, uint32_t nregions, char *why,
	    size_t whylen);
/* Free the regions and, unless taken (set to NULL), the mappings. */
void	mapsel_free(struct mapsel *ms);

#endif /* SNAPD_MAPSEL_H */
