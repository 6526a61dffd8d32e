/* bptrace OUT ADDRS BIN -- LABEL ARGV... [;; LABEL ARGV...]...
 *
 * Runs each command in turn (the next one once the previous one's first process has
 * exited) and records which functions of BIN its processes execute: an int3 on every
 * address listed in ADDRS (hex, one a line: the functions' entry points), planted
 * when a traced process execs BIN; a hit is written to OUT as
 *   SEQ LABEL ADDR
 * (LABEL is the command's, with "+" for the processes it forked), then the original
 * byte is put back in that process, so each function costs one stop per process.
 * Every descendant is traced (fork, vfork, clone); a process that execs anything
 * else is let go. The tracer is a child subreaper, so a container init that outlives
 * its `create` stays traced until it execs its program. A LABEL starting with '@'
 * names a command that is run untraced (e.g. @sleep 0.2). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t *addrs;
static unsigned char *orig;
static size_t naddrs;
static FILE *out;
static unsigned long seq;
static struct stat binst;

#define MAXP 4096
static struct { pid_t pid; int label; int child; int fresh; } procs[MAXP];
static char **labels;

static int find(pid_t pid) {
  for (int i = 0; i < MAXP; i++)
    if (procs[i].pid == pid) return i;
  return -1;
}
static int add(pid_t pid, int label, int child) {
  int i = find(pid);
  if (i < 0) i = find(0);
  if (i < 0) { fprintf(stderr, "bptrace: too many processes\n"); exit(1); }
  procs[i].pid = pid; procs[i].label = label; procs[i].child = child;
  return i;
}

static int cmpaddr(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static long bsearch_addr(uint64_t a) {
  size_t lo = 0, hi = naddrs;
  while (lo < hi) {
    size_t m = (lo + hi) / 2;
    if (addrs[m] < a) lo = m + 1; else hi = m;
  }
  return lo < naddrs && addrs[lo] == a ? (long)lo : -1;
}

static int is_bin(pid_t pid) {
  char p[64]; struct stat st;
  snprintf(p, sizeof p, "/proc/%d/exe", pid);
  return stat(p, &st) == 0 && st.st_dev == binst.st_dev && st.st_ino == binst.st_ino;
}

static void setbyte(pid_t pid, uint64_t a, unsigned char b) {
  errno = 0;
  long w = ptrace(PTRACE_PEEKTEXT, pid, (void *)a, 0);
  if (errno) { perror("peek"); return; }
  w = (w & ~0xffL) | b;
  if (ptrace(PTRACE_POKETEXT, pid, (void *)a, (void *)w) < 0) perror("poke");
}

static void plant(pid_t pid) {
  static int have_orig;
  for (size_t i = 0; i < naddrs; i++) {
    errno = 0;
    long w = ptrace(PTRACE_PEEKTEXT, pid, (void *)addrs[i], 0);
    if (errno) { perror("peek at plant"); exit(1); }
    if (!have_orig) orig[i] = w & 0xff;
    w = (w & ~0xffL) | 0xcc;
    ptrace(PTRACE_POKETEXT, pid, (void *)addrs[i], (void *)w);
  }
  have_orig = 1;
}

static pid_t start(char **argv, int traced) {
  pid_t pid = fork();
  if (pid == 0) {
    if (traced) { ptrace(PTRACE_TRACEME, 0, 0, 0); raise(SIGSTOP); }
    execvp(argv[0], argv);
    perror(argv[0]);
    _exit(127);
  }
  return pid;
}

int main(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: bptrace OUT ADDRS BIN -- LABEL ARGV... [;; ...]\n"); return 2; }
  out = fopen(argv[1], "w");
  FILE *af = fopen(argv[2], "r");
  if (!out || !af || stat(argv[3], &binst) < 0) { perror("bptrace"); return 1; }
  size_t cap = 1024; addrs = malloc(cap * 8);
  unsigned long long a;
  while (fscanf(af, "%llx", &a) == 1) {
    if (naddrs == cap) addrs = realloc(addrs, (cap *= 2) * 8);
    addrs[naddrs++] = a;
  }
  qsort(addrs, naddrs, 8, cmpaddr);
  orig = malloc(naddrs);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  /* split argv[5..] into commands at ";;" */
  int ncmd = 0; char ***cmds = calloc(argc, sizeof *cmds); labels = calloc(argc, sizeof *labels);
  for (int i = 5; i < argc;) {
    labels[ncmd] = argv[i++];
    cmds[ncmd] = &argv[i];
    while (i < argc && strcmp(argv[i], ";;")) i++;
    if (i < argc) argv[i++] = NULL;
    ncmd++;
  }
  for (int c = 0; c < ncmd; c++) {
    int traced = labels[c][0] != '@';
    pid_t root = start(cmds[c], traced);
    if (traced) add(root, c, 0), procs[find(root)].fresh = 2; /* SIGSTOP, then exec */
    int root_done = 0, rootcode = -1;
    while (!root_done) {
      int st;
      pid_t pid = waitpid(-1, &st, __WALL);
      if (pid < 0) { if (errno == EINTR) continue; perror("waitpid"); break; }
      int i = find(pid);
      if (WIFEXITED(st) || WIFSIGNALED(st)) {
        if (i >= 0) procs[i].pid = 0;
        if (pid == root) { root_done = 1; rootcode = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }
        continue;
      }
      if (!WIFSTOPPED(st)) continue;
      if (i < 0) i = add(pid, c, 1), procs[i].fresh = 1; /* a new child's stop can come before its parent's event */
      int sig = WSTOPSIG(st), ev = st >> 16, inject = 0;
      if (procs[i].fresh == 2 && sig == SIGSTOP) {
        ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC);
        procs[i].fresh = 0;
      } else if (ev == PTRACE_EVENT_FORK || ev == PTRACE_EVENT_VFORK || ev == PTRACE_EVENT_CLONE) {
        unsigned long np; ptrace(PTRACE_GETEVENTMSG, pid, 0, &np);
        int j = find(np);
        if (j < 0) { j = add(np, procs[i].label, 1); procs[j].fresh = 1; }
        else { procs[j].label = procs[i].label; procs[j].child = 1; }
      } else if (ev == PTRACE_EVENT_EXEC) {
        if (is_bin(pid)) plant(pid);
        else { procs[i].pid = 0; ptrace(PTRACE_DETACH, pid, 0, 0); continue; }
      } else if (sig == SIGSTOP && procs[i].fresh == 1) {
        procs[i].fresh = 0; /* a new child's first stop */
      } else if (sig == SIGTRAP && ev == 0) {
        struct user_regs_struct r;
        ptrace(PTRACE_GETREGS, pid, 0, &r);
        long k = bsearch_addr(r.rip - 1);
        if (k >= 0) {
          setbyte(pid, addrs[k], orig[k]);
          r.rip--;
          ptrace(PTRACE_SETREGS, pid, 0, &r);
          fprintf(out, "%lu %s%s %llx\n", seq++, labels[procs[i].label], procs[i].child ? "+" : "", (unsigned long long)addrs[k]);
        } else inject = sig;
      } else if (ev == 0) inject = sig;
      ptrace(PTRACE_CONT, pid, 0, inject);
    }
    fprintf(stderr, "bptrace: %s exit %d\n", labels[c], rootcode);
    /* reap finished untraced children (container inits let go at their exec) */
    while (waitpid(-1, NULL, WNOHANG | __WALL) > 0) {}
  }
  fclose(out);
  return 0;
}
