/*
 * corework: the target of tests/integration/attach_core.sh, a program of
 * ours that knows nothing of snapd (it never links libsnapclient).  Its
 * threads each wait in a function of their own, so a core written from a
 * snapshot of it shows, in gdb, whether every thread's stack came out as
 * it was when snapd stopped the process:
 *
 *	main			pthread_join() on the first thread
 *	core_thread_sleeper	nanosleep(), a second at a time
 *	core_thread_reader	read() on a pipe nobody writes to
 *	core_thread_spinner	spinning in core_spin_loop()
 *
 * It also leaves marks for gdb to print: core_data_marker (in .data,
 * written at start), core_heap_marker (a pointer in .bss to a string on
 * the heap).  It prints "ready PID" once every thread is in its function,
 * then runs until killed.
 *
 *   corework
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CORE_THREADS	3

char		 core_data_marker[32] = "unset";
char		*core_heap_marker;

static atomic_int	core_started;
static int		core_pipe[2];
volatile unsigned long	core_spins;

static void *core_thread_sleeper(void *) __attribute__((noinline, noclone));
static void *core_thread_reader(void *) __attribute__((noinline, noclone));
static void *core_thread_spinner(void *) __attribute__((noinline, noclone));
static void core_spin_loop(void) __attribute__((noinline, noclone));

static void *
core_thread_sleeper(void *arg)
{
	struct timespec	ts = { 1, 0 };

	atomic_fetch_add(&core_started, 1);
	for (;;)
		nanosleep(&ts, NULL);
	return arg;
}

static void *
core_thread_reader(void *arg)
{
	char	c;

	atomic_fetch_add(&core_started, 1);
	while (read(core_pipe[0], &c, 1) != 0)
		;
	return arg;
}

static void
core_spin_loop(void)
{
	for (;;)
		core_spins++;
}

static void *
core_thread_spinner(void *arg)
{
	atomic_fetch_add(&core_started, 1);
	core_spin_loop();
	return arg;
}

int
main(void)
{
	void		*(*fn[CORE_THREADS])(void *) = { core_thread_sleeper,
	    core_thread_reader, core_thread_spinner };
	pthread_t	 t[CORE_THREADS];
	int		 i;

	snprintf(core_data_marker, sizeof(core_data_marker),
	    "corework data %d", (int)getpid());
	if ((core_heap_marker = malloc(64)) == NULL || pipe(core_pipe) == -1) {
		perror("corework");
		return 1;
	}
	snprintf(core_heap_marker, 64, "corework heap %d", (int)getpid());
	for (i = 0; i < CORE_THREADS; i++) {
		if ((errno = pthread_create(&t[i], NULL, fn[i], NULL)) != 0) {
			perror("corework: pthread_create");
			return 1;
		}
	}
	while (atomic_load(&core_started) < CORE_THREADS)
		usleep(1000);
	usleep(50000);	/* into nanosleep and read */
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	pthread_join(t[0], NULL);
	return 0;
}
