/* fs_tmpfs: the file workload of `apps/fsbench` (libos on ramfs), on a Linux tmpfs.
 *
 * Same operations in the same order and with the same sizes as apps/fsbench/src/main.rs, so
 * `./x bench fs` can put both side by side in guest instructions per operation:
 *   1. create (open O_CREAT|O_EXCL + close), stat, unlink of N files named /bench/file-I;
 *   2. for 4 KiB and 1 MiB calls: sequential write of a new file of SIZE bytes, then sequential
 *      reads of it through a new descriptor;
 *   3. after the 1 MiB pass: 10 000 reads of 4 KiB at page-aligned pseudo-random offsets (the
 *      same xorshift sequence as fsbench).
 * /bench is a tmpfs mounted here (big enough for the file), so paths have the same two
 * components as on libos; with a third argument DIR the files go in DIR instead (an existing
 * directory, e.g. a virtio-fs mount for `./x bench virtiofs`). Names and buffers are prepared
 * outside the measured spans.
 * Each workload's span is marked on the console (`[bench] mark start W` ... `[bench] mark end W`,
 * outside the measured span) so the harness can count its device traffic from a QEMU trace.
 * A fourth argument `reread` reads each sequential file a second time (`seq-reread-4k`,
 * `seq-reread-1m`), as fsbench --reread does (for `./x bench virtiofs --dax`).
 * Usage: fs_tmpfs [FILE_MIB] [FILES] [DIR] [reread]  (defaults 256, 10000, a tmpfs at /bench). Output:
 * `[bench] W.ops: N`, `[bench] W.bytes: B`, `[bench] W.ticks: T` and `[bench] W.cpu_ns: C` per
 * workload W (see bench_common.h for ticks; C is this thread's CPU time, CLOCK_THREAD_CPUTIME_ID:
 * under icount the instructions the kernel ran for it, without the time it slept waiting for a
 * device), and `[bench] W.idle_ns: I`, the time the CPU was idle inside the span (bench_idle_ns,
 * read outside it): under icount with sleep=off an idle guest's clock jumps to its next timer,
 * so ticks minus idle time is what a system whose CPU-time clock counts idle time (libos) ran. */
#define _GNU_SOURCE
#include "bench_common.h"
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* This thread's CPU time when the current workload began (set by begin()). */
static uint64_t cpu_start;
/* The CPU's idle time when the current workload began. */
static long long idle_start;

/* Starts workload `name`: a console mark (for the device trace's per-workload windows, printed
 * outside the measured span), then the clocks. */
static uint64_t begin(const char *name) {
    printf("[bench] mark start %s\n", name);
    fflush(stdout);
    idle_start = bench_idle_ns();
    cpu_start = cpu_ns();
    return bench_ticks();
}

static void report(const char *name, uint64_t ops, uint64_t bytes, uint64_t start) {
    uint64_t spent = bench_ticks() - start;
    uint64_t cpu = cpu_ns() - cpu_start;
    long long idle = bench_idle_ns() - idle_start;
    printf("[bench] mark end %s\n", name);
    printf("[bench] %s.idle_ns: %lld\n", name, idle);
    printf("[bench] %s.ops: %llu\n[bench] %s.bytes: %llu\n[bench] %s.ticks: %llu\n[bench] %s.cpu_ns: %llu\n", name,
           (unsigned long long)ops, name, (unsigned long long)bytes, name, (unsigned long long)spent, name,
           (unsigned long long)cpu);
}

static int fail(const char *what) {
    perror(what);
    return 1;
}

