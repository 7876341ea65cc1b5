/* timed-exec OUT PATH ARGV0 [ARGS...]: runs PATH with argv ARGV0 ARGS (stdin, env and fds
 * inherited, as runc runs a hook), then appends "<wall microseconds> <peak RSS KiB>" of that
 * process, from fork to exit, to OUT; exits with its status. The real-GPU suite puts it in front
 * of the hook to time the whole hook process, start-up included (the hook's own elapsed_ms
 * starts in main). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: timed-exec OUT PATH ARGV0 [ARGS...]\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 2; }
    if (pid == 0) {
        execv(argv[2], argv + 3);
        perror("execv");
        _exit(127);
    }
    int status = 0;
    struct rusage usage;
    if (wait4(pid, &status, 0, &usage) < 0) { perror("wait4"); return 2; }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000L;
    FILE *out = fopen(argv[1], "a");
    if (out) {
        fprintf(out, "%ld %ld\n", us, usage.ru_maxrss);
        fclose(out);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
