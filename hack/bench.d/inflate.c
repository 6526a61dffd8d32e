/* The decompression floor of an image unpack: inflate MEDIATYPE:BLOB...
 * decompresses every layer blob to nothing, one thread per layer, all at once,
 * and does nothing else (no digest, no tar, no files): what is left of an
 * unpack's time above this is the file system's work and the tar handling.
 * Static and small like spawn.c, so its own start costs next to nothing.
 * gzip (and concatenated gzip members) and plain tar; zstd is refused. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define IN (1 << 20)
#define OUT (1 << 18)

static void *one(void *arg) {
  const char *spec = arg;
  const char *colon = strrchr(spec, ':');
  if (!colon) {
    fprintf(stderr, "inflate: %s: not MEDIATYPE:PATH\n", spec);
    exit(2);
  }
  int gz = colon - spec >= 4 && !strncmp(colon - 4, "gzip", 4);
  if (colon - spec >= 4 && !strncmp(colon - 4, "zstd", 4)) {
    fprintf(stderr, "inflate: %s: zstd layers are not supported\n", spec);
    exit(2);
  }
  int fd = open(colon + 1, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    perror(colon + 1);
    exit(1);
  }
  unsigned char *in = malloc(IN), *out = malloc(OUT);
  z_stream z = {0};
  if (gz && inflateInit2(&z, 15 + 32) != Z_OK) exit(1); /* 15+32: gzip or zlib header */
  ssize_t n;
  while ((n = read(fd, in, IN)) > 0) {
    if (!gz) continue;
    z.next_in = in;
    z.avail_in = n;
    while (z.avail_in > 0) {
      z.next_out = out;
      z.avail_out = OUT;
      int r = inflate(&z, Z_NO_FLUSH);
      if (r == Z_STREAM_END) {
        inflateReset(&z); /* another gzip member may follow */
      } else if (r != Z_OK && r != Z_BUF_ERROR) {
        fprintf(stderr, "inflate: %s: corrupt (%d)\n", colon + 1, r);
        exit(1);
      }
    }
  }
  if (n < 0) {
    perror(colon + 1);
    exit(1);
  }
  if (gz) inflateEnd(&z);
  close(fd);
  free(in);
  free(out);
  return NULL;
}

int main(int argc, char **argv) {
  pthread_t t[argc];
  for (int i = 1; i < argc; i++)
    if (pthread_create(&t[i], NULL, one, argv[i])) return 1;
  for (int i = 1; i < argc; i++) pthread_join(t[i], NULL);
  return 0;
}
