/*
 * Between output.c and the format encoders (output-zsnap.c, output-raw.c);
 * not for the rest of the daemon, which sees only output.h.
 *
 * output.c checks every argument (region index, page range), counts pages
 * and keeps the error text; an encoder only encodes.  Like the rest of the
 * output, all of it runs on the snapshot's writer thread.
 */
#ifndef SNAPD_OUTPUT_IMPL_H
#define SNAPD_OUTPUT_IMPL_H

#include <stdint.h>

#include "ioutil.h"
#include "output.h"

#define OUTPUT_ERROR_MAX	512

struct output_format_ops {
	/* Create the temporary file(s), write what goes first. */
	int	(*open)(struct output *);
	/* npages pages, already known to be inside the region. */
	int	(*pages)(struct output *, uint32_t, uint64_t, uint32_t,
		    const void *);
	int	(*lost)(struct output *, uint32_t, uint64_t, uint64_t);
	/*
	 * PARENT pages of an incremental snapshot; NULL for a format that
	 * refuses a parent at open (raw), so output.c never calls it there.
	 */
	int	(*unchanged)(struct output *, uint32_t, uint64_t, uint64_t);
	uint64_t (*bytes)(const struct output *);
	/*
	 * Write the rest, make it durable, rename; fill result->bytes, path
	 * (and index_crc, for zsnap).
	 */
	int	(*finish)(struct output *, struct output_result *);
	/* Free the encoder; remove the temporary file(s) unless finished. */
	void	(*close)(struct output *);
};

struct output {
	const struct output_format_ops *ops;
	struct output_params	 params;	/* regions and strings copied */
	struct output_region	*regions;
	char			*name;
	char			*comm;
	uint8_t			*procrec;	/* params.procrec's copy */
	struct zsnap_parent	*parent;	/* params.parent's copy, or NULL */
	struct zsnap_whole	*whole;		/* params.whole's copy */
	uint64_t		 pages_total;
	uint64_t		 pages_data;
	uint64_t		 pages_zero;
	uint64_t		 pages_lost;
	uint64_t		 pages_parent;	/* output_unchanged() */
	int			 hurry;		/* output_set_hurry() */
	uint64_t		 hurried;	/* chunks compressed in a hurry */
	int			 finished;
	int			 failed;	/* an operation failed: only close */
	char			 error[OUTPUT_ERROR_MAX];
	void			*priv;		/* the encoder's state */
};

extern const struct output_format_ops output_zsnap_ops;
extern const struct output_format_ops output_raw_ops;

/* Set out's error message; errno is kept. */
#define output_set_error(out, ...)					\
	ioutil_set_error((out)->error, sizeof((out)->error), __VA_ARGS__)

#endif /* SNAPD_OUTPUT_IMPL_H */
