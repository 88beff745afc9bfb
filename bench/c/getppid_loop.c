/* getppid_loop: the cost of crossing into the kernel and back, N times.
 *
 * `getppid` does no work in the kernel, so the loop measures the system-call boundary itself.
 * On libos the same operation is a function call into the library OS; a later libos suite runs
 * the same loop (same N, same order: one warm-up call, then N timed calls). */
#include "bench_common.h"
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long iterations = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
    if (iterations <= 0) {
        fprintf(stderr, "getppid_loop: iterations must be positive\n");
        return 2;
    }
    syscall(SYS_getppid); /* warm-up: fault in the code paths once */
    uint64_t start = bench_ticks();
    for (long i = 0; i < iterations; i++) {
        syscall(SYS_getppid);
    }
    uint64_t end = bench_ticks();
    bench_report("counter-hz", bench_ticks_hz());
    bench_report("operations", (uint64_t)iterations);
    bench_report("loop-ticks", end - start);
    return 0;
}
