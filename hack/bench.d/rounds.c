/* rounds SPAWN N WARMUP BUNDLE WORK NAME=RUNTIME...: bench.py's lifecycle figure where
 * there is no python (the cgroup v2 VM, hack/bench.d/v2-vm). WARMUP+N interleaved
 * rounds, each runtime once per round in a shuffled order, of
 *   create --bundle BUNDLE --pid-file P ID; start ID; (the init exits, reaped here); delete ID
 * every command timed by the SPAWN helper (spawn.c, as on the host). This process is a
 * child subreaper, so the container's init comes back here when `create` exits and its
 * CPU is counted when it is reaped, as bench.py does. One line per kept sample:
 *   BENCH-V2 sample rt=NAME round=I create=W,U,S,R start=W,U,S,R delete=W,U,S,R init_us=X other_us=Y
 * (W wall ns, U/S user/sys us, R peak RSS KiB of that command; other_us: orphans swept
 * after the round, the runtimes' helpers), and "BENCH-V2 error rt=NAME ..." per failure.
 * A runtime that fails 3 times is dropped. The runtimes' stderr goes to WORK/NAME.err. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct rt {
  const char *name, *path;
  char root[512];
  int errfd, failures;
};

struct cmd {
  long long wall_ns;
  long user_us, sys_us, rss_kib;
  int code;
};

static const char *spawn_helper;
static int devnull;

static long us(struct timeval t) { return t.tv_sec * 1000000L + t.tv_usec; }

/* Runs argv under the spawn helper: its figures, or code -1 when the helper failed. */
static struct cmd measure(char **argv, int errfd) {
  struct cmd c = {0, 0, 0, 0, -1};
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return c;
  /* above the fds the file actions write to, so no dup2 is a no-op that keeps CLOEXEC */
  int r = fcntl(p[0], F_DUPFD_CLOEXEC, 10), w = fcntl(p[1], F_DUPFD_CLOEXEC, 10);
  close(p[0]);
  close(p[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, devnull, 0);
  posix_spawn_file_actions_adddup2(&fa, devnull, 1);
  posix_spawn_file_actions_adddup2(&fa, errfd, 2);
  posix_spawn_file_actions_adddup2(&fa, w, 3);
  int n = 0;
  while (argv[n]) n++;
  char **av = calloc(n + 3, sizeof *av);
  av[0] = (char *)spawn_helper;
  av[1] = "3";
  memcpy(av + 2, argv, (n + 1) * sizeof *av);
  pid_t pid;
  int err = posix_spawn(&pid, spawn_helper, &fa, NULL, av, environ);
  posix_spawn_file_actions_destroy(&fa);
  free(av);
  close(w);
  if (err == 0) {
    char line[256];
    ssize_t k, got = 0;
    while (got < (ssize_t)sizeof line - 1 && (k = read(r, line + got, sizeof line - 1 - got)) > 0) got += k;
    line[got] = 0;
    waitpid(pid, NULL, 0);
    if (sscanf(line, "%lld %ld %ld %ld %d", &c.wall_ns, &c.user_us, &c.sys_us, &c.rss_kib, &c.code) != 5) c.code = -1;
  }
  close(r);
  return c;
}

/* Reaps the container's init (ours as subreaper): its CPU in us. */
static long reap(pid_t pid) {
  struct rusage ru;
  if (wait4(pid, NULL, 0, &ru) == pid) return us(ru.ru_utime) + us(ru.ru_stime);
  /* not our child (the runtime kept it elsewhere): wait for it to be gone */
  char p[64];
  snprintf(p, sizeof p, "/proc/%d", pid);
  for (int i = 0; i < 20000 && access(p, F_OK) == 0; i++) usleep(500);
  return 0;
}

/* Reaps orphans (the runtimes' helpers): their CPU in us. */
static long sweep(void) {
  long cpu = 0;
  struct rusage ru;
  while (wait4(-1, NULL, WNOHANG, &ru) > 0) cpu += us(ru.ru_utime) + us(ru.ru_stime);
  return cpu;
}

static void force_delete(struct rt *rt, const char *id) {
  char *argv[] = {(char *)rt->path, "--root", rt->root, "delete", "--force", (char *)id, NULL};
  measure(argv, rt->errfd);
  sweep();
}

static void put(const char *what, struct cmd c) {
  printf(" %s=%lld,%ld,%ld,%ld", what, c.wall_ns, c.user_us, c.sys_us, c.rss_kib);
}

/* One lifecycle; prints its sample line when keep. 0 ok, -1 failed (reported). */
static int lifecycle(struct rt *rt, const char *bundle, const char *work, int round, int keep) {
  static int seq;
  char id[64], pidfile[600];
  snprintf(id, sizeof id, "v2-%s-%d", rt->name, ++seq);
  snprintf(pidfile, sizeof pidfile, "%s/%s.pid", work, id);
  char *create[] = {(char *)rt->path, "--root", rt->root, "create", "--bundle", (char *)bundle,
                    "--pid-file", pidfile, id, NULL};
  char *start[] = {(char *)rt->path, "--root", rt->root, "start", id, NULL};
  char *del[] = {(char *)rt->path, "--root", rt->root, "delete", id, NULL};
  const char *what = "create";
  struct cmd c = measure(create, rt->errfd), s = {0}, d = {0};
  long init_us = 0;
  if (c.code != 0) goto fail;
  FILE *f = fopen(pidfile, "r");
  int pid = 0;
  if (!f || fscanf(f, "%d", &pid) != 1) {
    if (f) fclose(f);
    what = "pid-file";
    goto fail;
  }
  fclose(f);
  unlink(pidfile);
  what = "start";
  s = measure(start, rt->errfd);
  if (s.code != 0) goto fail;
  init_us = reap(pid);
  what = "delete";
  d = measure(del, rt->errfd);
  if (d.code != 0) goto fail;
  long other_us = sweep();
  if (keep) {
    printf("BENCH-V2 sample rt=%s round=%d", rt->name, round);
    put("create", c);
    put("start", s);
    put("delete", d);
    printf(" init_us=%ld other_us=%ld\n", init_us, other_us);
    fflush(stdout);
  }
  return 0;
fail:
  printf("BENCH-V2 error rt=%s round=%d %s exit %d\n", rt->name, round, what,
         what[0] == 'c' ? c.code : what[0] == 's' ? s.code : d.code);
  fflush(stdout);
  unlink(pidfile);
  force_delete(rt, id);
  return -1;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fputs("usage: rounds SPAWN N WARMUP BUNDLE WORK NAME=RUNTIME...\n", stderr);
    return 2;
  }
  spawn_helper = argv[1];
  int n = atoi(argv[2]), warmup = atoi(argv[3]);
  const char *bundle = argv[4], *work = argv[5];
  int nrt = argc - 6;
  struct rt *rts = calloc(nrt, sizeof *rts);
  devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  for (int i = 0; i < nrt; i++) {
    char *eq = strchr(argv[6 + i], '=');
    if (!eq) return 2;
    *eq = 0;
    rts[i].name = argv[6 + i];
    rts[i].path = eq + 1;
    snprintf(rts[i].root, sizeof rts[i].root, "%s/root-%s", work, rts[i].name);
    char p[600];
    snprintf(p, sizeof p, "%s/%s.err", work, rts[i].name);
    rts[i].errfd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  }
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  int *order = calloc(nrt, sizeof *order);
  for (int round = 0; round < warmup + n; round++) {
    for (int i = 0; i < nrt; i++) order[i] = i;
    for (int i = nrt - 1; i > 0; i--) {
      int j = rand() % (i + 1), t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    for (int i = 0; i < nrt; i++) {
      struct rt *rt = &rts[order[i]];
      if (rt->failures >= 3) continue;
      if (lifecycle(rt, bundle, work, round, round >= warmup) < 0) rt->failures++;
    }
    printf("BENCH-V2 round %d done\n", round);
    fflush(stdout);
  }
  return 0;
}
