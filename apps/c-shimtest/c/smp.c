/* smp=N: C threads on a machine of N CPUs (`./x run c-shimtest --cpus N -- smp=N`).
 *
 * - the CPU count: sysconf(_SC_NPROCESSORS_ONLN) and sched_getaffinity both say N;
 * - a parallel sum over 4 POSIX threads equals the sum computed by one thread, and with N >= 2
 *   the threads were seen on at least two CPUs (sched_getcpu) at the same time;
 * - sched_setaffinity pins the caller to one CPU (sched_getcpu agrees), a set of CPUs that do
 *   not exist is EINVAL, an unknown thread ESRCH; the full set is restored. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"

#define WORKERS 4
#define ITEMS 4000000ull

static atomic_int running, most_at_once;
static atomic_ulong cpus_seen;

static int bits(unsigned long x) {
    int n = 0;
    for (; x; x &= x - 1) {
        n++;
    }
    return n;
}

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

struct share {
    uint64_t first, end, sum;
};

static void *worker(void *arg) {
    struct share *share = arg;
    int now = atomic_fetch_add(&running, 1) + 1;
    int most = atomic_load(&most_at_once);
    while (now > most && !atomic_compare_exchange_weak(&most_at_once, &most, now)) {
    }
    uint64_t sum = 0;
    for (uint64_t i = share->first; i < share->end; i++) {
        sum += mix(i);
        if ((i & 4095) == 0) {
            int cpu = sched_getcpu();
            if (cpu >= 0 && cpu < 64) {
                atomic_fetch_or(&cpus_seen, 1ul << cpu);
            }
        }
    }
    share->sum = sum;
    atomic_fetch_sub(&running, 1);
    return NULL;
}

static void smp_family(int n) {
    CHECK(sysconf(_SC_NPROCESSORS_ONLN) == n);
    cpu_set_t set;
    CPU_ZERO(&set);
    CHECK(sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) == n);
    for (int cpu = 0; cpu < n; cpu++) {
        CHECK(CPU_ISSET(cpu, &set));
    }

    struct share shares[WORKERS];
    pthread_t ids[WORKERS];
    for (int t = 0; t < WORKERS; t++) {
        shares[t].first = ITEMS * (uint64_t)t / WORKERS;
        shares[t].end = ITEMS * (uint64_t)(t + 1) / WORKERS;
        CHECK(pthread_create(&ids[t], NULL, worker, &shares[t]) == 0);
    }
    uint64_t total = 0;
    for (int t = 0; t < WORKERS; t++) {
        CHECK(pthread_join(ids[t], NULL) == 0);
        total += shares[t].sum;
    }
    uint64_t alone = 0;
    for (uint64_t i = 0; i < ITEMS; i++) {
        alone += mix(i);
    }
    CHECK(total == alone);
    unsigned long seen = atomic_load(&cpus_seen);
    if (n >= 2) {
        CHECK(bits(seen) >= 2 && atomic_load(&most_at_once) >= 2);
    }

    /* Pinned to the last CPU, the caller runs there. */
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(n - 1, &one);
    CHECK(sched_setaffinity(0, sizeof one, &one) == 0);
    for (int round = 0; round < 20; round++) {
        CHECK(sched_getcpu() == n - 1);
        sched_yield();
    }
    cpu_set_t got;
    CHECK(sched_getaffinity(0, sizeof got, &got) == 0 && CPU_COUNT(&got) == 1 && CPU_ISSET(n - 1, &got));
    cpu_set_t none;
    CPU_ZERO(&none);
    CPU_SET(63, &none); /* no such CPU here */
    FAILS(sched_setaffinity(0, sizeof none, &none), EINVAL);
    FAILS(sched_setaffinity(99999, sizeof set, &set), ESRCH);
    CHECK(sched_setaffinity(0, sizeof set, &set) == 0);
    printf("ok smp %d CPUs, workers seen on CPUs %#lx, %d at once\n", n, seen, atomic_load(&most_at_once));
}

int smp_family_run(const char *f) {
    if (strncmp(f, "smp=", 4) != 0) {
        return 0;
    }
    smp_family(atoi(f + 4));
    return 1;
}
