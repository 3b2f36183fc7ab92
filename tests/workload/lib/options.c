/*
 * Option parsing for the workloads: see workload.h.
 */
#include <errno.h>
#include <stdlib.h>

#include "workload.h"

int
parse_size(const char *s, uint64_t *out)
{
	unsigned long long	 v;
	unsigned		 shift = 0;
	char			*end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end == 'i' && shift != 0)
		end++;
	if ((*end == 'b' || *end == 'B') && shift != 0)
		end++;
	if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int
parse_uint(const char *s, unsigned max, unsigned *out)
{
	unsigned long	 v;
	char		*end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}
