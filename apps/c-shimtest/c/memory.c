/* memory.c: program input the kernel must not trust (issue 18, item 8).
 *   memory       bad but plausible pointers give EFAULT (unmapped addresses, device windows,
 *                read-only kernel data), memory the program cannot write is never written by
 *                the kernel or by a device's DMA (/dev/vda if there is one), MAP_SHARED file
 *                mappings reach the file at msync, munmap and mremap, and munmap of a buffer
 *                a blocked read still fills does not let the data land in reused memory;
 *   memory-bad, memory-prot, memory-shared, memory-unmap: one part of `memory` each;
 *   memory-exit  leaves a MAP_SHARED mapping of /data/shared.bin modified and exits: the
 *                kernel writes it back at exit (the test reads the disk afterwards). */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
/* In the program's address range on both architectures, mapped by nothing: far above RAM
 * and every device, below the static-PIE base (0x4000_0000_0000) times two. */
#define UNMAPPED ((void *)0x500000000000UL)
#ifdef __x86_64__
#define DEVICE ((void *)0xfec00000UL) /* the I/O APIC's registers */
#else
#define DEVICE ((void *)0x08000000UL) /* the GIC distributor on QEMU virt */
#endif

/* Read-only data of the image (the kernel's identity map keeps rodata read-only). */
static const char rodata[2 * PAGE] __attribute__((aligned(PAGE))) = {1, 2, 3};

/* A file of `len` bytes of `c`; returns it open read-write. */
static int file_of(const char *path, size_t len, char c) {
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    char block[PAGE];
    memset(block, c, sizeof block);
    for (size_t done = 0; done < len; done += PAGE) CHECK(write(fd, block, PAGE) == PAGE);
    return fd;
}

static char byte_at(int fd, off_t at) {
    char c = 0;
    CHECK(pread(fd, &c, 1, at) == 1);
    return c;
}

static void bad_pointers(void) {
    int null = open("/dev/null", O_WRONLY), zero = open("/dev/zero", O_RDONLY);
    CHECK(null >= 0 && zero >= 0);
    /* A device window: no byte of it may be read for a program (nor written). */
    FAILS(write(null, DEVICE, 16), EFAULT);
    FAILS(read(zero, DEVICE, 16), EFAULT);
    /* Unmapped: EFAULT, not a kernel fault. */
    FAILS(write(null, UNMAPPED, 16), EFAULT);
    FAILS(read(zero, UNMAPPED, 16), EFAULT);
    FAILS(open((const char *)UNMAPPED, O_RDONLY), EFAULT);
    FAILS(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, UNMAPPED), EFAULT);
    FAILS(pipe((int *)UNMAPPED), EFAULT);
    /* Read-only data: never written. */
    FAILS(read(zero, (void *)rodata, 16), EFAULT);
    CHECK(rodata[0] == 1 && rodata[2] == 3);
    /* A vector whose second buffer is bad: the first one's bytes, as Linux. */
    char ok[8];
    struct iovec iov[2] = {{ok, sizeof ok}, {UNMAPPED, 8}};
    CHECK(readv(zero, iov, 2) == 8);
    iov[0].iov_base = UNMAPPED;
    FAILS(readv(zero, iov, 2), EFAULT);
    close(null);
    close(zero);
}

