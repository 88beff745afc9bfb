/* shimtest: checks of posix-shim's Linux system calls, one family per argument:
 *   files mem time wallclock process threads signals sigdeliver events timers timers-waiting stdio
 *   enosys preempt kill abort procfs (procfs.c) xattr (xattr.c) mounts (mounts.c) posix (posix.c: ends as uid 1000, so run it last)
 *   memory memory-exit (memory.c)
 *   smp=N smp-mprotect smp-exits=N (smp.c: C threads on N CPUs, affinity, threads ending while
 *   their stacks are unmapped); smp-files=DIR (smp_files.c)
 * and the socket families of net.c: unix net netpeer=PORT netserve=PORT,N
 * Ordinary C against musl; every check prints the failing line and exits 1. A family prints
 * "ok FAMILY" when all its checks passed. Runs unmodified on Linux too (where the files
 * family needs a writable /tmp). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <ucontext.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/timerfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/times.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <termios.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* <linux/futex.h> is not on musl-gcc's include path. */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_WAIT_BITSET 9
#define FUTEX_CLOCK_REALTIME 256
#define FUTEX_BITSET_MATCH_ANY 0xffffffff

#include "check.h"

static void files(void) {
    char buf[256];
    struct stat st;
    mkdir("/tmp", 0777);
    CHECK(mkdir("/tmp/shim", 0755) == 0);
    FAILS(mkdir("/tmp/shim", 0755), EEXIST);
    FAILS(open("/tmp/shim/missing", O_RDONLY), ENOENT);
    FAILS(syscall(SYS_openat, AT_FDCWD, "/tmp/shim/x", O_RDONLY | 0x40000000), EINVAL);
    FAILS(open((char *)8, O_RDONLY), EFAULT);
    int fd = open("/tmp/shim/a.txt", O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(fd >= 3);
    CHECK(write(fd, "hello world", 11) == 11);
    CHECK(pwrite(fd, "W", 1, 6) == 1);
    CHECK(pread(fd, buf, 11, 0) == 11 && memcmp(buf, "hello World", 11) == 0);
    CHECK(lseek(fd, 0, SEEK_CUR) == 11);
    CHECK(lseek(fd, 2, SEEK_SET) == 2);
    CHECK(read(fd, buf, 3) == 3 && memcmp(buf, "llo", 3) == 0);
    FAILS(lseek(fd, 0, 42), EINVAL);
    struct iovec iov[2] = {{"ab", 2}, {"cd", 2}};
    CHECK(lseek(fd, 0, SEEK_END) == 11);
    CHECK(writev(fd, iov, 2) == 4);
    char x[3], y[5];
    struct iovec riov[2] = {{x, 3}, {y, 5}};
    CHECK(pread(fd, buf, 15, 0) == 15 && memcmp(buf, "hello Worldabcd", 15) == 0);
    CHECK(lseek(fd, 7, SEEK_SET) == 7);
    CHECK(readv(fd, riov, 2) == 8 && memcmp(x, "orl", 3) == 0 && memcmp(y, "dabcd", 5) == 0);
    CHECK(fstat(fd, &st) == 0 && st.st_size == 15 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0644);
    CHECK(ftruncate(fd, 5) == 0 && fstat(fd, &st) == 0 && st.st_size == 5);
    FAILS(ftruncate(fd, -1), EINVAL);
    CHECK(fsync(fd) == 0 && fdatasync(fd) == 0);
    /* fcntl: descriptor flags, status flags, dup, advisory locks. */
    CHECK(fcntl(fd, F_GETFD) == 0);
    CHECK(fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 && fcntl(fd, F_GETFD) == FD_CLOEXEC);
    CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR);
    int d = fcntl(fd, F_DUPFD, 10);
    CHECK(d >= 10);
    CHECK(lseek(d, 1, SEEK_SET) == 1 && lseek(fd, 0, SEEK_CUR) == 1); /* shared offset */
    struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    CHECK(fcntl(fd, F_SETLK, &lk) == 0);
    CHECK(fcntl(fd, F_GETLK, &lk) == 0 && lk.l_type == F_UNLCK);
    FAILS(fcntl(fd, 12345), EINVAL);
    CHECK(close(d) == 0);
    FAILS(close(d), EBADF);
    /* dup family */
    int d2 = dup(fd);
    CHECK(d2 >= 0 && dup2(fd, 20) == 20 && dup3(fd, 21, O_CLOEXEC) == 21 && fcntl(21, F_GETFD) == FD_CLOEXEC);
    FAILS(dup3(fd, fd, 0), EINVAL);
    FAILS(syscall(SYS_dup3, fd, 22, 0x1234), EINVAL);
    CHECK(dup2(fd, fd) == fd);
    close(d2); close(20); close(21);
    /* ioctl: the console is a terminal, files are not. */
    struct termios tio;
    struct winsize ws;
    CHECK(isatty(1) == 1 && tcgetattr(1, &tio) == 0);
    CHECK(ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col == 80 && ws.ws_row == 24);
    CHECK(isatty(fd) == 0 && errno == ENOTTY);
    close(fd);
    /* bad descriptors and pointers */
    FAILS(read(99, buf, 1), EBADF);
    FAILS(write(-1, buf, 1), EBADF);
    FAILS(fstat(77, &st), EBADF);
    FAILS(write(1, (void *)8, 5), EFAULT);
    FAILS(read(0, NULL, 5), EFAULT);
    /* names: rename, links, symlinks, directories */
    CHECK(rename("/tmp/shim/a.txt", "/tmp/shim/b.txt") == 0);
    FAILS(stat("/tmp/shim/a.txt", &st), ENOENT);
    CHECK(link("/tmp/shim/b.txt", "/tmp/shim/c.txt") == 0 && stat("/tmp/shim/c.txt", &st) == 0 && st.st_nlink == 2);
    CHECK(symlink("b.txt", "/tmp/shim/s") == 0);
    CHECK(readlink("/tmp/shim/s", buf, sizeof buf) == 5 && memcmp(buf, "b.txt", 5) == 0);
    CHECK(lstat("/tmp/shim/s", &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(stat("/tmp/shim/s", &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 5);
    FAILS(readlink("/tmp/shim/b.txt", buf, sizeof buf), EINVAL);
    CHECK(mkdir("/tmp/shim/sub", 0700) == 0);
    FAILS(rmdir("/tmp/shim"), ENOTEMPTY);
    FAILS(unlink("/tmp/shim/sub"), EISDIR);
    /* *at calls relative to a directory descriptor, and the current directory */
    int dir = open("/tmp/shim", O_RDONLY | O_DIRECTORY);
    CHECK(dir >= 0);
    int f2 = openat(dir, "sub/n.txt", O_CREAT | O_WRONLY, 0600);
    CHECK(f2 >= 0 && write(f2, "n", 1) == 1 && close(f2) == 0);
    CHECK(fstatat(dir, "sub/n.txt", &st, 0) == 0 && st.st_size == 1);
    CHECK(faccessat(dir, "sub/n.txt", R_OK | W_OK, 0) == 0);
    FAILS(faccessat(dir, "sub/none", F_OK, 0), ENOENT);
    FAILS(openat(dir, "b.txt/x", O_RDONLY), ENOTDIR);
    CHECK(renameat(dir, "sub/n.txt", dir, "n2.txt") == 0);
    CHECK(unlinkat(dir, "n2.txt", 0) == 0);
    CHECK(unlinkat(dir, "sub", AT_REMOVEDIR) == 0);
    FAILS(unlinkat(dir, "c.txt", 0x8000), EINVAL);
    CHECK(fchmodat(dir, "c.txt", 0600, 0) == 0 && stat("/tmp/shim/c.txt", &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(utimensat(dir, "c.txt", NULL, 0) == 0);
    struct timespec times[2] = {{1000, 5}, {2000, 7}};
    CHECK(utimensat(dir, "c.txt", times, 0) == 0 && stat("/tmp/shim/c.txt", &st) == 0);
    CHECK(st.st_atim.tv_sec == 1000 && st.st_atim.tv_nsec == 5 && st.st_mtim.tv_sec == 2000 && st.st_mtim.tv_nsec == 7);
    struct timespec omit_atime[2] = {{0, UTIME_OMIT}, {3000, 0}};
    CHECK(utimensat(dir, "c.txt", omit_atime, 0) == 0 && stat("/tmp/shim/c.txt", &st) == 0);
    CHECK(st.st_atim.tv_sec == 1000 && st.st_mtim.tv_sec == 3000);
    struct timespec bad[2] = {{0, 2000000000}, {0, 0}};
    FAILS(utimensat(dir, "c.txt", bad, 0), EINVAL);
    /* getdents64 through readdir */
    DIR *dp = fdopendir(dir);
    CHECK(dp != NULL);
    int seen = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        if (!strcmp(e->d_name, "b.txt") && e->d_type == DT_REG) seen |= 1;
        if (!strcmp(e->d_name, "c.txt")) seen |= 2;
        if (!strcmp(e->d_name, "s") && e->d_type == DT_LNK) seen |= 4;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) seen |= 8;
    }
    CHECK(seen == 15);
    closedir(dp);
    CHECK(chdir("/tmp/shim") == 0 && getcwd(buf, sizeof buf) && strcmp(buf, "/tmp/shim") == 0);
    CHECK(access("b.txt", F_OK) == 0);
    FAILS(chdir("/tmp/shim/b.txt"), ENOTDIR);
    CHECK(getcwd(buf, 3) == NULL && errno == ERANGE);
    CHECK(umask(077) == 022 && umask(022) == 077);
    struct statfs sfs;
    CHECK(statfs("/tmp", &sfs) == 0 && sfs.f_bsize > 0);
    /* devices */
    int z = open("/dev/zero", O_RDONLY), n = open("/dev/null", O_WRONLY);
    memset(buf, 1, 8);
    CHECK(z >= 0 && n >= 0 && read(z, buf, 8) == 8 && buf[0] == 0 && buf[7] == 0 && write(n, buf, 8) == 8);
    close(z); close(n);
    /* stdio on files */
    FILE *fp = fopen("/tmp/shim/stdio.txt", "w+");
    CHECK(fp && fprintf(fp, "%d-%s", 42, "x") == 4 && fflush(fp) == 0);
    rewind(fp);
    CHECK(fgets(buf, sizeof buf, fp) && strcmp(buf, "42-x") == 0 && fclose(fp) == 0);
    printf("ok files\n");
}

static void mem(void) {
    /* anonymous mappings, partial unmap, mremap, mprotect, madvise */
    size_t page = sysconf(_SC_PAGESIZE);
    CHECK(page == 4096);
    char *p = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED && ((uintptr_t)p & (page - 1)) == 0 && p[0] == 0 && p[4 * page - 1] == 0);
    memset(p, 7, 4 * page);
    CHECK(munmap(p + page, page) == 0);
    CHECK(mprotect(p, page, PROT_READ) == 0);
    FAILS(syscall(SYS_mprotect, p + 1, page, PROT_READ), EINVAL);
    CHECK(madvise(p + 2 * page, page, MADV_DONTNEED) == 0 && p[2 * page] == 0 && p[3 * page] == 7);
    FAILS(madvise(p, page, 999), EINVAL);
    char *q = mremap(p + 2 * page, 2 * page, 8 * page, MREMAP_MAYMOVE);
    CHECK(q != MAP_FAILED && q[page] == 7 && q[8 * page - 1] == 0);
    CHECK(munmap(p, page) == 0 && munmap(q, 8 * page) == 0);
    FAILS((long)mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), EINVAL);
    FAILS((long)mmap(NULL, page, PROT_READ, MAP_ANONYMOUS, -1, 0), EINVAL);
    FAILS((long)mmap(NULL, page, PROT_READ, MAP_PRIVATE, 99, 0), EBADF);
    FAILS(munmap(p + 1, page), EINVAL);
    /* brk */
    long cur = syscall(SYS_brk, 0);
    CHECK(cur > 0);
    CHECK(syscall(SYS_brk, cur + 3 * page) == cur + 3 * (long)page);
    memset((void *)cur, 9, 3 * page);
    CHECK(syscall(SYS_brk, cur) == cur);
    /* malloc: small and large (musl uses brk and mmap) */
    for (int i = 0; i < 200; i++) {
        size_t size = (size_t)(i * 977) % 300000 + 1;
        char *m = malloc(size);
        CHECK(m);
        m[0] = m[size - 1] = (char)i;
        char *m2 = realloc(m, size * 2);
        CHECK(m2 && m2[0] == (char)i && m2[size - 1] == (char)i);
        free(m2);
    }
    /* file mappings: private copy, shared with msync writing back */
    mkdir("/tmp", 0777);
    int fd = open("/tmp/map.txt", O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, "mapped file contents", 20) == 20);
    char *fp = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    CHECK(fp != MAP_FAILED && memcmp(fp, "mapped file contents", 20) == 0 && fp[20] == 0);
    fp[0] = 'M';
    char buf[32];
    CHECK(pread(fd, buf, 20, 0) == 20 && buf[0] == 'm'); /* private: not written back */
    CHECK(munmap(fp, page) == 0);
    char *sp = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(sp != MAP_FAILED);
    memcpy(sp, "MAPPED", 6);
    CHECK(msync(sp, page, MS_SYNC) == 0);
    CHECK(pread(fd, buf, 20, 0) == 20 && memcmp(buf, "MAPPED file contents", 20) == 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0 && st.st_size == 20); /* the page's tail is not file data */
    sp[7] = 'F';
    CHECK(munmap(sp, page) == 0); /* munmap writes back too */
    CHECK(pread(fd, buf, 20, 0) == 20 && buf[7] == 'F');
    FAILS(msync(sp + 1, page, MS_SYNC), EINVAL);
    close(fd);
    printf("ok mem\n");
}

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static void time_family(void) {
    struct timespec a, b, r;
    CHECK(clock_gettime(CLOCK_MONOTONIC, &a) == 0);
    struct timespec nap = {0, 20 * 1000 * 1000};
    CHECK(nanosleep(&nap, NULL) == 0);
    CHECK(clock_gettime(CLOCK_MONOTONIC, &b) == 0);
    CHECK(ns(b) - ns(a) >= 20 * 1000 * 1000);
    CHECK(clock_getres(CLOCK_MONOTONIC, &r) == 0 && r.tv_sec == 0 && r.tv_nsec > 0);
    CHECK(clock_gettime(CLOCK_REALTIME, &a) == 0);
    struct timeval tv;
    CHECK(gettimeofday(&tv, NULL) == 0 && tv.tv_usec < 1000000);
    FAILS(clock_gettime(12345, &a), EINVAL);
    struct timespec badnap = {0, 1000000000};
    FAILS(nanosleep(&badnap, NULL), EINVAL);
    FAILS(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, (void *)16), EFAULT);
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct timespec until = {a.tv_sec, a.tv_nsec + 10 * 1000 * 1000};
    if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
    CHECK(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    CHECK(ns(b) >= ns(until));
    CHECK(clock_nanosleep(CLOCK_MONOTONIC, 0x10, &nap, NULL) == EINVAL);
    printf("ok time\n");
}

