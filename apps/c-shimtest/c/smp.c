/* smp=N: C threads on a machine of N CPUs (`./x run c-shimtest --cpus N -- smp=N`).
 *
 * - the CPU count: sysconf(_SC_NPROCESSORS_ONLN) and sched_getaffinity both say N;
 * - a parallel sum over 4 POSIX threads equals the sum computed by one thread;
 * - with N >= 2, two threads pinned to the first and last CPU run at the same time (a spin
 *   hand-over that cannot progress on one CPU);
 * - sched_setaffinity pins the caller to one CPU (sched_getcpu agrees), a set of CPUs that do
 *   not exist is EINVAL, an unknown thread ESRCH; the full set is restored. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define WORKERS 4
#define ITEMS 4000000ull

static atomic_int running, most_at_once;
static atomic_ulong cpus_seen;

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

/* Two threads pinned to CPUs a and b hand a turn back and forth by spinning on one atomic,
 * with no system call in the loop: a spinning thread keeps its CPU, so each hand-over needs
 * both CPUs running at once (on one CPU the watchdog of 60 s fails the check). */
#define ROUNDS 500
static atomic_long turn;
struct player {
    int cpu, parity, failed;
};

static uint64_t seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec;
}

static void *play(void *arg) {
    struct player *p = arg;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(p->cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0 || sched_getcpu() != p->cpu) {
        p->failed = __LINE__;
        return NULL;
    }
    uint64_t deadline = seconds() + 60;
    for (long round = 0; round < ROUNDS; round++) {
        long mine = 2 * round + p->parity;
        for (unsigned long spins = 1; atomic_load(&turn) != mine; spins++) {
            if (spins % 65536 == 0 && seconds() > deadline) {
                p->failed = __LINE__;
                return NULL;
            }
        }
        atomic_store(&turn, mine + 1);
    }
    return NULL;
}

static void handshake(int a, int b) {
    struct player players[2] = {{a, 0, 0}, {b, 1, 0}};
    pthread_t ids[2];
    atomic_store(&turn, 0);
    for (int i = 0; i < 2; i++) {
        CHECK(pthread_create(&ids[i], NULL, play, &players[i]) == 0);
    }
    for (int i = 0; i < 2; i++) {
        CHECK(pthread_join(ids[i], NULL) == 0);
        if (players[i].failed) {
            printf("player on CPU %d failed at smp.c:%d\n", players[i].cpu, players[i].failed);
        }
        CHECK(players[i].failed == 0);
    }
    CHECK(atomic_load(&turn) == 2 * ROUNDS);
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
        handshake(0, n - 1);
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

/* smp-mprotect: a thread pinned to the last CPU writes a page of this program's data, then
 * spins; the main thread makes the page read-only and then asks for one more write, which must fault
 * (a TLB shootdown reached that CPU). Only meaningful for a loaded program (elf-runner), whose
 * pages the platform protects in hardware: the fault ends the VM with a crash report. */
static char page[8192] __attribute__((aligned(4096)));
static atomic_long writes, go;

static void *writer(void *arg) {
    int cpu = *(int *)arg;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    CHECK(sched_setaffinity(0, sizeof one, &one) == 0 && sched_getcpu() == cpu);
    volatile char *target = page;
    for (int i = 0; i < 1000; i++) {
        target[0]++; /* the page's writable translation is now in this CPU's TLB */
    }
    atomic_store(&writes, 1000);
    while (!atomic_load(&go)) {
        /* spins without touching the page (nor making a system call): a stale translation
         * would stay */
    }
    target[0]++; /* must fault */
    printf("FAIL smp-mprotect: a write to the read-only page succeeded on CPU %d\n", cpu);
    fflush(stdout);
    exit(1);
}

static void smp_mprotect(void) {
    int cpu = (int)sysconf(_SC_NPROCESSORS_ONLN) - 1;
    CHECK(cpu >= 1);
    pthread_t id;
    CHECK(pthread_create(&id, NULL, writer, &cpu) == 0);
    while (atomic_load(&writes) < 1000) {
        sched_yield();
    }
    CHECK(mprotect(page, 4096, PROT_READ) == 0);
    printf("smp-mprotect: the page is read-only now (the writer on CPU %d wrote it %ld times)\n", cpu, atomic_load(&writes));
    fflush(stdout);
    atomic_store(&go, 1);
    pthread_join(id, NULL);
    printf("FAIL smp-mprotect: the writer returned\n");
    exit(1);
}

/* ---- smp-exits: threads ending on one CPU while their stacks are unmapped on another ---- */

static atomic_int detached_done;

static void *short_lived(void *arg) {
    volatile uint64_t sum = 0;
    for (uint64_t i = 0; i < 200; i++) sum += i * (uintptr_t)arg;
    return (void *)(uintptr_t)(sum & 0xff);
}

static void *detached(void *arg) {
    (void)arg;
    atomic_fetch_add(&detached_done, 1);
    return NULL; /* musl unmaps a detached thread's own stack, then calls exit on it */
}

/* Joiners on every CPU create and join threads as fast as they can: each join unmaps the
 * stack of a thread that may still be finishing its exit on another CPU, and the next create
 * maps (and zeroes) memory again at once. Detached threads unmap their own stacks. */
static void *create_and_join(void *arg) {
    int rounds = (int)(intptr_t)arg;
    for (int i = 0; i < rounds; i++) {
        pthread_t t;
        void *result = NULL;
        CHECK(pthread_create(&t, NULL, short_lived, (void *)(intptr_t)i) == 0);
        CHECK(pthread_join(t, &result) == 0);
        uint64_t sum = 0;
        for (uint64_t k = 0; k < 200; k++) sum += k * (uint64_t)i;
        CHECK((uintptr_t)result == (sum & 0xff));
        if (i % 8 == 0) {
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            CHECK(pthread_create(&t, &attr, detached, NULL) == 0);
            pthread_attr_destroy(&attr);
        }
    }
    return NULL;
}

static void smp_exits(int rounds) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    pthread_t joiners[8];
    int n = cpus < 8 ? (int)cpus : 8;
    for (int i = 0; i < n; i++) CHECK(pthread_create(&joiners[i], NULL, create_and_join, (void *)(intptr_t)rounds) == 0);
    for (int i = 0; i < n; i++) CHECK(pthread_join(joiners[i], NULL) == 0);
    int detached_expected = n * ((rounds + 7) / 8);
    for (int waited = 0; atomic_load(&detached_done) < detached_expected && waited < 5000; waited++) usleep(1000);
    CHECK(atomic_load(&detached_done) == detached_expected);
    printf("ok smp-exits %d threads created, joined and unmapped on %d CPUs, %d detached\n", n * rounds, n, detached_expected);
}

int smp_family_run(const char *f) {
    if (!strcmp(f, "smp-mprotect")) {
        smp_mprotect();
        return 1;
    }
    if (!strncmp(f, "smp-exits=", 10)) {
        smp_exits(atoi(f + 10));
        return 1;
    }
    if (smp_files_family_run(f)) {
        return 1;
    }
    if (strncmp(f, "smp=", 4) != 0) {
        return 0;
    }
    smp_family(atoi(f + 4));
    return 1;
}
