/* wx: checks W^X from inside a loaded program. `write-code` stores into its own text (the
 * loader maps it read + execute: the store must fault); `run-data` calls into a writable data
 * buffer (mapped read + write, never executable: the fetch must fault); `rodata` stores into a
 * read-only string. Each prints a line first and a "NOT PROTECTED" line if it survives. */
#include <stdio.h>
#include <string.h>

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
    } else {
        return 2;
    }
    printf("wx: %s NOT PROTECTED\n", mode);
    return 1;
}