#define MS (1000LL * 1000)
#define SECOND (1000 * MS)

static struct timespec plus_ns(struct timespec t, long long d) {
    long long total = ns(t) + d;
    return (struct timespec){total / SECOND, total % SECOND};
}

static long long monotonic_since(struct timespec start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return ns(now) - ns(start);
}

/* The wall clock. Prints "wallclock realtime SECONDS.NANOSECONDS" for the host to compare with
 * its own clock, then checks that every real-time interface tells that time, that it advances
 * with the monotonic clock, that absolute real-time deadlines (clock_nanosleep, futex, timerfd)
 * wake on time, that new files take it for their times, and that clock_settime steps it. */
static void wallclock(void) {
    struct timespec rt, rt0, rt1, mono0, mono1, res;
    CHECK(clock_gettime(CLOCK_REALTIME, &rt) == 0);
    printf("wallclock realtime %lld.%09ld\n", (long long)rt.tv_sec, rt.tv_nsec);
    time_t seconds = rt.tv_sec;
    struct tm tm;
    char date[32];
    CHECK(gmtime_r(&seconds, &tm) && strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm) > 0);
    printf("wallclock date %s UTC\n", date);
    /* the machine's clock, not 1970 plus the uptime */
    CHECK(rt.tv_sec > 1577836800); /* 2020-01-01 */

    /* time(), gettimeofday and the coarse clock tell the same time (musl's time() and
     * gettimeofday() read clock_gettime; the system calls are checked directly too) */
    time_t t = time(NULL);
    CHECK(t >= rt.tv_sec && t - rt.tv_sec <= 1);
#ifdef SYS_time
    time_t stored = 0;
    long returned = syscall(SYS_time, &stored);
    CHECK(returned == stored && stored >= rt.tv_sec && stored - rt.tv_sec <= 1);
