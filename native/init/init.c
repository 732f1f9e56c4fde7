#include "init.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

static int others_alive(void) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    char *end;
    long pid = strtol(de->d_name, &end, 10);
    if (*end == 0 && pid > 1) {
      n = 1;
      break;
    }
  }
  closedir(d);
  return n;
}

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void init_loop(int grace_ms) {
  sigset_t set;
  sigemptyset(&set);
  static const int SIGS[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof SIGS / sizeof SIGS[0]; i++) sigaddset(&set, SIGS[i]);
  sigprocmask(SIG_BLOCK, &set, NULL);
  long deadline = -1;
  for (;;) {
    siginfo_t si;
    struct timespec tick = {0, 20 * 1000000};
    int sig = deadline >= 0 ? sigtimedwait(&set, &si, &tick) : sigwaitinfo(&set, &si);
    if (sig == SIGCHLD || sig < 0) {
      while (waitpid(-1, NULL, WNOHANG) > 0) {
      }
    } else {
      kill(-1, sig); /* every process of this pid namespace but us */
      if ((sig == SIGTERM || sig == SIGINT) && deadline < 0) deadline = now_ms() + grace_ms;
    }
    if (deadline >= 0) {
      while (waitpid(-1, NULL, WNOHANG) > 0) {
      }
      if (!others_alive() || now_ms() >= deadline) _exit(0);
    }
  }
}
