/*
 * The zsnap format's one piece of code both sides run: the ZERO page test
 * (see zsnap.h).  Writers call it on every page they save, so it must be
 * cheap on data pages and read a zero page only once.
 */
#include <stdint.h>
#include <string.h>

#include "zsnap.h"

int
zsnap_page_is_zero(const void *page)
{
	const unsigned char	*p = page;
	uint64_t		 w[8];

	/*
	 * 64 bytes per step with an early exit: data pages usually differ
	 * from zero in their first line, zero pages are read once.  memcpy
	 * keeps it legal for unaligned buffers and compiles to plain loads.
	 */
	for (size_t off = 0; off < ZSNAP_PAGE_SIZE; off += sizeof(w)) {
		memcpy(w, p + off, sizeof(w));
		if ((w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0)
			return 0;
	}
	return 1;
}