#endif
    struct timeval tv;
    struct { int minuteswest, dsttime; } tz = {99, 99};
    CHECK(syscall(SYS_gettimeofday, &tv, &tz) == 0 && tv.tv_sec >= rt.tv_sec && tv.tv_sec - rt.tv_sec <= 1);
    CHECK(tv.tv_usec >= 0 && tv.tv_usec < 1000000 && tz.minuteswest == 0 && tz.dsttime == 0);
    CHECK(clock_gettime(CLOCK_REALTIME_COARSE, &rt1) == 0 && ns(rt1) >= ns(rt) && rt1.tv_sec - rt.tv_sec <= 1);
    CHECK(clock_getres(CLOCK_REALTIME, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0);

    /* 100 ms of sleep advance both clocks alike: each real-time reading is taken between two
     * monotonic ones, so the real-time interval must lie between the inner and the outer
     * monotonic intervals (however long the host stalls the guest between two readings) */
    struct timespec mono0_after, mono1_before;
    CHECK(clock_gettime(CLOCK_MONOTONIC, &mono0) == 0 && clock_gettime(CLOCK_REALTIME, &rt0) == 0 &&
          clock_gettime(CLOCK_MONOTONIC, &mono0_after) == 0);
    struct timespec nap = {0, 100 * MS};
    CHECK(nanosleep(&nap, NULL) == 0);
    CHECK(clock_gettime(CLOCK_MONOTONIC, &mono1_before) == 0 && clock_gettime(CLOCK_REALTIME, &rt1) == 0 &&
          clock_gettime(CLOCK_MONOTONIC, &mono1) == 0);
    long long real = ns(rt1) - ns(rt0), inner = ns(mono1_before) - ns(mono0_after), outer = ns(mono1) - ns(mono0);
    printf("wallclock slept: realtime %lld ns, monotonic between %lld and %lld ns\n", real, inner, outer);
    CHECK(real >= 100 * MS && inner <= real && real <= outer);

    /* absolute real-time deadlines wake when the wall clock reaches them, not decades later */
    clock_gettime(CLOCK_MONOTONIC, &mono0);
    clock_gettime(CLOCK_REALTIME, &rt0);
    struct timespec until = plus_ns(rt0, 30 * MS);
    CHECK(clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &until, NULL) == 0);
    CHECK(clock_gettime(CLOCK_REALTIME, &rt1) == 0 && ns(rt1) >= ns(until));
    long long waited = monotonic_since(mono0);
    CHECK(waited >= 29 * MS && waited < 5 * SECOND);
    until = plus_ns(rt0, -SECOND); /* already past: returns at once */
    CHECK(clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &until, NULL) == 0);

    int word = 0;
    clock_gettime(CLOCK_MONOTONIC, &mono0);
    clock_gettime(CLOCK_REALTIME, &rt0);
    until = plus_ns(rt0, 20 * MS);
    FAILS(syscall(SYS_futex, &word, FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME, 0, &until, NULL, FUTEX_BITSET_MATCH_ANY), ETIMEDOUT);
    waited = monotonic_since(mono0);
    CHECK(waited >= 19 * MS && waited < 5 * SECOND);

    int tf = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC);
    CHECK(tf >= 0);
    clock_gettime(CLOCK_MONOTONIC, &mono0);
    clock_gettime(CLOCK_REALTIME, &rt0);
    struct itimerspec at = {{0, 0}, plus_ns(rt0, 20 * MS)};
    CHECK(timerfd_settime(tf, TFD_TIMER_ABSTIME, &at, NULL) == 0);
    uint64_t expirations = 0;
    CHECK(read(tf, &expirations, sizeof expirations) == sizeof expirations && expirations == 1);
    waited = monotonic_since(mono0);
    CHECK(waited >= 19 * MS && waited < 5 * SECOND);
    close(tf);

    /* new files take the wall clock's time */
    mkdir("/tmp", 0777);
    int fd = open("/tmp/wallclock.txt", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, "x", 1) == 1 && close(fd) == 0);
    struct stat st;
    CHECK(stat("/tmp/wallclock.txt", &st) == 0 && clock_gettime(CLOCK_REALTIME, &rt1) == 0);
    CHECK(st.st_mtime >= rt.tv_sec && st.st_mtime <= rt1.tv_sec);
    CHECK(st.st_ctime >= rt.tv_sec && st.st_atime >= rt.tv_sec);
    CHECK(unlink("/tmp/wallclock.txt") == 0);

    /* clock_settime steps the wall clock (and only it) */
    FAILS(clock_settime(CLOCK_MONOTONIC, &rt), EINVAL);
    struct timespec bad = {rt.tv_sec, 1000000000};
    FAILS(clock_settime(CLOCK_REALTIME, &bad), EINVAL);
    FAILS(syscall(SYS_clock_settime, CLOCK_REALTIME, (void *)16), EFAULT);
    clock_gettime(CLOCK_MONOTONIC, &mono0);
    clock_gettime(CLOCK_REALTIME, &rt0);
    struct timespec ahead = plus_ns(rt0, 1000000 * SECOND); /* eleven days on */
    CHECK(clock_settime(CLOCK_REALTIME, &ahead) == 0);
    CHECK(clock_gettime(CLOCK_REALTIME, &rt1) == 0 && clock_gettime(CLOCK_MONOTONIC, &mono1) == 0);
    CHECK(ns(rt1) >= ns(ahead) && ns(rt1) - ns(ahead) < SECOND);
    CHECK(ns(mono1) - ns(mono0) < SECOND);
    struct timespec back = plus_ns(rt1, -1000000 * SECOND);
    CHECK(clock_settime(CLOCK_REALTIME, &back) == 0 && clock_gettime(CLOCK_REALTIME, &rt1) == 0);
    CHECK(ns(rt1) >= ns(rt0) && ns(rt1) - ns(rt0) < SECOND);
    printf("ok wallclock\n");
}

static void process(void) {
    CHECK(getpid() == 1 && getppid() == 0 && syscall(SYS_gettid) == 1);
    CHECK(getuid() == 0 && geteuid() == 0 && getgid() == 0 && getegid() == 0);
    struct utsname u;
    CHECK(uname(&u) == 0 && strcmp(u.sysname, "Linux") == 0);
#if defined(__x86_64__)
    CHECK(strcmp(u.machine, "x86_64") == 0);
#else
    CHECK(strcmp(u.machine, "aarch64") == 0);
#endif
    unsigned char r1[32] = {0}, r2[32] = {0};
    CHECK(getrandom(r1, sizeof r1, 0) == 32 && getrandom(r2, sizeof r2, 0) == 32 && memcmp(r1, r2, 32) != 0);
    FAILS(getrandom(r1, 4, 0x100), EINVAL);
    struct sysinfo si;
    CHECK(sysinfo(&si) == 0 && si.totalram > 0 && si.freeram <= si.totalram && si.procs == 1);
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == 1024);
    CHECK(getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur > 0);
    FAILS(prlimit(999, RLIMIT_NOFILE, NULL, &rl), ESRCH);
    /* no second process until libos has them */
    FAILS(fork(), ENOSYS);
    char *argv[] = {"x", NULL};
    FAILS(execve("/bin/sh", argv, argv + 1), ENOSYS);
    cpu_set_t set;
    /* Every CPU the program may use, as many as are online (smp.c checks the number). */
    CHECK(sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) == sysconf(_SC_NPROCESSORS_ONLN) && CPU_ISSET(0, &set));
    CHECK(sched_yield() == 0);
    /* CPU time: what the CPU spent busy, growing with work, not with sleep. */
    struct rusage ru;
    struct timespec cpu0, cpu1, cpu2;
    CHECK(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0) == 0);
    for (volatile unsigned long spin = 0; spin < 3000000; spin++) {
    }
    CHECK(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1) == 0);
    CHECK(cpu1.tv_sec > cpu0.tv_sec || (cpu1.tv_sec == cpu0.tv_sec && cpu1.tv_nsec > cpu0.tv_nsec));
    usleep(200000);
    CHECK(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu2) == 0);
    long long slept_cpu_ns = (cpu2.tv_sec - cpu1.tv_sec) * 1000000000LL + (cpu2.tv_nsec - cpu1.tv_nsec);
    CHECK(slept_cpu_ns >= 0 && slept_cpu_ns < 100000000); /* a 200 ms sleep is not CPU time */
    CHECK(getrusage(RUSAGE_SELF, &ru) == 0 && (ru.ru_utime.tv_sec > 0 || ru.ru_utime.tv_usec > 0) && ru.ru_maxrss > 0);
    CHECK(getrusage(RUSAGE_CHILDREN, &ru) == 0 && ru.ru_utime.tv_sec == 0 && ru.ru_utime.tv_usec == 0);
    FAILS(getrusage(7, &ru), EINVAL);
    struct tms tms;
    CHECK(times(&tms) != (clock_t)-1 && tms.tms_cutime == 0);
    /* Priority, policy, CPU, locked memory, process group and session: a lone process. */
    errno = 0;
    CHECK(getpriority(PRIO_PROCESS, 0) == 0 && errno == 0);
    CHECK(setpriority(PRIO_PROCESS, 0, 5) == 0 && getpriority(PRIO_PROCESS, 0) == 5);
    CHECK(setpriority(PRIO_PROCESS, 0, 99) == 0 && getpriority(PRIO_PROCESS, 0) == 19);
    CHECK(setpriority(PRIO_PROCESS, 0, 0) == 0);
    FAILS(getpriority(PRIO_PROCESS, 4242), ESRCH);
    FAILS(getpriority(9, 0), EINVAL);
    struct sched_param sp = {.sched_priority = 7};
    /* musl's wrappers of these two are ENOSYS stubs: the raw calls. */
    CHECK(syscall(SYS_sched_getscheduler, 0) == SCHED_OTHER && syscall(SYS_sched_getparam, 0, &sp) == 0 && sp.sched_priority == 0);
    FAILS(syscall(SYS_sched_getscheduler, 4242), ESRCH);
    unsigned cpu = 9, node = 9;
    CHECK(syscall(SYS_getcpu, &cpu, &node, NULL) == 0 && cpu < (unsigned)sysconf(_SC_NPROCESSORS_ONLN) && node == 0);
    static char lockable[8192];
    CHECK(mlock(lockable, sizeof lockable) == 0 && munlock(lockable, sizeof lockable) == 0);
    CHECK(mlockall(MCL_CURRENT | MCL_FUTURE) == 0 && munlockall() == 0);
    FAILS(mlockall(0), EINVAL);
    CHECK(getpgid(0) == 1 && getpgrp() == 1 && getsid(0) == 1);
    FAILS(setpgid(0, 0), EPERM); /* process 1 leads session 1: a session leader cannot move */
    FAILS(setpgid(4242, 0), ESRCH);
    FAILS(getpgid(4242), ESRCH);
    FAILS(getpgid(-1), ESRCH);
    FAILS(getsid(-1), ESRCH);
    FAILS(setsid(), EPERM);
    printf("ok process\n");
}

