/*
 * datasets.h — dataset loaders shared by the examples, the benchmarks and the tools (C11,
 * usable from C++). Not part of the library.
 *
 *  - Fashion-MNIST / MNIST image files in IDX format, gzip-compressed, as Debian's
 *    dataset-fashion-mnist ships them (/usr/share/datasets/fashion-mnist/, files
 * *-images-idx3-ubyte.gz): a big-endian header (magic 0x00000803, count, rows, cols) then count *
 * rows * cols uint8 pixels, row-major. Each image becomes rows * cols float32 values 0..255 (no
 * scaling).
 *  - .ivecs / .fvecs files (the ann-benchmarks / TEXMEX layout): per vector a little-endian int32
 *    dimension d, then d int32 or float32 values.
 *
 * Every loader validates what it reads and, on failure, returns -1 with a message naming the
 * file and the problem in err[0..errlen). On success it returns 0 and the caller owns the array
 * (release it with free()).
 */
#ifndef IQDB_DS_FMNIST_H
#define IQDB_DS_FMNIST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The IDX magic of a 3-dimensional uint8 array (images). */
#define DS_IDX3_UBYTE_MAGIC 0x00000803u

/** Default location of Debian's dataset-fashion-mnist. */
#define DS_FMNIST_DIR "/usr/share/datasets/fashion-mnist"
#define DS_FMNIST_TRAIN "train-images-idx3-ubyte.gz"
#define DS_FMNIST_TEST "t10k-images-idx3-ubyte.gz"

/**
 * Loads a gzip-compressed (or plain: zlib reads both) IDX3 uint8 image file.
 * `want_count` (0 = any) is the number of images the file must hold; `want_rows` x `want_cols`
 * (0 = any) the image shape. The file must end right after the last pixel.
 * *out receives count * rows * cols floats, *count and *dim (= rows * cols) the shape.
 */
int ds_idx3_load(const char *path, uint32_t want_count, uint32_t want_rows, uint32_t want_cols,
                 float **out, size_t *count, size_t *dim, char *err, size_t errlen);

/**
 * Loads one of the two Fashion-MNIST image files (60,000 train or 10,000 test images of 28 x 28)
 * from `dir` (NULL = DS_FMNIST_DIR): `test` 0 gives the train set, 1 the test set.
 */
int ds_fmnist_load(const char *dir, int test, float **out, size_t *count, size_t *dim, char *err,
                   size_t errlen);

/** The IDX magic of a 1-dimensional uint8 array (labels). */
#define DS_IDX1_UBYTE_MAGIC 0x00000801u

/**
 * Loads a gzip-compressed (or plain) IDX1 uint8 file, such as Fashion-MNIST's labels:
 * *out receives *count bytes. `want_count` (0 = any) is the count the file must hold.
 */
int ds_idx1_load(const char *path, uint32_t want_count, unsigned char **out, size_t *count,
                 char *err, size_t errlen);

/** The labels of the Fashion-MNIST train (test 0) or test (test 1) set, from `dir` (NULL =
 * DS_FMNIST_DIR). */
int ds_fmnist_labels(const char *dir, int test, unsigned char **out, size_t *count, char *err,
                     size_t errlen);

/** Fashion-MNIST's ten class names, by label. */
extern const char *const ds_fmnist_class_names[10];

/**
 * Loads an .ivecs file: every record must have the same dimension (> 0). *out receives
 * count * dim int32 values (the per-record dimension words removed).
 */
int ds_ivecs_load(const char *path, int32_t **out, size_t *count, size_t *dim, char *err,
                  size_t errlen);

/** As ds_ivecs_load, for an .fvecs file (float32 values). */
int ds_fvecs_load(const char *path, float **out, size_t *count, size_t *dim, char *err,
                  size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
