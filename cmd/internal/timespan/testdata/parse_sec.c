/* systemd's own parse_sec(), as a test oracle for package timespan.
 *
 * argv[1] is the path of libsystemd-shared-NNN.so, which exports
 * parse_sec() for systemd's programs. Each record of stdin, ended by
 * "\x1e", is a span; for each it prints a line: the value in µs, or "E"
 * and the errno (E22 for EINVAL, E34 for ERANGE). */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
        int (*parse_sec)(const char *, uint64_t *);
        void *lib;
        char *rec = NULL;
        size_t cap = 0;
        ssize_t len;

        if (argc != 2 || !(lib = dlopen(argv[1], RTLD_NOW))) {
                fprintf(stderr, "dlopen: %s\n", dlerror());
                return 2;
        }
        if (!(*(void **) &parse_sec = dlsym(lib, "parse_sec"))) {
                fprintf(stderr, "dlsym: %s\n", dlerror());
                return 2;
        }
        while ((len = getdelim(&rec, &cap, '\x1e', stdin)) > 0) {
                uint64_t us = 0;
                int r;

                if (rec[len - 1] == '\x1e')
                        rec[len - 1] = '\0';
                r = parse_sec(rec, &us);
                if (r < 0)
                        printf("E%d\n", -r);
                else
                        printf("%" PRIu64 "\n", us);
        }
        free(rec);
        return 0;
}