/* pthreads: 8 threads, a mutex-protected counter, a condvar barrier, TLS, join results. */
#define THREADS 8
#define ROUNDS 2000
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static long counter;
static int arrived;
static __thread long mine = 100;

static void *worker(void *arg) {
    long id = (long)arg;
    mine += id; /* each thread starts from its own copy of the initial value */
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
        if (i % 256 == 0) sched_yield();
    }
    pthread_mutex_lock(&lock);
    arrived++;
    pthread_cond_broadcast(&cond);
    while (arrived < THREADS) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    return (void *)(mine * 10);
}

static void threads(void) {
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0);
    for (long i = 0; i < THREADS; i++) {
        void *result;
        CHECK(pthread_join(t[i], &result) == 0);
        CHECK((long)result == (100 + i) * 10);
    }
    CHECK(counter == THREADS * ROUNDS && mine == 100);
    /* a timed wait that times out */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += 5 * 1000 * 1000;
    if (deadline.tv_nsec >= 1000000000) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000; }
    pthread_mutex_lock(&lock);
    CHECK(pthread_cond_timedwait(&cond, &lock, &deadline) == ETIMEDOUT);
    pthread_mutex_unlock(&lock);
    /* futex errors */
    int word = 5;
    FAILS(syscall(SYS_futex, &word, FUTEX_WAIT, 6, NULL, NULL, 0), EAGAIN);
    struct timespec short_wait = {0, 1000000};
    FAILS(syscall(SYS_futex, &word, FUTEX_WAIT, 5, &short_wait, NULL, 0), ETIMEDOUT);
    FAILS(syscall(SYS_futex, (char *)&word + 1, FUTEX_WAKE, 1, NULL, NULL, 0), EINVAL);
    CHECK(syscall(SYS_futex, &word, FUTEX_WAKE, 1, NULL, NULL, 0) == 0);
    printf("ok threads\n");
}

/* Pipes, eventfd and poll: data, end of file, non-blocking, readiness, a thread waking a poller. */
static int wake_fd;
static void *late_writer(void *arg) {
    (void)arg;
    struct timespec nap = {0, 20 * 1000 * 1000};
    nanosleep(&nap, NULL);
    uint64_t one = 1;
    return (void *)(long)write(wake_fd, &one, 8);
}

static void events(void) {
    int p[2];
    char buf[16];
    CHECK(pipe2(p, O_CLOEXEC) == 0 && fcntl(p[0], F_GETFD) == FD_CLOEXEC);
    FAILS(pipe2(p, 0x1234), EINVAL);
    struct pollfd pf[2] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}};
    CHECK(poll(pf, 2, 0) == 1 && pf[0].revents == 0 && pf[1].revents == POLLOUT);
    CHECK(write(p[1], "ping", 4) == 4);
    CHECK(poll(pf, 1, -1) == 1 && pf[0].revents == POLLIN);
    CHECK(read(p[0], buf, sizeof buf) == 4 && memcmp(buf, "ping", 4) == 0);
    FAILS(lseek(p[0], 0, SEEK_SET), ESPIPE);
    CHECK(close(p[1]) == 0);
    CHECK(read(p[0], buf, sizeof buf) == 0); /* end of file */
    CHECK(poll(pf, 1, 0) == 1 && (pf[0].revents & POLLHUP));
    close(p[0]);
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    FAILS(read(p[0], buf, 1), EAGAIN);
    close(p[0]); close(p[1]);
    /* eventfd */
    int e = eventfd(3, EFD_NONBLOCK);
    uint64_t v;
    CHECK(e >= 0 && read(e, &v, 8) == 8 && v == 3);
    FAILS(read(e, &v, 8), EAGAIN);
    v = 5;
    CHECK(write(e, &v, 8) == 8 && write(e, &v, 8) == 8 && read(e, &v, 8) == 8 && v == 10);
    FAILS(read(e, &v, 4), EINVAL);
    FAILS(eventfd(0, 0x4242), EINVAL);
    close(e);
    /* poll timeout with nothing ready, then a thread's write wakes a blocked poll */
    struct timespec t0, t1;
    wake_fd = eventfd(0, 0);
    struct pollfd w = {wake_fd, POLLIN, 0};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(poll(&w, 1, 15) == 0 && w.revents == 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec) >= 15 * 1000 * 1000);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, late_writer, NULL) == 0);
    CHECK(poll(&w, 1, 5000) == 1 && w.revents == POLLIN);
    void *r;
    CHECK(pthread_join(t, &r) == 0 && (long)r == 8);
    struct pollfd bad = {999, POLLIN, 0};
    CHECK(poll(&bad, 1, 0) == 1 && bad.revents == POLLNVAL);
    FAILS(poll((struct pollfd *)8, 1, 0), EFAULT);
    close(wake_fd);
    /* select */
    CHECK(pipe(p) == 0);
    fd_set rs, ws;
    FD_ZERO(&rs); FD_ZERO(&ws);
    FD_SET(p[0], &rs); FD_SET(p[1], &ws);
    struct timeval tv = {0, 0};
    CHECK(select(p[1] + 1, &rs, &ws, NULL, &tv) == 1 && !FD_ISSET(p[0], &rs) && FD_ISSET(p[1], &ws));
    CHECK(write(p[1], "x", 1) == 1);
    FD_ZERO(&rs); FD_SET(p[0], &rs);
    tv.tv_sec = 1;
    CHECK(select(p[0] + 1, &rs, NULL, NULL, &tv) == 1 && FD_ISSET(p[0], &rs));
    FD_ZERO(&rs); FD_SET(90, &rs);
    FAILS(select(91, &rs, NULL, NULL, &tv), EBADF);
    /* epoll (level-triggered) */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0xabcdef};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
    FAILS(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), EEXIST);
    FAILS(epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL), ENOENT);
    FAILS(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev), EINVAL);
    struct epoll_event out[4];
    CHECK(epoll_wait(ep, out, 4, 1000) == 1 && out[0].events == EPOLLIN && out[0].data.u64 == 0xabcdef);
    CHECK(read(p[0], buf, 1) == 1);
    CHECK(epoll_wait(ep, out, 4, 10) == 0);
    FAILS(epoll_wait(ep, out, 0, 0), EINVAL);
    close(p[0]); close(p[1]);
    /* timerfd: a one-shot through epoll, then a periodic one read directly */
    int tf = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    CHECK(tf >= 0);
    struct itimerspec its = {{0, 0}, {0, 20 * 1000 * 1000}}, cur;
    clock_gettime(CLOCK_MONOTONIC, &t0); /* before arming: the expiry is >= 20 ms after this */
    CHECK(timerfd_settime(tf, 0, &its, NULL) == 0);
    CHECK(timerfd_gettime(tf, &cur) == 0 && cur.it_value.tv_nsec > 0);
    ev.events = EPOLLIN;
    ev.data.fd = tf;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, tf, &ev) == 0);
    CHECK(epoll_wait(ep, out, 4, 5000) == 1 && out[0].data.fd == tf);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec) >= 20 * 1000 * 1000);
    CHECK(read(tf, &v, 8) == 8 && v == 1);
    struct itimerspec periodic = {{0, 5 * 1000 * 1000}, {0, 5 * 1000 * 1000}};
    CHECK(timerfd_settime(tf, 0, &periodic, NULL) == 0);
    CHECK(read(tf, &v, 8) == 8 && v >= 1);
    struct itimerspec badts = {{0, 0}, {0, 2000000000}};
    FAILS(timerfd_settime(tf, 0, &badts, NULL), EINVAL);
    FAILS(timerfd_create(12345, 0), EINVAL);
    close(tf); close(ep);
    printf("ok events\n");
}

static volatile sig_atomic_t got;
static void on_signal(int sig) { got = sig; }

static void signals(void) {
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_signal;
    CHECK(sigaction(SIGUSR1, &sa, &old) == 0 && old.sa_handler == SIG_DFL);
    CHECK(raise(SIGUSR1) == 0 && got == SIGUSR1);
    got = 0;
    sigset_t block, previous;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    CHECK(sigprocmask(SIG_BLOCK, &block, &previous) == 0);
    CHECK(raise(SIGUSR1) == 0 && got == 0); /* pending while blocked */
    CHECK(sigprocmask(SIG_SETMASK, &previous, NULL) == 0 && got == SIGUSR1); /* delivered now */
    signal(SIGUSR2, SIG_IGN);
    CHECK(raise(SIGUSR2) == 0);
    CHECK(kill(getpid(), 0) == 0);
    FAILS(kill(4242, SIGUSR1), ESRCH);
    FAILS(sigaction(SIGKILL, &sa, NULL), EINVAL);
    FAILS(sigaction(99, &sa, NULL), EINVAL);
    stack_t ss = {.ss_sp = malloc(SIGSTKSZ), .ss_size = SIGSTKSZ, .ss_flags = 0}, oss;
    CHECK(sigaltstack(&ss, NULL) == 0 && sigaltstack(NULL, &oss) == 0 && oss.ss_size == SIGSTKSZ);
    ss.ss_size = 16;
    FAILS(sigaltstack(&ss, NULL), ENOMEM);
    printf("ok signals\n");
}


