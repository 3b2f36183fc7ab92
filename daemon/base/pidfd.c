/* Is a process still there: see pidfd.h. */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pidfd.h"

int
pidfd_alive(int pidfd)
{
	if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0)
		return 1;
	return errno == EPERM;
}
