/* parallel_sum THREADS ITEMS [--check]: a CPU-bound job split over THREADS POSIX threads.
 *
 * Each thread hashes its share of ITEMS (splitmix64 of the index, 8 rounds) and adds the
 * results; the main thread adds the threads' partial sums (wrapping 64-bit arithmetic, so the
 * total does not depend on how the work is split). With --check the same sum is computed again
 * on the main thread alone and must be equal (exit 1 otherwise).
 *
 * Prints `[bench] wall-ns: N` (CLOCK_MONOTONIC around the parallel part: on TCG without icount
 * the guest clock follows the host's), `[bench] sum: S` and, with --check, `check ok`. Used by
 * `./x bench smp` (speedup of 2 vCPUs over 1, libos and the Linux guest) and by the SMP tests
 * (exact result with threads on several CPUs). Static musl, x86_64 and aarch64. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREADS 64

struct share {
    uint64_t first, end, sum;
};

static uint64_t mix(uint64_t x) {
    for (int round = 0; round < 8; round++) {
        x += 0x9e3779b97f4a7c15ull;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        x ^= x >> 31;
    }
    return x;
}

static uint64_t sum_range(uint64_t first, uint64_t end) {
    uint64_t sum = 0;
    for (uint64_t i = first; i < end; i++) {
        sum += mix(i);
    }
    return sum;
}

static void *worker(void *arg) {
    struct share *share = arg;
    share->sum = sum_range(share->first, share->end);
    return NULL;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: parallel_sum THREADS ITEMS [--check]\n");
        return 2;
    }
    int threads = atoi(argv[1]);
    uint64_t items = strtoull(argv[2], NULL, 10);
    int check = argc > 3 && strcmp(argv[3], "--check") == 0;
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "parallel_sum: 1 to %d threads\n", MAX_THREADS);
        return 2;
    }
    struct share shares[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    uint64_t start = now_ns();
    for (int t = 0; t < threads; t++) {
        shares[t].first = items * (uint64_t)t / (uint64_t)threads;
        shares[t].end = items * (uint64_t)(t + 1) / (uint64_t)threads;
        if (pthread_create(&ids[t], NULL, worker, &shares[t]) != 0) {
            fprintf(stderr, "parallel_sum: pthread_create failed\n");
            return 1;
        }
    }
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        sum += shares[t].sum;
    }
    uint64_t wall = now_ns() - start;
    printf("[bench] threads: %d\n[bench] items: %llu\n[bench] wall-ns: %llu\n[bench] sum: %llu\n", threads,
           (unsigned long long)items, (unsigned long long)wall, (unsigned long long)sum);
    if (check) {
        uint64_t alone = sum_range(0, items);
        if (alone != sum) {
            printf("check FAILED: %d threads summed %llu, one thread %llu\n", threads, (unsigned long long)sum,
                   (unsigned long long)alone);
            return 1;
        }
        printf("check ok\n");
    }
    return 0;
}