/* ---- sigdeliver: signal frames, masks, alternate stacks, other threads, waits ---- */

static volatile sig_atomic_t hits, nested_hits;
static volatile pid_t handler_tid;
static volatile int info_signo, info_code, info_pid, ctx_ok, mask_had_self, mask_had_extra;
static volatile uintptr_t handler_local;
static sigjmp_buf jump_back;

static int blocked_now(int sig) {
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    return sigismember(&now, sig);
}

static void on_info(int sig, siginfo_t *info, void *ucontext) {
    ucontext_t *uc = ucontext;
    hits++;
    handler_tid = gettid();
    info_signo = info->si_signo;
    info_code = info->si_code;
    info_pid = info->si_pid;
    /* The context describes the interrupted code: its stack pointer is near this one (the
     * main stack), and its mask is the one before delivery (SIGUSR2 blocked by the caller). */
#if defined(__x86_64__)
    uintptr_t sp = uc->uc_mcontext.gregs[REG_RSP];
#else
    uintptr_t sp = uc->uc_mcontext.sp;
#endif
    volatile char here;
    ctx_ok = sp > (uintptr_t)&here && sp - (uintptr_t)&here < (64 << 10) && sigismember(&uc->uc_sigmask, SIGUSR2) &&
             !sigismember(&uc->uc_sigmask, sig);
    mask_had_self = blocked_now(sig);
    mask_had_extra = blocked_now(SIGWINCH);
}

static void on_count(int sig) { (void)sig; hits++; }
static void on_local(int sig) {
    volatile char local;
    (void)sig;
    hits++;
    handler_local = (uintptr_t)&local;
    stack_t now;
    sigaltstack(NULL, &now);
    ctx_ok = (now.ss_flags & SS_ONSTACK) != 0;
    stack_t other = {.ss_sp = malloc(SIGSTKSZ), .ss_size = SIGSTKSZ};
    errno = 0;
    mask_had_self = sigaltstack(&other, NULL) == -1 && errno == EPERM; /* not while on it */
}
static void on_jump(int sig) { (void)sig; hits++; siglongjmp(jump_back, 7); }
static void on_nest_inner(int sig) { (void)sig; nested_hits++; }
static void on_nest_outer(int sig) {
    (void)sig;
    hits++;
    raise(SIGUSR2); /* a different, unblocked signal: a handler on top of this one */
}
static void on_tid(int sig) { (void)sig; hits++; handler_tid = gettid(); }

/* Clobbers every vector register and the general registers a handler may use. */
static void on_clobber(int sig) {
    (void)sig;
    hits++;
#if defined(__x86_64__)
    __asm__ volatile("pcmpeqd %%xmm0, %%xmm0\n movdqa %%xmm0, %%xmm1\n movdqa %%xmm0, %%xmm2\n movdqa %%xmm0, %%xmm3\n"
                     "movdqa %%xmm0, %%xmm4\n movdqa %%xmm0, %%xmm5\n movdqa %%xmm0, %%xmm6\n movdqa %%xmm0, %%xmm7\n"
                     "movdqa %%xmm0, %%xmm8\n movdqa %%xmm0, %%xmm9\n movdqa %%xmm0, %%xmm10\n movdqa %%xmm0, %%xmm11\n"
                     "movdqa %%xmm0, %%xmm12\n movdqa %%xmm0, %%xmm13\n movdqa %%xmm0, %%xmm14\n movdqa %%xmm0, %%xmm15\n"
                     "mov $-1, %%r8\n mov $-1, %%r9\n mov $-1, %%r10\n mov $-1, %%r11\n mov $-1, %%rdx\n mov $-1, %%rsi\n"
                     ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
                     "xmm12", "xmm13", "xmm14", "xmm15", "r8", "r9", "r10", "r11", "rdx", "rsi");
#else
    __asm__ volatile("movi v0.16b, #0xff\n mov v1.16b, v0.16b\n mov v2.16b, v0.16b\n mov v3.16b, v0.16b\n"
                     "mov v4.16b, v0.16b\n mov v5.16b, v0.16b\n mov v6.16b, v0.16b\n mov v7.16b, v0.16b\n"
                     "mov v8.16b, v0.16b\n mov v9.16b, v0.16b\n mov v10.16b, v0.16b\n mov v11.16b, v0.16b\n"
                     "mov v12.16b, v0.16b\n mov v13.16b, v0.16b\n mov v14.16b, v0.16b\n mov v15.16b, v0.16b\n"
                     "mov v16.16b, v0.16b\n mov v17.16b, v0.16b\n mov v18.16b, v0.16b\n mov v19.16b, v0.16b\n"
                     "mov v20.16b, v0.16b\n mov v21.16b, v0.16b\n mov v22.16b, v0.16b\n mov v23.16b, v0.16b\n"
                     "mov v24.16b, v0.16b\n mov v25.16b, v0.16b\n mov v26.16b, v0.16b\n mov v27.16b, v0.16b\n"
                     "mov v28.16b, v0.16b\n mov v29.16b, v0.16b\n mov v30.16b, v0.16b\n mov v31.16b, v0.16b\n"
                     "mov x1, #-1\n mov x2, #-1\n mov x3, #-1\n mov x9, #-1\n mov x10, #-1\n mov x15, #-1\n mov x16, #-1\n"
                     ::: "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13", "v14",
                     "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28",
                     "v29", "v30", "v31", "x1", "x2", "x3", "x9", "x10", "x15", "x16");
#endif
}

/* Loads registers with known values, sends SIGUSR1 to this thread with a raw system call (the
 * handler runs as it returns), and reports how many registers came back changed: a signal
 * must be invisible to the interrupted code. */
static int registers_changed_by_a_handler(void) {
    /* buf[0..14]: values loaded; buf[16..30]: values read back. */
    static uint64_t buf[32];
    for (int i = 0; i < 14; i++) buf[i] = 0x0123456789abcdefull * (uint64_t)(i + 3);
    buf[14] = (uint64_t)gettid();
#if defined(__x86_64__)
    __asm__ volatile(
        "movdqu 0(%[b]), %%xmm0\n movdqu 16(%[b]), %%xmm1\n movdqu 32(%[b]), %%xmm8\n movdqu 48(%[b]), %%xmm15\n"
        "mov 64(%[b]), %%r8\n mov 72(%[b]), %%r9\n mov 80(%[b]), %%r10\n mov 88(%[b]), %%r12\n"
        "mov 96(%[b]), %%r13\n mov 104(%[b]), %%rbx\n"
        "mov 112(%[b]), %%rdi\n mov $10, %%esi\n mov $200, %%eax\n syscall\n" /* tkill(tid, SIGUSR1) */
        "movdqu %%xmm0, 128(%[b])\n movdqu %%xmm1, 144(%[b])\n movdqu %%xmm8, 160(%[b])\n movdqu %%xmm15, 176(%[b])\n"
        "mov %%r8, 192(%[b])\n mov %%r9, 200(%[b])\n mov %%r10, 208(%[b])\n mov %%r12, 216(%[b])\n"
        "mov %%r13, 224(%[b])\n mov %%rbx, 232(%[b])\n"
        :
        : [b] "r"(buf)
        : "rax", "rcx", "rdx", "rdi", "rsi", "r8", "r9", "r10", "r11", "r12", "r13", "rbx", "xmm0", "xmm1", "xmm8",
          "xmm15", "memory");
#else
    __asm__ volatile(
        "ldp q0, q1, [%[b]]\n ldp q8, q31, [%[b], #32]\n"
        "ldp x10, x2, [%[b], #64]\n ldp x3, x9, [%[b], #80]\n ldp x19, x15, [%[b], #96]\n"
        "ldr x0, [%[b], #112]\n mov x1, #10\n mov x8, #130\n svc #0\n" /* tkill(tid, SIGUSR1) */
        "stp q0, q1, [%[b], #128]\n stp q8, q31, [%[b], #160]\n"
        "stp x10, x2, [%[b], #192]\n stp x3, x9, [%[b], #208]\n stp x19, x15, [%[b], #224]\n"
        :
        : [b] "r"(buf)
        : "x0", "x1", "x2", "x3", "x8", "x9", "x10", "x15", "x19", "v0", "v1", "v8", "v31", "memory");
#endif
    int changed = 0;
    for (int i = 0; i < 14; i++) {
        if (buf[i] != buf[16 + i]) {
            printf("register slot %d changed: %llx -> %llx\n", i, (unsigned long long)buf[i], (unsigned long long)buf[16 + i]);
            changed++;
        }
    }
    return changed;
}

static int signal_pipe[2];
static volatile pid_t waiter_tid;
static volatile int waiter_errno;

static void *read_blocked(void *arg) {
    (void)arg;
    waiter_tid = gettid();
    char c;
    ssize_t n = read(signal_pipe[0], &c, 1); /* nobody writes: only a signal ends this */
    waiter_errno = n == -1 ? errno : 0;
    return NULL;
}

static void *spin_on_syscalls(void *arg) {
    (void)arg;
    waiter_tid = gettid();
    while (hits == 0) sched_yield();
    return NULL;
}

