/* wx: checks W^X from inside a loaded program. `write-code` stores into its own text (the
 * loader maps it read + execute: the store must fault); `run-data` calls into a writable data
 * buffer (mapped read + write, never executable: the fetch must fault); `rodata` stores into a
 * read-only string; `mprotect` asks for writable + executable text (EACCES), then makes a data
 * page read-only, checks that read() into it now fails with EFAULT, and stores into it. Each prints a line first and a "NOT PROTECTED" line if it
 * survives. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static unsigned char page_of_data[2 * 4096];

static unsigned char data_code[64] = {0xc3}; /* x86 `ret`; on aarch64 any word: it must not run */
static const char read_only[] = "read-only data";

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    printf("wx: %s\n", mode);
    fflush(stdout);
    if (strcmp(mode, "write-code") == 0) {
        *(volatile unsigned char *)(void *)main = 0;
    } else if (strcmp(mode, "run-data") == 0) {
        ((void (*)(void))(void *)data_code)();
    } else if (strcmp(mode, "rodata") == 0) {
        *(volatile char *)read_only = 'R';
    } else if (strcmp(mode, "mprotect") == 0) {
        void *text = (void *)((uintptr_t)(void *)main & ~(uintptr_t)4095);
        int rc = mprotect(text, 4096, PROT_READ | PROT_WRITE | PROT_EXEC);
        printf("wx: mprotect rwx %d %s\n", rc, rc ? strerror(errno) : "accepted");
        unsigned char *page = (unsigned char *)(((uintptr_t)page_of_data + 4095) & ~(uintptr_t)4095);
        page[0] = 1;
        /* A read() into the page while it is writable, so the kernel has checked it (x86_64
         * remembers checked pages), then one after mprotect: the kernel must see the change. */
        int zero = open("/dev/zero", O_RDONLY);
        ssize_t before = read(zero, page, 16);
        rc = mprotect(page, 4096, PROT_READ);
        ssize_t after = read(zero, page, 16);
        printf("wx: mprotect read-only %d, read() before %zd, after %zd %s\n", rc, before, after, after < 0 ? strerror(errno) : "accepted");
        fflush(stdout);
        *(volatile unsigned char *)page = 2;
    } else {
        return 2;
    }
    printf("wx: %s NOT PROTECTED\n", mode);
    return 1;
}