static void protections(void) {
    int fd = file_of("/memory-data", PAGE, 'A');
    /* Mapped read-only: a read() into it fails and leaves it alone. */
    char *ro = mmap(NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(ro != MAP_FAILED);
    FAILS(pread(fd, ro, 16, 0), EFAULT);
    CHECK(ro[0] == 0);
    /* Made read-only by mprotect, then writable again. */
    char *rw = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(rw != MAP_FAILED);
    CHECK(mprotect(rw + PAGE, PAGE, PROT_READ) == 0);
    CHECK(pread(fd, rw, 16, 0) == 16 && rw[0] == 'A');
    FAILS(pread(fd, rw + PAGE, 16, 0), EFAULT);
    FAILS(pread(fd, rw + PAGE - 8, 16, 0), EFAULT); /* straddling into the read-only page */
    CHECK(rw[PAGE] == 0);
    struct iovec iov[2] = {{rw, 8}, {rw + PAGE, 8}};
    CHECK(lseek(fd, 0, SEEK_SET) == 0 && readv(fd, iov, 2) == 8);
    CHECK(mprotect(rw + PAGE, PAGE, PROT_READ | PROT_WRITE) == 0);
    CHECK(pread(fd, rw + PAGE, 16, 0) == 16 && rw[PAGE] == 'A');
    /* PROT_NONE: not even read for a write(). */
    char *none = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(none != MAP_FAILED);
    FAILS(write(fd, none, 16), EFAULT);
    CHECK(munmap(ro, 2 * PAGE) == 0 && munmap(rw, 2 * PAGE) == 0 && munmap(none, PAGE) == 0);
    close(fd);
    /* DMA: a raw disk read straight into memory the program cannot write is refused before
     * the device is given the buffer. */
    int vda = open("/dev/vda", O_RDONLY | O_DIRECT);
    if (vda >= 0) {
        char *buffer = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(buffer != MAP_FAILED && pread(vda, buffer, PAGE, 0) == PAGE && buffer[0] == 0x5a);
        FAILS(pread(vda, (void *)rodata, PAGE, 0), EFAULT);
        CHECK(rodata[0] == 1 && rodata[PAGE - 1] == 0);
        char *ro_dma = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(ro_dma != MAP_FAILED);
        FAILS(pread(vda, ro_dma, PAGE, 0), EFAULT);
        CHECK(ro_dma[0] == 0 && ro_dma[PAGE - 1] == 0);
        CHECK(munmap(buffer, PAGE) == 0 && munmap(ro_dma, PAGE) == 0);
        close(vda);
        printf("memory: DMA into read-only memory refused\n");
    }
}

static void shared_mappings(void) {
    int fd = file_of("/memory-shared", 3 * PAGE, 'a');
    char *m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED && m[0] == 'a');
    m[0] = 'M';
    CHECK(msync(m, PAGE, MS_SYNC) == 0 && byte_at(fd, 0) == 'M');
    m[PAGE] = 'N';
    CHECK(munmap(m + PAGE, PAGE) == 0 && byte_at(fd, PAGE) == 'N');
    /* mremap moves the file backing with the mapping: the grown tail maps the file's next
     * bytes, and later stores still reach the file. */
    char *g = mremap(m, PAGE, 3 * PAGE, MREMAP_MAYMOVE);
    CHECK(g != MAP_FAILED && g[0] == 'M' && g[PAGE] == 'N' && g[2 * PAGE] == 'a');
    g[1] = 'U';
    g[2 * PAGE] = 'T';
    CHECK(munmap(g, 3 * PAGE) == 0);
    CHECK(byte_at(fd, 0) == 'M' && byte_at(fd, 1) == 'U' && byte_at(fd, 2 * PAGE) == 'T');
    close(fd);
}

/* munmap while another thread's read still fills the buffer. */
struct reader {
    int fd;
    char *buffer;
    ssize_t got;
};

static void *blocked_reader(void *arg) {
    struct reader *r = arg;
    r->got = read(r->fd, r->buffer, 16 * PAGE);
    return NULL;
}

static void unmap_during_read(void) {
    int p[2];
    CHECK(pipe(p) == 0);
    struct reader r = {p[0], mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), 0};
    CHECK(r.buffer != MAP_FAILED);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, blocked_reader, &r) == 0);
    usleep(20000); /* the reader blocks in read() on the empty pipe */
    CHECK(munmap(r.buffer, 16 * PAGE) == 0);
    /* Fresh memory of the same size: the heap would hand out the same block if the unmap had
     * freed it under the reader. */
    char *fresh = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(fresh != MAP_FAILED);
    memset(fresh, 'X', 16 * PAGE);
    char data[PAGE];
    memset(data, 'Y', sizeof data);
    CHECK(write(p[1], data, sizeof data) == PAGE);
    CHECK(pthread_join(t, NULL) == 0 && r.got == PAGE);
    for (size_t i = 0; i < 16 * PAGE; i++) CHECK(fresh[i] == 'X');
    printf("memory: read completed after munmap (%s address)\n", fresh == r.buffer ? "same" : "another");
    CHECK(munmap(fresh, 16 * PAGE) == 0);
    close(p[0]);
    close(p[1]);
}

static void memory_family(void) {
    bad_pointers();
    protections();
    shared_mappings();
    unmap_during_read();
    printf("ok memory\n");
}

static void memory_exit_family(void) {
    int fd = file_of("/data/shared.bin", 2 * PAGE, 'a');
    char *m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED);
    memcpy(m + PAGE, "written back at exit", 20);
    printf("ok memory-exit\n");
    fflush(stdout);
    _exit(0); /* no munmap, no msync */
}

int memory_family_run(const char *f) {
    if (!strcmp(f, "memory")) memory_family();
    /* One part each, to see which one fails. */
    else if (!strcmp(f, "memory-bad")) bad_pointers(), printf("ok memory-bad\n");
    else if (!strcmp(f, "memory-prot")) protections(), printf("ok memory-prot\n");
    else if (!strcmp(f, "memory-shared")) shared_mappings(), printf("ok memory-shared\n");
    else if (!strcmp(f, "memory-unmap")) unmap_during_read(), printf("ok memory-unmap\n");
    else if (!strcmp(f, "memory-exit")) memory_exit_family();
    else return 0;
    return 1;
}