static void *send_later(void *arg) {
    struct timespec d = {0, 50 * 1000 * 1000};
    nanosleep(&d, NULL);
    kill(getpid(), (int)(intptr_t)arg);
    return NULL;
}

static void handle(int sig, void (*fn)(int), int flags) {
    struct sigaction sa = {0};
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    CHECK(sigaction(sig, &sa, NULL) == 0);
}

static void sigdeliver(void) {
    /* siginfo and ucontext; the handler's mask; the mask comes back after the handler. */
    struct sigaction sa = {0};
    sa.sa_sigaction = on_info;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGWINCH);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    sigset_t usr2, previous;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    CHECK(sigprocmask(SIG_BLOCK, &usr2, &previous) == 0);
    hits = 0;
    CHECK(raise(SIGUSR1) == 0 && hits == 1);
    CHECK(info_signo == SIGUSR1 && info_code == SI_TKILL && handler_tid == gettid());
    CHECK(ctx_ok && mask_had_self && mask_had_extra);
    CHECK(!blocked_now(SIGUSR1) && !blocked_now(SIGWINCH) && blocked_now(SIGUSR2));
    CHECK(kill(getpid(), SIGUSR1) == 0 && hits == 2 && info_code == SI_USER && info_pid == getpid());
    /* rt_sigpending and rt_sigtimedwait take a blocked pending signal without its handler. */
    CHECK(raise(SIGUSR2) == 0);
    sigset_t pending;
    CHECK(sigpending(&pending) == 0 && sigismember(&pending, SIGUSR2));
    siginfo_t info;
    struct timespec zero = {0, 0};
    CHECK(sigtimedwait(&usr2, &info, &zero) == SIGUSR2 && info.si_signo == SIGUSR2 && info.si_code == SI_TKILL);
    FAILS(sigtimedwait(&usr2, &info, &zero), EAGAIN);
    CHECK(sigprocmask(SIG_SETMASK, &previous, NULL) == 0);

    /* Every register comes back as it was, vector registers included. */
    handle(SIGUSR1, on_clobber, 0);
    hits = 0;
    int changed = registers_changed_by_a_handler();
    CHECK(hits == 1 && changed == 0);

    /* SA_NODEFER: the signal is not blocked in its handler; SA_RESETHAND: one shot. */
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    CHECK(raise(SIGUSR1) == 0 && !mask_had_self);
    struct sigaction now;
    CHECK(sigaction(SIGUSR1, NULL, &now) == 0 && now.sa_handler == SIG_DFL);

    /* SA_ONSTACK runs the handler on the alternate stack, which knows it is in use. */
    size_t size = 64 << 10;
    char *alt = malloc(size);
    stack_t ss = {.ss_sp = alt, .ss_size = size, .ss_flags = 0};
    CHECK(sigaltstack(&ss, NULL) == 0);
    handle(SIGUSR1, on_local, SA_ONSTACK);
    hits = 0;
    CHECK(raise(SIGUSR1) == 0 && hits == 1);
    CHECK(handler_local > (uintptr_t)alt && handler_local < (uintptr_t)alt + size && ctx_ok && mask_had_self);
    stack_t after;
    CHECK(sigaltstack(NULL, &after) == 0 && !(after.ss_flags & SS_ONSTACK) && after.ss_sp == alt);
    handle(SIGUSR1, on_local, 0); /* without SA_ONSTACK: the normal stack */
    CHECK(raise(SIGUSR1) == 0 && !(handler_local > (uintptr_t)alt && handler_local < (uintptr_t)alt + size));

    /* siglongjmp out of a handler restores the mask saved by sigsetjmp. */
    handle(SIGUSR1, on_jump, 0);
    hits = 0;
    if (sigsetjmp(jump_back, 1) == 0) {
        raise(SIGUSR1);
        CHECK(!"the handler should have jumped");
    }
    CHECK(hits == 1 && !blocked_now(SIGUSR1));

    /* A handler interrupted by another signal. */
    handle(SIGUSR1, on_nest_outer, 0);
    handle(SIGUSR2, on_nest_inner, 0);
    hits = nested_hits = 0;
    CHECK(raise(SIGUSR1) == 0 && hits == 1 && nested_hits == 1);

    /* Another thread's signal: delivered on that thread, interrupting a blocking read. */
    handle(SIGUSR1, on_tid, 0);
    CHECK(pipe(signal_pipe) == 0);
    pthread_t t;
    hits = 0;
    waiter_tid = 0;
    CHECK(pthread_create(&t, NULL, read_blocked, NULL) == 0);
    while (waiter_tid == 0) sched_yield();
    struct timespec settle = {0, 20 * 1000 * 1000};
    nanosleep(&settle, NULL); /* let it block in read() */
    CHECK(pthread_kill(t, SIGUSR1) == 0 && pthread_join(t, NULL) == 0);
    CHECK(hits == 1 && handler_tid == waiter_tid && waiter_errno == EINTR);
    /* ...and on a thread that only makes non-blocking calls. */
    hits = 0;
    waiter_tid = 0;
    CHECK(pthread_create(&t, NULL, spin_on_syscalls, NULL) == 0);
    while (waiter_tid == 0) sched_yield();
    CHECK(pthread_kill(t, SIGUSR1) == 0 && pthread_join(t, NULL) == 0 && hits == 1 && handler_tid == waiter_tid);

    /* sigsuspend waits with a temporary mask; the old one is back afterwards. */
    sigset_t usr1, empty;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigemptyset(&empty);
    CHECK(sigprocmask(SIG_BLOCK, &usr1, &previous) == 0);
    hits = 0;
    CHECK(pthread_create(&t, NULL, send_later, (void *)(intptr_t)SIGUSR1) == 0);
    errno = 0;
    CHECK(sigsuspend(&empty) == -1 && errno == EINTR && hits == 1 && blocked_now(SIGUSR1));
    CHECK(pthread_join(t, NULL) == 0 && sigprocmask(SIG_SETMASK, &previous, NULL) == 0);

    /* An interrupted nanosleep reports EINTR and the time left. */
    handle(SIGUSR1, on_count, 0);
    hits = 0;
    CHECK(pthread_create(&t, NULL, send_later, (void *)(intptr_t)SIGUSR1) == 0);
    struct timespec two = {2, 0}, left = {0, 0};
    errno = 0;
    CHECK(nanosleep(&two, &left) == -1 && errno == EINTR && hits == 1 && left.tv_sec >= 1);
    CHECK(pthread_join(t, NULL) == 0);
    printf("ok sigdeliver\n");
}

/* ---- timers: alarm, setitimer, POSIX timers, SA_RESTART ---- */

static volatile sig_atomic_t ticks, tick_code, tick_value, tick_timerid, tick_overrun;
/* Set: on_tick leaves its signal blocked when it returns (through its context's mask), so a
 * periodic timer's next expiry cannot replace the delivery a check is reading. */
static volatile sig_atomic_t tick_blocks_itself;
static volatile pid_t tick_tid;
static void on_tick(int sig, siginfo_t *info, void *ucontext) {
    ticks++;
    if (tick_blocks_itself) sigaddset(&((ucontext_t *)ucontext)->uc_sigmask, sig);
    tick_code = info->si_code;
    tick_tid = gettid();
    if (info->si_code == SI_TIMER) {
        tick_value = info->si_value.sival_int;
        tick_timerid = info->si_timerid;
        tick_overrun = info->si_overrun;
    }
}

static void on_tick_with(int sig, int flags) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_tick;
    sa.sa_flags = SA_SIGINFO | flags;
    CHECK(sigaction(sig, &sa, NULL) == 0);
}

/* Arms ITIMER_REAL once, `ms` from now. */
static void alarm_in_ms(long ms) {
    struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
}

static void *write_after(void *arg) {
    struct timespec d = {0, (long)(intptr_t)arg * 1000 * 1000};
    nanosleep(&d, NULL);
    CHECK(write(signal_pipe[1], "x", 1) == 1);
    return NULL;
}

static volatile sig_atomic_t notified, notified_value;
static void on_notify(union sigval v) {
    notified_value = v.sival_int;
    notified++;
}

static volatile pid_t target_tid;
static volatile int target_done;
static void *wait_for_timer(void *arg) {
    (void)arg;
    target_tid = gettid();
    while (ticks == 0) pause();
    target_done = 1;
    return NULL;
}

/* Loads registers with known values and spins, making no system call, until a periodic
 * timer's handler (on_clobber) has run three times; reports how many registers came back
 * changed. The handlers interrupt Linux code, not a system call: rcx and r11 on x86_64 too. */
