/* icmp_echo: the guest side of the seed-003 ICMP echo workload.
 *
 * The kernel answers echo requests itself; this program only marks the measured window. It
 prints `[bench] mark start` (the host starts sending then), waits until the kernel has received
 * N more echo requests (the `InEchos` counter of /proc/net/snmp, polled every millisecond),
 * prints `[bench] mark end` and reports the counter ticks from the first request it saw to the
 * last. A libos echo responder mirrors it: start mark, N echo replies, end mark, the report.
 * Usage: icmp_echo N [TIMEOUT_SECONDS]  (default timeout 300) */
#include "bench_common.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* InEchos from /proc/net/snmp: the second of the two `Icmp:` lines holds the values. */
static long in_echos(void) {
    FILE *snmp = fopen("/proc/net/snmp", "r");
    if (!snmp) {
        return -1;
    }
    char names[1024], values[1024];
    long result = -1;
    while (fgets(names, sizeof names, snmp)) {
        if (strncmp(names, "Icmp:", 5) != 0 || !fgets(values, sizeof values, snmp)) {
            continue;
        }
        char *name_save, *value_save;
        char *name = strtok_r(names, " \n", &name_save);
        char *value = strtok_r(values, " \n", &value_save);
        while (name && value) {
            if (strcmp(name, "InEchos") == 0) {
                result = strtol(value, NULL, 10);
            }
            name = strtok_r(NULL, " \n", &name_save);
            value = strtok_r(NULL, " \n", &value_save);
        }
        break;
    }
    fclose(snmp);
    return result;
}

int main(int argc, char **argv) {
    long count = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    long timeout = argc > 2 ? strtol(argv[2], NULL, 10) : 300;
    long base = in_echos();
    if (base < 0) {
        fprintf(stderr, "icmp_echo: cannot read InEchos from /proc/net/snmp\n");
        return 1;
    }
    bench_mark("start");
    struct timespec now, deadline, pause = {0, 1000000};
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout;
    uint64_t first = 0, last = 0;
    long seen = 0;
    while (seen < count) {
        long echos = in_echos() - base;
        if (echos > seen) {
            last = bench_ticks();
            if (seen == 0) {
                first = last;
            }
            seen = echos;
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > deadline.tv_sec) {
            fprintf(stderr, "icmp_echo: timed out after %ld of %ld echo requests\n", seen, count);
            return 1;
        }
        nanosleep(&pause, NULL);
    }
    bench_mark("end");
    bench_report("counter-hz", bench_ticks_hz());
    bench_report("operations", (uint64_t)seen);
    bench_report("window-ticks", last - first);
    return 0;
}
