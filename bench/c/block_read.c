/* block_read: N reads of 512 bytes from the raw virtio-blk disk, each one a device request.
 *
 * The seed-003 block workload: 100 000 reads of 512 bytes. O_DIRECT keeps the page cache out of
 * the way, so every read reaches the device (on libos, the same loop calls the block driver
 * directly). Reads walk the disk sequentially and wrap at its end; one warm-up read comes first.
 * Besides the loop's ticks it reports the CPU's idle time inside the loop (idle-ticks, from
 * cpuidle or /proc/stat, see bench_idle_ns; resolution in idle-resolution-ns), so the harness
 * can tell the guest's own instructions from the time it waited for the device.
 * Usage: block_read [N] [DEVICE]  (defaults: 100000, /dev/vda) */
#define _GNU_SOURCE
#include "bench_common.h"
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

enum { READ_SIZE = 512, ALIGNMENT = 4096 };

int main(int argc, char **argv) {
    long reads = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
    const char *device = argc > 2 ? argv[2] : "/dev/vda";
    int fd = open(device, O_RDONLY | O_DIRECT);
    if (fd < 0) {
        perror(device);
        return 1;
    }
    /* The size without BLKGETSIZE64: musl's wrapper hides <linux/fs.h>; seeking works too. */
    off_t end_offset = lseek(fd, 0, SEEK_END);
    unsigned long long disk_bytes = end_offset > 0 ? (unsigned long long)end_offset : 0;
    if (disk_bytes < READ_SIZE) {
        fprintf(stderr, "block_read: cannot size %s\n", device);
        return 1;
    }
    void *buffer;
    if (posix_memalign(&buffer, ALIGNMENT, READ_SIZE) != 0) {
        return 1;
    }
    if (pread(fd, buffer, READ_SIZE, 0) != READ_SIZE) { /* warm-up */
        perror("pread");
        return 1;
    }
    unsigned long long blocks = disk_bytes / READ_SIZE;
    long long idle_before = bench_idle_ns();
    bench_mark("start");
    uint64_t start = bench_ticks();
    for (long i = 0; i < reads; i++) {
        off_t offset = (off_t)((unsigned long long)i % blocks) * READ_SIZE;
        if (pread(fd, buffer, READ_SIZE, offset) != READ_SIZE) {
            perror("pread");
            return 1;
        }
    }
    uint64_t end = bench_ticks();
    bench_mark("end");
    long long idle_ns = bench_idle_ns() - idle_before;
    bench_report("counter-hz", bench_ticks_hz());
    bench_report("idle-ticks", (uint64_t)((double)idle_ns * (double)bench_ticks_hz() / 1e9));
    bench_report("idle-resolution-ns", (uint64_t)bench_idle_resolution_ns);
    bench_report("operations", (uint64_t)reads);
    bench_report("loop-ticks", end - start);
    return 0;
}