static int registers_changed_by_async_handlers(void) {
    static uint64_t buf[64];
    for (int i = 0; i < 24; i++) buf[i] = 0x0fedcba987654321ull * (uint64_t)(i + 5);
#if defined(__x86_64__)
    __asm__ volatile(
        "movdqu 0(%[b]), %%xmm0\n movdqu 16(%[b]), %%xmm1\n movdqu 32(%[b]), %%xmm8\n movdqu 48(%[b]), %%xmm15\n"
        "mov 64(%[b]), %%r8\n mov 72(%[b]), %%r9\n mov 80(%[b]), %%r10\n mov 88(%[b]), %%r11\n"
        "mov 96(%[b]), %%r12\n mov 104(%[b]), %%r13\n mov 112(%[b]), %%rbx\n mov 120(%[b]), %%rcx\n"
        "mov 128(%[b]), %%rdx\n mov 136(%[b]), %%rsi\n mov 144(%[b]), %%rdi\n"
        "1: cmpl $3, %[h]\n jl 1b\n"
        "movdqu %%xmm0, 256(%[b])\n movdqu %%xmm1, 272(%[b])\n movdqu %%xmm8, 288(%[b])\n movdqu %%xmm15, 304(%[b])\n"
        "mov %%r8, 320(%[b])\n mov %%r9, 328(%[b])\n mov %%r10, 336(%[b])\n mov %%r11, 344(%[b])\n"
        "mov %%r12, 352(%[b])\n mov %%r13, 360(%[b])\n mov %%rbx, 368(%[b])\n mov %%rcx, 376(%[b])\n"
        "mov %%rdx, 384(%[b])\n mov %%rsi, 392(%[b])\n mov %%rdi, 400(%[b])\n"
        :
        : [b] "r"(buf), [h] "m"(hits)
        : "rcx", "rdx", "rdi", "rsi", "r8", "r9", "r10", "r11", "r12", "r13", "rbx", "xmm0", "xmm1", "xmm8", "xmm15",
          "memory", "cc");
    int words = 19;
#else
    __asm__ volatile(
        "ldp q0, q1, [%[b]]\n ldp q8, q31, [%[b], #32]\n"
        "ldp x0, x1, [%[b], #64]\n ldp x2, x3, [%[b], #80]\n ldp x9, x10, [%[b], #96]\n"
        "ldp x15, x16, [%[b], #112]\n ldp x17, x19, [%[b], #128]\n ldp x8, x11, [%[b], #144]\n"
        "1: ldr w12, [%[h]]\n cmp w12, #3\n b.lt 1b\n"
        "stp q0, q1, [%[b], #256]\n stp q8, q31, [%[b], #288]\n"
        "stp x0, x1, [%[b], #320]\n stp x2, x3, [%[b], #336]\n stp x9, x10, [%[b], #352]\n"
        "stp x15, x16, [%[b], #368]\n stp x17, x19, [%[b], #384]\n stp x8, x11, [%[b], #400]\n"
        :
        : [b] "r"(buf), [h] "r"(&hits)
        : "x0", "x1", "x2", "x3", "x8", "x9", "x10", "x11", "x12", "x15", "x16", "x17", "x19", "v0", "v1", "v8", "v31",
          "memory", "cc");
    int words = 20;
#endif
    int changed = 0;
    for (int i = 0; i < words; i++) {
        if (buf[i] != buf[32 + i]) {
            printf("register slot %d changed: %llx -> %llx\n", i, (unsigned long long)buf[i], (unsigned long long)buf[32 + i]);
            changed++;
        }
    }
    return changed;
}

static volatile int busy_flag;
static void on_busy(int sig) { (void)sig; busy_flag = 1; }

/* A thread that makes no system call still gets its signals, as Linux interrupts it: a busy
 * loop on a flag its handler sets ends; registers survive handlers run there. */
static void busy_thread_gets_signals(void) {
    handle(SIGALRM, on_busy, 0);
    busy_flag = 0;
    alarm_in_ms(30);
    for (volatile unsigned long spins = 0; !busy_flag && spins < 4000000000ul; spins++) {
    }
    CHECK(busy_flag);
    handle(SIGALRM, on_clobber, 0);
    hits = 0;
    struct itimerval every2 = {{0, 2000}, {0, 2000}}, off = {{0, 0}, {0, 0}};
    CHECK(setitimer(ITIMER_REAL, &every2, NULL) == 0);
    int changed = registers_changed_by_async_handlers();
    CHECK(setitimer(ITIMER_REAL, &off, NULL) == 0);
    CHECK(changed == 0 && hits >= 3);
}

/* `busy`: also check signals reaching a thread busy in program code (needs preemption: not
 * under the cooperative scheduler, which runs "timers-waiting"). */
