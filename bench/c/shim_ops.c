/* shim_ops: the system-call costs `./x bench shim` compares between libos (posix-shim, this very
 * program linked into apps/c-bench) and the Linux guest (tmpfs), in guest instructions:
 *   1. getppid: a null system call, N calls of musl's getppid() (as lmbench's `lat_syscall
 *      null` measures it: the libc function whose body is the inline system call);
 *   2. getppid_syscall: the same call through musl's generic syscall() wrapper (varargs and
 *      the errno check cost about 40 instructions of their own on both systems);
 *   3. pread4k: 4 KiB pread()s cycling through a 1 MiB file;
 *   4. cycle: open + fstat + read 4 KiB + close of a 4 KiB file.
 * Each loop has one warm-up round first.
 * Files live in /bench: with `--mount-tmpfs` (the Linux guest) a tmpfs mounted there, otherwise
 * a directory of the root file system (libos: ramfs). Setup is outside the measured spans.
 * Usage: shim_ops [--mount-tmpfs] [N]  (default N 20000). Output: `[bench] W.ops: N` and
 * `[bench] W.ticks: T` per workload W (ticks: see bench_common.h). */
#define _GNU_SOURCE
#include "bench_common.h"
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FILE_BYTES (1 << 20)
#define BLOCK 4096

static int fail(const char *what) {
    perror(what);
    return 1;
}

static void report(const char *name, uint64_t ops, uint64_t start) {
    uint64_t spent = bench_ticks() - start;
    printf("[bench] %s.ops: %llu\n[bench] %s.ticks: %llu\n", name, (unsigned long long)ops, name,
           (unsigned long long)spent);
}

static int write_file(const char *path, size_t size) {
    static char block[BLOCK];
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) return -1;
    for (size_t done = 0; done < size; done += BLOCK) {
        memset(block, (int)(done / BLOCK), BLOCK);
        if (write(fd, block, BLOCK) != BLOCK) return -1;
    }
    return close(fd);
}

int main(int argc, char **argv) {
    long n = 20000;
    int mount_tmpfs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mount-tmpfs") == 0) mount_tmpfs = 1;
        else n = strtol(argv[i], NULL, 10);
    }
    if (n <= 0) {
        fprintf(stderr, "shim_ops: N must be positive\n");
        return 2;
    }
    if (mkdir("/bench", 0755) != 0 && !mount_tmpfs) return fail("mkdir /bench");
    if (mount_tmpfs && mount("tmpfs", "/bench", "tmpfs", 0, "size=64m") != 0) return fail("mount tmpfs on /bench");
    if (write_file("/bench/big", FILE_BYTES) != 0) return fail("writing /bench/big");
    if (write_file("/bench/small", BLOCK) != 0) return fail("writing /bench/small");
    static char buf[BLOCK];
    bench_report("counter-hz", bench_ticks_hz());

    getppid();
    uint64_t start = bench_ticks();
    for (long i = 0; i < n; i++) getppid();
    report("getppid", (uint64_t)n, start);

    syscall(SYS_getppid);
    start = bench_ticks();
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    report("getppid_syscall", (uint64_t)n, start);

    int fd = open("/bench/big", O_RDONLY);
    if (fd < 0 || pread(fd, buf, BLOCK, 0) != BLOCK) return fail("pread warm-up");
    start = bench_ticks();
    for (long i = 0; i < n; i++) {
        if (pread(fd, buf, BLOCK, (off_t)((i * BLOCK) % FILE_BYTES)) != BLOCK) return fail("pread");
    }
    report("pread4k", (uint64_t)n, start);
    close(fd);

    struct stat st;
    start = bench_ticks();
    for (long i = 0; i < n; i++) {
        int f = open("/bench/small", O_RDONLY);
        if (f < 0 || fstat(f, &st) != 0 || read(f, buf, BLOCK) != BLOCK || close(f) != 0) return fail("cycle");
    }
    report("cycle", (uint64_t)n, start);
    return 0;
}
