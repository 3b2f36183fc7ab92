/*
 * unit-check.h: the failure count and report the module unit tests share
 * (test_config.c, test_pagebuf.c, test_pagestate.c, test_sink.c).
 *
 * Header-only: every .c file in tests/unit is a test binary of its own, so
 * a shared .c there would become one.  FAIL() says where and what, counts,
 * and goes on; unit_finish() is main's return value: 0 on pass, 1 on
 * failure.
 */
#ifndef SNAPD_TEST_UNIT_CHECK_H
#define SNAPD_TEST_UNIT_CHECK_H

#include <stdio.h>

static int	failures;

#define FAIL(...) do {							\
	fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);		\
	fprintf(stderr, __VA_ARGS__);					\
	fputc('\n', stderr);						\
	failures++;							\
} while (0)

static inline int
unit_finish(const char *module)
{
	if (failures > 0) {
		fprintf(stderr, "%s: %d failures\n", module, failures);
		return 1;
	}
	printf("%s: all checks passed\n", module);
	return 0;
}

#endif /* SNAPD_TEST_UNIT_CHECK_H */