/* Like fsbench's write_all / read_exact: loop over short transfers. */
static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n <= 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_exact(int fd, char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = read(fd, buf, len);
        if (n <= 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    long file_mib = argc > 1 ? strtol(argv[1], NULL, 10) : 256;
    long files = argc > 2 ? strtol(argv[2], NULL, 10) : 10000;
    if (file_mib <= 0 || files <= 0) {
        fprintf(stderr, "usage: fs_tmpfs [FILE_MIB] [FILES]\n");
        return 2;
    }
    const char *dir = argc > 3 ? argv[3] : "/bench";
    int reread = argc > 4 && strcmp(argv[4], "reread") == 0;
    if (argc <= 3) {
        char options[64];
        snprintf(options, sizeof options, "size=%ldm", file_mib + 64);
        if (mkdir("/bench", 0755) != 0) return fail("mkdir /bench");
        if (mount("tmpfs", "/bench", "tmpfs", 0, options) != 0) return fail("mount tmpfs on /bench");
    }
    bench_report("counter-hz", bench_ticks_hz());

    /* Metadata: create, stat, unlink. */
    char **names = malloc((size_t)files * sizeof *names);
    if (!names) return fail("malloc");
    for (long i = 0; i < files; i++) {
        if (asprintf(&names[i], "%s/file-%ld", dir, i) < 0) return fail("asprintf");
    }
    uint64_t start = begin("create");
    for (long i = 0; i < files; i++) {
        int fd = open(names[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) return fail(names[i]);
        close(fd);
    }
    report("create", files, 0, start);
    struct stat st;
    start = begin("stat");
    for (long i = 0; i < files; i++) {
        if (stat(names[i], &st) != 0) return fail(names[i]);
    }
    report("stat", files, 0, start);
    start = begin("unlink");
    for (long i = 0; i < files; i++) {
        if (unlink(names[i]) != 0) return fail(names[i]);
    }
    report("unlink", files, 0, start);

    /* Sequential I/O in 4 KiB and 1 MiB calls, then 4 KiB random reads. */
    uint64_t size = (uint64_t)file_mib << 20;
    const struct { const char *label; size_t chunk; } passes[] = {{"4k", 4096}, {"1m", 1 << 20}};
    for (int p = 0; p < 2; p++) {
        size_t chunk = passes[p].chunk;
        char *buf = malloc(chunk);
        if (!buf) return fail("malloc");
        memset(buf, 0x5a, chunk);
        char path[4096], name[64];
        snprintf(path, sizeof path, "%s/seq-%s", dir, passes[p].label);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) return fail(path);
        uint64_t calls = size / chunk;
        snprintf(name, sizeof name, "seq-write-%s", passes[p].label);
        start = begin(name);
        for (uint64_t i = 0; i < calls; i++) {
            if (write_all(fd, buf, chunk) != 0) return fail("write");
        }
        report(name, calls, size, start);
        int rfd = open(path, O_RDONLY | O_CLOEXEC);
        if (rfd < 0) return fail(path);
        /* With `reread`, the same reads again from the start (a second round). */
        for (int round = 0; round < (reread ? 2 : 1); round++) {
            if (lseek(rfd, 0, SEEK_SET) != 0) return fail("lseek");
            snprintf(name, sizeof name, "seq-%s-%s", round ? "reread" : "read", passes[p].label);
            start = begin(name);
            for (uint64_t i = 0; i < calls; i++) {
                if (read_exact(rfd, buf, chunk) != 0) return fail("read");
            }
            report(name, calls, size, start);
        }
        if (chunk == (1 << 20)) {
            enum { READS = 10000 };
            uint64_t pages = size / 4096 ? size / 4096 : 1;
            uint64_t state = 0x9e3779b97f4a7c15ull;
            static uint64_t offsets[READS];
            for (int i = 0; i < READS; i++) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                offsets[i] = (state % pages) * 4096;
            }
            char page[4096];
            start = begin("rand-read-4k");
            for (int i = 0; i < READS; i++) {
                if (pread(rfd, page, sizeof page, (off_t)offsets[i]) != (ssize_t)sizeof page) return fail("pread");
            }
            report("rand-read-4k", READS, (uint64_t)READS * 4096, start);
        }
        close(rfd);
        close(fd);
        if (unlink(path) != 0) return fail(path);
        free(buf);
    }
    printf("[bench] done: 1\n");
    return 0;
}
