/* sleep SECONDS: a stand-alone static `sleep` for pjdfstest's ETXTBSY cases in the guest. They
 * copy the file `which sleep` names to a new name and run the copy, which a busybox applet
 * (found by its name) would not survive. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    char *end;
    double seconds = argc == 2 ? strtod(argv[1], &end) : -1;
    if (argc != 2 || *end || seconds < 0) {
        fprintf(stderr, "usage: sleep SECONDS\n");
        return 1;
    }
    struct timespec t = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&t, &t) != 0) {}
    return 0;
}
