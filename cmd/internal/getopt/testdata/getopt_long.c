/* glibc's getopt_long(), as a test oracle for package getopt.
 *
 * GETOPT_SPEC describes the options, comma-separated, each
 * "long/short/arg": long or short may be empty, arg is 0 (no_argument)
 * or 1 (required_argument).
 *
 * Each line of stdin is a command line, its words separated by \x1f, the
 * first being argv[0], which glibc names in its messages. For each
 * getopt_long() result it prints "o INDEX VALUE" (INDEX into the spec) or,
 * after glibc's own message on stderr, "?"; then "= OPERAND" for each
 * operand, and a "\x1e" line to end the command line. stdout is unbuffered so
 * that it interleaves with stderr on one pipe. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX 64

int main(void) {
        struct option longopts[MAX + 1];
        int has_arg[MAX], val[MAX];
        char optstring[2 * MAX + 1] = "";
        char *spec = getenv("GETOPT_SPEC"), *tok, *save = NULL;
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        int n = 0, nlong = 0, c, i;

        setvbuf(stdout, NULL, _IONBF, 0);
        memset(longopts, 0, sizeof longopts);
        if (!spec)
                return 2;
        for (tok = strtok_r(spec, ",", &save); tok && n < MAX; tok = strtok_r(NULL, ",", &save), n++) {
                char *s1 = strchr(tok, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
                if (!s2)
                        return 2;
                *s1 = *s2 = '\0';
                has_arg[n] = s2[1] == '1';
                val[n] = s1[1] ? s1[1] : 256 + n;
                if (s1[1]) {
                        strncat(optstring, s1 + 1, 1);
                        if (has_arg[n])
                                strcat(optstring, ":");
                }
                if (*tok)
                        longopts[nlong++] = (struct option) {
                                tok, has_arg[n] ? required_argument : no_argument, NULL, val[n]
                        };
        }

        while ((len = getline(&line, &cap, stdin)) > 0) {
                char *argv[MAX + 1], *p = line;
                int argc = 0;

                if (line[len - 1] == '\n')
                        line[len - 1] = '\0';
                for (;;) {
                        char *sep = strchr(p, '\x1f');
                        if (argc == MAX)
                                return 2;
                        argv[argc++] = p;
                        if (!sep)
                                break;
                        *sep = '\0';
                        p = sep + 1;
                }
                argv[argc] = NULL;

                optind = 0; /* start afresh: glibc reinitializes its state */
                while ((c = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
                        if (c == '?') {
                                printf("?\n");
                                continue;
                        }
                        for (i = 0; i < n && val[i] != c; i++)
                                ;
                        printf("o %d %s\n", i, has_arg[i] ? optarg : "");
                }
                for (; optind < argc; optind++)
                        printf("= %s\n", argv[optind]);
                printf("\x1e\n");
        }
        free(line);
        return 0;
}
