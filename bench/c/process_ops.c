/* process_ops: what processes cost, the same program on libos (each process a VM) and in the
 * Linux guest (`./x bench process`).
 *
 *   process_ops fork N     N rounds of fork + child _exit(0) + waitpid in the parent
 *   process_ops pipe MIB   a child writes MIB MiB into a pipe in 1 MiB writes; the parent reads
 *                          it with 1 MiB reads until end of file, then reaps the child
 *
 * Times are CLOCK_MONOTONIC nanoseconds (wall time; under TCG without icount they follow the
 * host's clock), reported as `[bench] NAME: VALUE` lines. Under `-icount shift=0,sleep=off` the
 * harness reads the `*-ticks` and `*-idle-ns` lines instead (bench_common.h): busy instructions
 * are the ticks of a window minus the CPU's idle time in it. Each process reports the windows of
 * its own CPU: on libos, its own VM; in the Linux guest (one CPU), the whole machine. */
#include "bench_common.h"
#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int compare(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A window's start: the counter and the idle time so far; marked (for the harness's device
 * trace, `[bench] mark start NAME`) unless `name` is NULL. */
struct window { uint64_t ticks; long long idle_ns; };

static void mark(const char *which, const char *name) {
    char line[64];
    snprintf(line, sizeof line, "%s %s", which, name);
    bench_mark(line);
}

static struct window window_start(const char *name) {
    if (name) mark("start", name);
    long long idle = bench_idle_ns();
    return (struct window){ bench_ticks(), idle };
}

/* Reports NAME-ticks and NAME-idle-ns of the window from `start` to now (after its end mark
 * when `marked`). */
static void window_report(const char *name, struct window start, int marked) {
    uint64_t ticks = bench_ticks();
    long long idle = bench_idle_ns();
    if (marked) mark("end", name);
    char line[64];
    snprintf(line, sizeof line, "%s-ticks", name);
    bench_report(line, ticks - start.ticks);
    snprintf(line, sizeof line, "%s-idle-ns", name);
    bench_report(line, (uint64_t)(idle - start.idle_ns));
}

static int fork_rounds(long rounds) {
    uint64_t *times = calloc(rounds, sizeof *times);
    if (!times) return 1;
    bench_report("counter-hz", bench_ticks_hz());
    bench_idle_ns(); /* sets the resolution, and warms the calls up */
    fflush(stdout);
    struct window loop = window_start("fork-loop");
    for (long i = 0; i < rounds; i++) {
        struct window round = window_start(NULL);
        uint64_t start = now_ns();
        pid_t child = fork();
        if (child < 0) { perror("fork"); return 1; }
        if (child == 0) {
            /* The child's path from its parent's fork call back into the program (on libos:
             * the parent's request, then the copy's resume), without the output's cost. */
            window_report("fork-child", round, 0);
            fflush(stdout);
            _exit(0);
        }
        int status;
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "process_ops: bad child status\n");
            return 1;
        }
        times[i] = now_ns() - start;
    }
    window_report("fork-loop", loop, 1);
    bench_report("idle-resolution-ns", (uint64_t)bench_idle_resolution_ns);
    qsort(times, rounds, sizeof *times, compare);
    bench_report("fork-rounds", (uint64_t)rounds);
    bench_report("fork-wait-ns-median", times[rounds / 2]);
    bench_report("fork-wait-ns-min", times[0]);
    bench_report("fork-wait-ns-max", times[rounds - 1]);
    return 0;
}

static int pipe_transfer(long mib) {
    enum { CHUNK = 1 << 20 };
    char *buffer = malloc(CHUNK);
    int fds[2];
    if (!buffer || pipe(fds) != 0) return 1;
    for (int i = 0; i < CHUNK; i++) buffer[i] = (char)i;
    bench_report("counter-hz", bench_ticks_hz());
    bench_idle_ns();
    fflush(stdout);
    uint64_t start = now_ns();
    pid_t child = fork();
    if (child < 0) { perror("fork"); return 1; }
    if (child == 0) {
        close(fds[0]);
        struct window writes = window_start("pipe-writer");
        for (long m = 0; m < mib; m++) {
            size_t done = 0;
            while (done < CHUNK) {
                ssize_t n = write(fds[1], buffer + done, CHUNK - done);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) _exit(2);
                done += n;
            }
        }
        window_report("pipe-writer", writes, 1);
        fflush(stdout);
        _exit(0);
    }
    close(fds[1]);
    uint64_t first = 0, total = 0, first_bytes = 0;
    struct window reads = { 0, 0 };
    for (;;) {
        ssize_t n = read(fds[0], buffer, CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { perror("read"); return 1; }
        if (n == 0) break;
        if (total == 0) {
            first = now_ns();
            first_bytes = (uint64_t)n;
            reads = window_start("pipe-reader");
        }
        total += n;
    }
    uint64_t end = now_ns();
    /* From the first byte to end of file: the transfer without the fork. */
    window_report("pipe-reader", reads, 1);
    bench_report("pipe-reader-bytes", total - first_bytes);
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || total != (uint64_t)mib * CHUNK) {
        fprintf(stderr, "process_ops: the transfer failed (%llu bytes)\n", (unsigned long long)total);
        return 1;
    }
    bench_report("pipe-bytes", total);
    bench_report("pipe-ns", end - start);
    bench_report("pipe-ns-after-first-byte", end - first);
    return 0;
}

int main(int argc, char **argv) {
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
    if (argc > 2 && n > 0 && !strcmp(argv[1], "fork")) return fork_rounds(n);
    if (argc > 2 && n > 0 && !strcmp(argv[1], "pipe")) return pipe_transfer(n);
    fprintf(stderr, "usage: process_ops fork N | pipe MIB\n");
    return 2;
}
