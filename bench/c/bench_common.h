/* Shared by the Linux-guest benchmark programs (static musl, x86_64 and aarch64).
 *
 * The harness boots these under QEMU `-icount shift=0,sleep=off`, where the guest's clock follows
 * QEMU's virtual clock at one nanosecond per guest instruction. So the ticks a program reads here
 * are instruction counts, identical from run to run:
 *   - x86_64: the TSC (rdtsc) ticks once per instruction (1 GHz under icount);
 *   - aarch64: the virtual counter CNTVCT_EL0 ticks at CNTFRQ_EL0 (62.5 MHz on QEMU's CPUs, one
 *     tick per 16 instructions), which Linux lets user space read.
 * Every figure goes to stdout as a `[bench] NAME: VALUE` line that the harness parses. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline uint64_t bench_ticks(void) {
#if defined(__x86_64__)
    uint32_t lo, hi;
    /* lfence: do not let the read move across the measured code. */
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
    return ((uint64_t)hi << 32) | lo;
#elif defined(__aarch64__)
    uint64_t value;
    __asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(value) :: "memory");
    return value;
#else
#error "bench programs support x86_64 and aarch64"
#endif
}

/* Ticks per second of bench_ticks() under icount (see above). */
static inline uint64_t bench_ticks_hz(void) {
#if defined(__x86_64__)
    return 1000000000u;
#else
    uint64_t hz;
    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(hz));
    return hz;
#endif
}

/* Marks the measured window on the console. The harness finds these lines again in QEMU's
 * device trace (as writes to the console's data register) and counts the device traffic
 * between them. */
static inline void bench_mark(const char *which) {
    printf("[bench] mark %s\n", which);
    fflush(stdout);
}

static inline void bench_report(const char *name, uint64_t value) {
    printf("[bench] %s: %llu\n", name, (unsigned long long)value);
}

/* The resolution of bench_idle_ns() in nanoseconds (set by its first call). */
static long bench_idle_resolution_ns __attribute__((unused));

/* Nanoseconds this CPU spent idle since boot. The cpuidle driver's per-state residency counts
 * microseconds; without a cpuidle driver (aarch64 `virt` has no idle states in its device tree)
 * the idle field of /proc/stat counts USER_HZ ticks (10 ms), and the harness sizes the windows so
 * that this stays small next to the busy time (it reports the resolution with the figures). */
static inline long long bench_idle_ns(void) {
    const char *dir_name = "/sys/devices/system/cpu/cpu0/cpuidle";
    DIR *dir = opendir(dir_name);
    if (dir) {
        long long total_us = 0;
        int states = 0;
        struct dirent *entry;
        while ((entry = readdir(dir))) {
            if (strncmp(entry->d_name, "state", 5) != 0) {
                continue;
            }
            char path[320];
            snprintf(path, sizeof path, "%s/%s/time", dir_name, entry->d_name);
            FILE *f = fopen(path, "r");
            long long us;
            if (f && fscanf(f, "%lld", &us) == 1) {
                total_us += us;
                states++;
            }
            if (f) {
                fclose(f);
            }
        }
        closedir(dir);
        if (states > 0) {
            bench_idle_resolution_ns = 1000;
            return total_us * 1000;
        }
    }
    FILE *stat = fopen("/proc/stat", "r");
    long long user, nice, system, idle, iowait;
    if (!stat || fscanf(stat, "cpu %lld %lld %lld %lld %lld", &user, &nice, &system, &idle, &iowait) != 5) {
        fprintf(stderr, "bench: cannot read /proc/stat\n");
        exit(1);
    }
    fclose(stat);
    long hz = sysconf(_SC_CLK_TCK);
    bench_idle_resolution_ns = 1000000000L / hz;
    return (idle + iowait) * (1000000000LL / hz);
}

#endif
