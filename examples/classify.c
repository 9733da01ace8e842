/* classify: label images with a trained qnn model, in C, through the C API (qnn.h).
 *
 *   classify CHECKPOINT IMAGE.ppm...            top 3 classes of each image
 *   classify CHECKPOINT test_batch.bin [LIMIT]  a CIFAR-10 batch file: its first LIMIT images
 *                                               (all by default), and the accuracy against its labels
 *
 * IMAGE.ppm is a binary PPM (P6, 8-bit RGB) of the size the model was trained on (32 x 32 for
 * CIFAR), e.g. `convert cat.jpg -resize 32x32! cat.ppm`. A CIFAR-10 batch file holds records of
 * one label byte and 3072 pixel bytes (1024 R, then G, then B: planar), which are turned into
 * the RGB-interleaved (HWC) bytes that qnn_classify_u8() takes.
 * Build against an installed qnn: cc -std=c99 classify.c $(pkg-config --cflags --libs qnn)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qnn.h"

static const char* const kCifar10Classes[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                                "dog", "frog", "horse", "ship", "truck"};

static const char* class_name(const qnn_model* model, int c) {
  return qnn_model_num_classes(model) == 10 ? kCifar10Classes[c] : "";
}

/* The next whitespace-separated number of a PPM header, skipping # comments; -1 if none. */
static long ppm_number(FILE* f) {
  int ch = fgetc(f);
  while (ch == '#' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
    if (ch == '#')
      while (ch != '\n' && ch != EOF) ch = fgetc(f);
    ch = fgetc(f);
  }
  long value = -1;
  while (ch >= '0' && ch <= '9' && value < 100000) {
    value = (value < 0 ? 0 : value * 10) + (ch - '0');
    ch = fgetc(f);
  }
  return value; /* the single whitespace after the number has been read */
}

/* Reads a P6 PPM of exactly size x size pixels into rgb (size * size * 3 bytes). */
static int read_ppm(const char* path, int size, unsigned char* rgb) {
  FILE* f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "classify: %s: cannot open\n", path);
    return 0;
  }
  char magic[2] = {0, 0};
  const int ok_magic = fread(magic, 1, 2, f) == 2 && magic[0] == 'P' && magic[1] == '6';
  const long width = ok_magic ? ppm_number(f) : -1, height = ok_magic ? ppm_number(f) : -1;
  const long maxval = ok_magic ? ppm_number(f) : -1;
  int ok = 0;
  if (!ok_magic || maxval != 255)
    fprintf(stderr, "classify: %s: expected a binary PPM (P6) with 8-bit samples\n", path);
  else if (width != size || height != size)
    fprintf(stderr, "classify: %s is %ld x %ld; the model takes %d x %d images\n", path, width, height, size, size);
  else if (fread(rgb, 1, (size_t)size * size * 3, f) != (size_t)size * size * 3)
    fprintf(stderr, "classify: %s: truncated pixel data\n", path);
  else
    ok = 1;
  fclose(f);
  return ok;
}

static int classify_ppm(qnn_model* model, int argc, char** argv) {
  const int size = qnn_model_image_size(model), k = qnn_model_num_classes(model) < 3 ? 1 : 3;
  unsigned char* rgb = malloc((size_t)size * size * 3);
  int status = 0;
  for (int i = 2; i < argc && rgb; ++i) {
    int32_t classes[3];
    float probabilities[3];
    if (!read_ppm(argv[i], size, rgb)) {
      status = 1;
      continue;
    }
    if (qnn_classify_u8(model, rgb, 1, size, size, k, classes, probabilities) != QNN_OK) {
      fprintf(stderr, "classify: %s\n", qnn_last_error());
      status = 1;
      continue;
    }
    printf("%s:", argv[i]);
    for (int j = 0; j < k; ++j) printf(" %d %s %.3f%s", classes[j], class_name(model, classes[j]), probabilities[j], j + 1 < k ? "," : "\n");
  }
  free(rgb);
  return status;
}

/* A CIFAR-10 batch file, classified 100 images at a time. */
static int classify_cifar(qnn_model* model, const char* path, long limit) {
  enum { kBatch = 100, kRecord = 3073, kPixels = 1024 };
  FILE* f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "classify: %s: cannot open\n", path);
    return 1;
  }
  static unsigned char record[kRecord], rgb[kBatch * kPixels * 3];
  int32_t labels[kBatch], predicted[kBatch];
  long seen = 0, correct = 0;
  while (limit <= 0 || seen < limit) {
    int n = 0;
    while (n < kBatch && (limit <= 0 || seen + n < limit) && fread(record, 1, kRecord, f) == kRecord) {
      labels[n] = record[0];
      for (int p = 0; p < kPixels; ++p)
        for (int c = 0; c < 3; ++c) rgb[(n * kPixels + p) * 3 + c] = record[1 + c * kPixels + p];
      ++n;
    }
    if (n == 0) break;
    if (qnn_classify_u8(model, rgb, n, 32, 32, 1, predicted, NULL) != QNN_OK) {
      fprintf(stderr, "classify: %s\n", qnn_last_error());
      fclose(f);
      return 1;
    }
    for (int i = 0; i < n; ++i) correct += predicted[i] == labels[i];
    seen += n;
  }
  fclose(f);
  printf("%s: %ld images, %ld correct, accuracy %.2f%%\n", path, seen, correct, seen ? 100.0 * correct / seen : 0.0);
  return seen > 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: classify CHECKPOINT IMAGE.ppm...\n       classify CHECKPOINT test_batch.bin [LIMIT]\n");
    return 2;
  }
  qnn_model* model = NULL;
  if (qnn_model_load(argv[1], &model) != QNN_OK) {
    fprintf(stderr, "classify: %s\n", qnn_last_error());
    return 1;
  }
  printf("model: %s, %d classes, %lld parameters (qnn %s)\n", qnn_model_arch(model), qnn_model_num_classes(model),
         (long long)qnn_model_num_parameters(model), qnn_version());
  const size_t len = strlen(argv[2]);
  const int is_bin = len > 4 && strcmp(argv[2] + len - 4, ".bin") == 0;
  const int status = is_bin ? classify_cifar(model, argv[2], argc > 3 ? atol(argv[3]) : 0)
                            : classify_ppm(model, argc, argv);
  qnn_model_free(model);
  return status;
}
