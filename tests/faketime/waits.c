/*
 * Preloaded before libfaketime by `./run test --at`, in every process of the run.
 *
 * libfaketime 0.9.10 wraps the blocking waits (epoll_wait, poll, select, ...) and
 * turns faking off for the length of the wait. A signal handler that reads the clock
 * during the wait then gets the real time. PostgreSQL's timeouts (statement_timeout,
 * lock_timeout, deadlock_timeout) are checked in exactly such a handler: SIGALRM
 * arrives on time, the handler sees a real "now" that is before the faked deadline,
 * and it re-arms the timer for weeks. Under a clock set forward, a lock wait with
 * lock_timeout would never end.
 *
 * These waits take a relative timeout (or a deadline on the real monotonic clock),
 * so they need no faking: each goes straight to the kernel and the clock stays faked
 * for any handler that runs meanwhile. clock_nanosleep to an absolute CLOCK_REALTIME
 * deadline is the one wait whose argument is a faked time: it still goes through
 * libfaketime. Going straight to the kernel also fixes CPython's time.sleep, which
 * libfaketime fails with EINVAL when the monotonic clock is not faked.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define KERNEL_SIGSET_BYTES 8

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    return (int)syscall(SYS_epoll_pwait, epfd, events, maxevents, timeout, NULL,
                        KERNEL_SIGSET_BYTES);
}

int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
                const sigset_t *sigmask)
{
    return (int)syscall(SYS_epoll_pwait, epfd, events, maxevents, timeout, sigmask,
                        KERNEL_SIGSET_BYTES);
}

int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    struct timespec limit, *limit_or_null = NULL;
    if (timeout >= 0) {
        limit.tv_sec = timeout / 1000;
        limit.tv_nsec = (long)(timeout % 1000) * 1000000L;
        limit_or_null = &limit;
    }
    return (int)syscall(SYS_ppoll, fds, nfds, limit_or_null, NULL, KERNEL_SIGSET_BYTES);
}

int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
          const sigset_t *sigmask)
{
    /* the kernel writes the time left back: never into the caller's const argument */
    struct timespec limit, *limit_or_null = NULL;
    if (timeout) {
        limit = *timeout;
        limit_or_null = &limit;
    }
    return (int)syscall(SYS_ppoll, fds, nfds, limit_or_null, sigmask, KERNEL_SIGSET_BYTES);
}

int select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
           struct timeval *timeout)
{
    return (int)syscall(SYS_select, nfds, readfds, writefds, exceptfds, timeout);
}

int clock_nanosleep(clockid_t clock, int flags, const struct timespec *request,
                    struct timespec *remain)
{
    static int (*faked)(clockid_t, int, const struct timespec *, struct timespec *);
    if (clock == CLOCK_REALTIME && (flags & TIMER_ABSTIME)) {
        if (!faked)
            faked = dlsym(RTLD_NEXT, "clock_nanosleep");
        return faked(clock, flags, request, remain);
    }
    /* clock_nanosleep returns the error number instead of setting errno */
    return syscall(SYS_clock_nanosleep, clock, flags, request, remain) < 0 ? errno : 0;
}
