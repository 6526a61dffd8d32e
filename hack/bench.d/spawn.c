/* spawn OUTFD ARGV...: runs ARGV, waits for it, and writes to OUTFD one line
 *   wall_ns user_us sys_us maxrss_kib exit_code
 * A small static program, so the peak RSS the kernel reports for the child (which
 * keeps the high-water mark of the memory it had before execve) is the child's own,
 * not that of a big parent such as python (GNU time has the same floor, ~1 MiB). */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
  if (argc < 3) {
    fputs("usage: spawn OUTFD ARGV...\n", stderr);
    return 2;
  }
  int out = atoi(argv[1]);
  fcntl(out, F_SETFD, FD_CLOEXEC); /* the command (and a container it leaves) must not hold it */
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid;
  int err = posix_spawn(&pid, argv[2], NULL, NULL, &argv[2], environ);
  if (err) {
    dprintf(out, "0 0 0 0 127\n");
    return 0;
  }
  int st;
  struct rusage ru;
  if (wait4(pid, &st, 0, &ru) < 0) return 1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long long wall = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  dprintf(out, "%lld %ld %ld %ld %d\n", wall, ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec,
          ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec, ru.ru_maxrss, code);
  return 0;
}
