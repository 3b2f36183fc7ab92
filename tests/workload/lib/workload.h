/*
 * What the bundled workloads (snapwork, snapbench) share: option parsing.
 * Every .c file beside this header is linked into every workload binary.
 */
#ifndef SNAPD_WORKLOAD_H
#define SNAPD_WORKLOAD_H

#include <stdint.h>

/* "512M", "1G", "4KiB", "123": bytes; 0 or -1 if not a size. */
int	parse_size(const char *s, uint64_t *out);
/* A decimal number up to max; 0 or -1. */
int	parse_uint(const char *s, unsigned max, unsigned *out);

#endif /* SNAPD_WORKLOAD_H */
