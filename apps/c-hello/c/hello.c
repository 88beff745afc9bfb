/* c-hello: an ordinary C program (static musl), run unmodified on libos through posix-shim.
 * Prints its arguments and environment, uses a __thread variable, an atexit handler and
 * buffered stdio, and exits with the code given by `--exit N` (default 0). `--cat PATH`
 * reads a file into a static buffer and prints its size and a checksum. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;
static __thread int tls_counter = 41;
static __thread char tls_zeroed[64];

/* In .bss: under the ELF loader, pages of the program's own (not identity-mapped), which a
 * read from a device fills directly. */
static unsigned char file_buffer[256 * 1024];

static void cat(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        exit(3);
    }
    unsigned long sum = 0;
    long total = 0;
    ssize_t n;
    while ((n = read(fd, file_buffer, sizeof file_buffer)) > 0) {
        for (ssize_t j = 0; j < n; j++) sum = sum * 31 + file_buffer[j];
        total += n;
    }
    close(fd);
    printf("cat %s: %ld bytes, checksum %lu\n", path, total, sum);
}

static void goodbye(void) {
    /* Runs from exit(): stdout is still buffered when we get here (no newline yet). */
    printf("atexit handler ran");
}

int main(int argc, char **argv) {
    int code = 0;
    printf("hello from C on %s: argc=%d\n", "libos", argc);
    for (int i = 0; i < argc; i++) {
        printf("argv[%d]=%s\n", i, argv[i]);
        if (strcmp(argv[i], "--exit") == 0 && i + 1 < argc) {
            code = atoi(argv[i + 1]);
        }
        if (strcmp(argv[i], "--cat") == 0 && i + 1 < argc) {
            cat(argv[i + 1]);
        }
    }
    for (char **e = environ; *e; e++) {
        printf("env %s\n", *e);
    }
    tls_counter++;
    printf("tls %d %d pid %d\n", tls_counter, tls_zeroed[10], (int)getpid());
    atexit(goodbye);
    return code;
}
