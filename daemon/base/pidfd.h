/*
 * Is a process still there?  snapd holds a pidfd of every process it deals
 * with (a peer, a process it snapshots or attaches to) and asks before
 * trusting a pid it has just used: a process that has exited may have left
 * its pid to another.
 */
#ifndef SNAPD_PIDFD_H
#define SNAPD_PIDFD_H

/*
 * 1 while the process pidfd names has not exited, 0 once it has.  Asked
 * with signal 0 (pidfd_send_signal(2)), which fails with ESRCH once the
 * process is gone.  It fails with EPERM for a process snapd may not signal,
 * which is therefore there: memsnap.service gives snapd no CAP_KILL, so
 * that is every process of another user.
 */
int	pidfd_alive(int pidfd);

#endif