static void timers(int busy) {
    struct timespec start;

    /* alarm: SIGALRM from the kernel (SI_KERNEL) ends a pause; alarm reports the time left. */
    on_tick_with(SIGALRM, 0);
    ticks = 0;
    CHECK(alarm(1) == 0);
    CHECK(alarm(1) == 1); /* ~1 s left, rounded */
    clock_gettime(CLOCK_MONOTONIC, &start);
    errno = 0;
    CHECK(pause() == -1 && errno == EINTR && ticks == 1 && tick_code == SI_KERNEL);
    CHECK(monotonic_since(start) >= 900 * 1000 * 1000LL);
    CHECK(alarm(30) == 0 && alarm(0) >= 29);

    /* setitimer: periodic, with getitimer reading it; disarmed afterwards. */
    ticks = 0;
    struct itimerval every = {{0, 20000}, {0, 20000}}, now;
    CHECK(setitimer(ITIMER_REAL, &every, NULL) == 0);
    CHECK(getitimer(ITIMER_REAL, &now) == 0 && now.it_interval.tv_usec == 20000);
    CHECK(now.it_value.tv_sec == 0 && now.it_value.tv_usec > 0 && now.it_value.tv_usec <= 20000);
    while (ticks < 5) pause();
    struct itimerval off = {{0, 0}, {0, 0}}, old;
    CHECK(setitimer(ITIMER_REAL, &off, &old) == 0 && old.it_interval.tv_usec == 20000);
    CHECK(getitimer(ITIMER_REAL, &now) == 0 && now.it_value.tv_sec == 0 && now.it_value.tv_usec == 0);
    struct itimerval bad = {{0, 0}, {0, 1000000}};
    FAILS(setitimer(ITIMER_REAL, &bad, NULL), EINVAL);
    FAILS(setitimer(7, &off, NULL), EINVAL);

    /* timer_create, SIGEV_SIGNAL: si_code SI_TIMER, si_value and si_timerid as given. */
    on_tick_with(SIGUSR1, 0);
    timer_t t1;
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR1;
    ev.sigev_value.sival_int = 1234;
    CHECK(timer_create(CLOCK_MONOTONIC, &ev, &t1) == 0);
    struct itimerspec in30 = {{0, 0}, {0, 30 * 1000 * 1000}}, cur;
    ticks = 0;
    CHECK(timer_settime(t1, 0, &in30, NULL) == 0);
    CHECK(timer_gettime(t1, &cur) == 0 && cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0);
    while (ticks == 0) pause();
    CHECK(tick_code == SI_TIMER && tick_value == 1234 && tick_timerid == (int)(intptr_t)t1);
    CHECK(timer_gettime(t1, &cur) == 0 && cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);

    /* timer_gettime: the time left of a long one; a zero value disarms. */
    struct itimerspec in10s = {{1, 0}, {10, 0}}, zero = {{0, 0}, {0, 0}}, prev;
    CHECK(timer_settime(t1, 0, &in10s, NULL) == 0);
    CHECK(timer_gettime(t1, &cur) == 0 && cur.it_value.tv_sec >= 9 && cur.it_value.tv_sec <= 10 && cur.it_interval.tv_sec == 1);
    CHECK(timer_settime(t1, 0, &zero, &prev) == 0 && prev.it_value.tv_sec >= 9 && prev.it_interval.tv_sec == 1);
    CHECK(timer_gettime(t1, &cur) == 0 && cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);

    /* TIMER_ABSTIME on CLOCK_MONOTONIC and CLOCK_REALTIME; taken by sigtimedwait. */
    sigset_t usr2, previous;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    CHECK(sigprocmask(SIG_BLOCK, &usr2, &previous) == 0);
    clockid_t clocks[] = {CLOCK_MONOTONIC, CLOCK_REALTIME};
    for (int i = 0; i < 2; i++) {
        timer_t t;
        ev.sigev_signo = SIGUSR2;
        ev.sigev_value.sival_int = 77 + i;
        CHECK(timer_create(clocks[i], &ev, &t) == 0);
        struct timespec at;
        clock_gettime(clocks[i], &at);
        clock_gettime(CLOCK_MONOTONIC, &start);
        struct itimerspec abs = {{0, 0}, plus_ns(at, 40 * 1000 * 1000)};
        CHECK(timer_settime(t, TIMER_ABSTIME, &abs, NULL) == 0);
        siginfo_t info;
        struct timespec two = {2, 0};
        CHECK(sigtimedwait(&usr2, &info, &two) == SIGUSR2 && info.si_code == SI_TIMER && info.si_value.sival_int == 77 + i);
        CHECK(monotonic_since(start) >= 35 * 1000 * 1000LL);
        CHECK(timer_delete(t) == 0);
    }

    /* Overruns: expirations while the signal stays blocked are counted, not queued. */
    struct itimerspec every5 = {{0, 5 * 1000 * 1000}, {0, 5 * 1000 * 1000}};
    ev.sigev_signo = SIGUSR2;
    timer_t t2;
    CHECK(timer_create(CLOCK_MONOTONIC, &ev, &t2) == 0);
    on_tick_with(SIGUSR2, 0);
    ticks = 0;
    CHECK(timer_settime(t2, 0, &every5, NULL) == 0);
    struct timespec d60 = {0, 60 * 1000 * 1000};
    nanosleep(&d60, NULL); /* blocked: one instance pending, the rest overruns */
    tick_blocks_itself = 1; /* the 5 ms timer goes on: one delivery only, under any load */
    CHECK(ticks == 0 && sigprocmask(SIG_SETMASK, &previous, NULL) == 0);
    CHECK(ticks == 1 && tick_overrun >= 3 && timer_getoverrun(t2) == tick_overrun);
    CHECK(timer_settime(t2, 0, &zero, NULL) == 0);
    tick_blocks_itself = 0;
    CHECK(sigprocmask(SIG_SETMASK, &previous, NULL) == 0); /* an expiry pending meanwhile arrives here */

    /* timer_delete stops a periodic timer. */
    ticks = 0;
    CHECK(timer_settime(t2, 0, &every5, NULL) == 0);
    while (ticks < 3) pause();
    CHECK(timer_delete(t2) == 0);
    getpid(); /* a signal already pending is delivered here */
    int after = ticks;
    nanosleep(&d60, NULL);
    CHECK(ticks == after);
    FAILS(timer_settime(t2, 0, &every5, NULL), EINVAL);
    FAILS(syscall(SYS_timer_delete, t2), EINVAL); /* musl's timer_delete returns -errno itself */

    /* SIGEV_THREAD_ID: to one thread, which its handler runs on. */
    pthread_t th;
    ticks = 0;
    target_tid = 0;
    target_done = 0;
    CHECK(pthread_create(&th, NULL, wait_for_timer, NULL) == 0);
    while (target_tid == 0) sched_yield();
    timer_t t3;
    struct sigevent to_thread = {0};
    to_thread.sigev_notify = SIGEV_THREAD_ID;
    to_thread.sigev_signo = SIGUSR1;
    to_thread.sigev_notify_thread_id = target_tid;
    CHECK(timer_create(CLOCK_MONOTONIC, &to_thread, &t3) == 0);
    CHECK(timer_settime(t3, 0, &in30, NULL) == 0);
    CHECK(pthread_join(th, NULL) == 0 && target_done && tick_tid == target_tid && tick_code == SI_TIMER);
    CHECK(timer_delete(t3) == 0);
    to_thread.sigev_notify_thread_id = 999999;
    FAILS(timer_create(CLOCK_MONOTONIC, &to_thread, &t3), EINVAL);
    FAILS(timer_create(12345, &ev, &t3), EINVAL);

    /* SIGEV_THREAD (musl: a helper thread over SIGEV_THREAD_ID): periodic, then deleted. */
    struct sigevent by_thread = {0};
    by_thread.sigev_notify = SIGEV_THREAD;
    by_thread.sigev_notify_function = on_notify;
    by_thread.sigev_value.sival_int = 4321;
    timer_t t4;
    notified = 0;
    CHECK(timer_create(CLOCK_MONOTONIC, &by_thread, &t4) == 0);
    struct itimerspec every10 = {{0, 10 * 1000 * 1000}, {0, 10 * 1000 * 1000}};
    CHECK(timer_settime(t4, 0, &every10, NULL) == 0);
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (notified < 3 && monotonic_since(start) < 5000 * 1000 * 1000LL) nanosleep(&d60, NULL);
    CHECK(notified >= 3 && notified_value == 4321);
    CHECK(timer_delete(t4) == 0);
    nanosleep(&d60, NULL);
    after = notified;
    nanosleep(&d60, NULL);
    CHECK(notified == after);

    /* SA_RESTART: a read interrupted by a handler with it resumes and gets the data... */
    CHECK(pipe(signal_pipe) == 0);
    on_tick_with(SIGALRM, SA_RESTART);
    ticks = 0;
    pthread_t writer;
    CHECK(pthread_create(&writer, NULL, write_after, (void *)(intptr_t)150) == 0);
    alarm_in_ms(30);
    char c = 0;
    errno = 0;
    CHECK(read(signal_pipe[0], &c, 1) == 1 && c == 'x' && ticks == 1);
    CHECK(pthread_join(writer, NULL) == 0);
    /* ...without it the read fails with EINTR. */
    on_tick_with(SIGALRM, 0);
    ticks = 0;
    CHECK(pthread_create(&writer, NULL, write_after, (void *)(intptr_t)150) == 0);
    alarm_in_ms(30);
    errno = 0;
    CHECK(read(signal_pipe[0], &c, 1) == -1 && errno == EINTR && ticks == 1);
    CHECK(pthread_join(writer, NULL) == 0 && read(signal_pipe[0], &c, 1) == 1);
    /* poll and nanosleep fail with EINTR even with SA_RESTART. */
    on_tick_with(SIGALRM, SA_RESTART);
    ticks = 0;
    struct pollfd pfd = {signal_pipe[0], POLLIN, 0};
    alarm_in_ms(30);
    errno = 0;
    CHECK(poll(&pfd, 1, 5000) == -1 && errno == EINTR && ticks == 1);
    ticks = 0;
    struct timespec five = {5, 0}, left;
    alarm_in_ms(30);
    errno = 0;
    CHECK(nanosleep(&five, &left) == -1 && errno == EINTR && ticks == 1 && left.tv_sec >= 4);
    close(signal_pipe[0]);
    close(signal_pipe[1]);
    CHECK(timer_delete(t1) == 0);

    if (busy) busy_thread_gets_signals();
    signal(SIGALRM, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    signal(SIGUSR2, SIG_DFL);
    printf("ok timers\n");
}

static void stdio(void) {
    /* Full buffering: nothing reaches the console until the buffer is flushed at exit, after
     * the unbuffered stderr line. */
    static char buffer[4096];
    setvbuf(stdout, buffer, _IOFBF, sizeof buffer);
    printf("buffered line 1\n");
    printf("buffered line 2 without newline");
    fprintf(stderr, "unbuffered stderr first\n");
    exit(3);
}

static void enosys(void) {
    errno = 0;
    long r1 = syscall(4000), e1 = errno;
    long r2 = syscall(4000), e2 = errno;
    CHECK(r1 == -1 && e1 == ENOSYS && r2 == -1 && e2 == ENOSYS);
    printf("ok enosys (program continues)\n");
}

/* Preemption: threads doing floating-point and stack-heavy leaf work (locals in the red zone
 * on x86_64) under a short time slice; every result is checked against a serial run. */
static double __attribute__((noinline)) leaf(double x, int n) {
    volatile double local[12];
    for (int i = 0; i < 12; i++) local[i] = x * (i + 1);
    double s = 0;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < 12; i++) s += local[i] / (k + i + 1.0);
    return s;
}

static void *spinner(void *arg) {
    long id = (long)arg;
    double expect = 0;
    for (int j = 0; j < 50; j++) expect += leaf(id + j * 0.5, 40);
    for (int round = 0; round < 400; round++) {
        double got = 0;
        for (int j = 0; j < 50; j++) got += leaf(id + j * 0.5, 40);
        if (got != expect) return (void *)1;
    }
    return NULL;
}

static void preempt(void) {
    pthread_t t[3];
    for (long i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, spinner, (void *)(i + 1)) == 0);
    for (int i = 0; i < 3; i++) {
        void *r;
        CHECK(pthread_join(t[i], &r) == 0 && r == NULL);
    }
    printf("ok preempt\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: shimtest files|mem|time|wallclock|process|threads|signals|sigdeliver|events|timers|stdio|enosys|preempt|kill|abort...\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "files")) files();
        else if (!strcmp(f, "mem")) mem();
        else if (!strcmp(f, "time")) time_family();
        else if (!strcmp(f, "wallclock")) wallclock();
        else if (!strcmp(f, "process")) process();
        else if (!strcmp(f, "threads")) threads();
        else if (!strcmp(f, "signals")) signals();
        else if (!strcmp(f, "sigdeliver")) sigdeliver();
        else if (!strcmp(f, "events")) events();
        else if (!strcmp(f, "timers")) timers(1);
        else if (!strcmp(f, "timers-waiting")) timers(0);
        else if (!strcmp(f, "stdio")) stdio();
        else if (!strcmp(f, "enosys")) enosys();
        else if (!strcmp(f, "preempt")) preempt();
        else if (!strcmp(f, "posix")) posix_family();
        else if (procfs_family_run(f)) {}
        else if (xattr_family_run(f)) {}
        else if (mounts_family_run(f)) {}
        else if (!strcmp(f, "disk")) disk_family();
        else if (!strcmp(f, "ext2")) ext2_family();
        else if (!strcmp(f, "ext2sync")) ext2_sync_family();
        else if (!strcmp(f, "ext2full")) ext2_full_family();
        else if (!strcmp(f, "ext2ro")) ext2_ro_family();
        else if (!strcmp(f, "ext2walk")) ext2_walk_family();
        else if (!strcmp(f, "kill")) { printf("raising SIGTERM\n"); fflush(stdout); raise(SIGTERM); printf("still alive\n"); return 1; }
        else if (!strcmp(f, "abort")) { printf("aborting\n"); fflush(stdout); abort(); }
        else if (socket_family(f)) continue;
        else if (random_family(f)) continue;
        else if (memory_family_run(f)) continue;
        else if (smp_family_run(f)) continue;
        else { fprintf(stderr, "unknown family %s\n", f); return 2; }
    }
    return 0;
}
