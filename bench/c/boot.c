/* boot: the Linux side of the boot measure.
 *
 * Time from kernel entry to `main` is not comparable across kernels (Linux runs its whole init
 * before exec'ing us), so this program reports what is: the counter at `main` (for the record),
 * the instructions from `main` to just before exit (printing one line, like libos `hello`), and
 * the harness times the whole boot from outside. The libos `hello` app mirrors it: print one
 * greeting, exit 0. */
#include "bench_common.h"

int main(void) {
    uint64_t start = bench_ticks();
    printf("Hello from a Linux guest\n");
    fflush(stdout);
    uint64_t end = bench_ticks();
    bench_report("counter-hz", bench_ticks_hz());
    bench_report("main-ticks", start);
    bench_report("main-to-exit-ticks", end - start);
    return 0;
}
