/*
 * fmnist.h — a small loader for the Fashion-MNIST files Debian's dataset-fashion-mnist package
 * installs (in /usr/share/datasets/fashion-mnist, files named NAME-images-idx3-ubyte.gz): IDX format, gzip-compressed.
 * Images become float vectors of 784 pixel values 0..255 (unscaled, as in ann-benchmarks).
 * Header-only; needs zlib.
 */
#ifndef IQDB_EXAMPLES_FMNIST_H
#define IQDB_EXAMPLES_FMNIST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"
#define FMNIST_DIM 784

/* Reads a whole gzip file into memory; returns NULL (and prints why) on failure. */
static unsigned char *fmnist_slurp(const char *path, size_t *len) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s (install the dataset-fashion-mnist package)\n", path);
        return NULL;
    }
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) break;
            buf = nb;
        }
        int r = gzread(f, buf + n, (unsigned)(cap - n));
        if (r <= 0) break;
        n += (size_t)r;
    }
    gzclose(f);
    *len = n;
    return buf;
}

static uint32_t fmnist_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Loads "<dir>/<name>-images-idx3-ubyte.gz" as n x 784 floats. Returns NULL on error. */
static float *fmnist_images(const char *name, size_t *n_out) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", FMNIST_DIR, name);
    size_t len;
    unsigned char *b = fmnist_slurp(path, &len);
    if (!b) return NULL;
    if (len < 16 || fmnist_be32(b) != 0x803 || fmnist_be32(b + 8) != 28 ||
        fmnist_be32(b + 12) != 28 || (size_t)fmnist_be32(b + 4) * FMNIST_DIM + 16 != len) {
        fprintf(stderr, "%s: not an IDX image file of 28x28 images\n", path);
        free(b);
        return NULL;
    }
    size_t n = fmnist_be32(b + 4);
    float *v = malloc(n * FMNIST_DIM * sizeof(float));
    for (size_t i = 0; i < n * FMNIST_DIM; i++) v[i] = (float)b[16 + i];
    free(b);
    *n_out = n;
    return v;
}

/* Loads "<dir>/<name>-labels-idx1-ubyte.gz". Returns NULL on error. */
static unsigned char *fmnist_labels(const char *name, size_t *n_out) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", FMNIST_DIR, name);
    size_t len;
    unsigned char *b = fmnist_slurp(path, &len);
    if (!b) return NULL;
    if (len < 8 || fmnist_be32(b) != 0x801 || (size_t)fmnist_be32(b + 4) + 8 != len) {
        fprintf(stderr, "%s: not an IDX label file\n", path);
        free(b);
        return NULL;
    }
    size_t n = fmnist_be32(b + 4);
    memmove(b, b + 8, n);
    *n_out = n;
    return b;
}

static const char *const fmnist_class_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

#endif
