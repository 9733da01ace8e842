/* qnn's C API: load a trained model from a qnn checkpoint, classify images, fine-tune it with
 * SGD, save it again. C99, so that C programs and any language with a C foreign-function
 * interface (Python's ctypes, Rust, Go, Java's FFM ...) can use the library without C++.
 *
 * Conventions:
 *  - Handles are opaque (qnn_model*); qnn_model_free() releases one (NULL is fine).
 *  - Every call that can fail returns a qnn_status; QNN_OK is 0. On failure, qnn_last_error()
 *    gives the message of the calling thread's last failed call ("[qnn_model_load] ckpt.safetensors:
 *    metadata 'arch' is missing"), valid until that thread's next call into this API. No C++
 *    exception ever crosses this boundary and nothing is printed; the library never exits.
 *  - A handle may be used by one thread at a time; different handles are independent.
 *  - Everything runs on the CPU.
 *
 * Models: the checkpoints ./apps/cifar and ./apps/imagenet write (safetensors with metadata
 * "format" = "qnn-checkpoint-1"). The architecture comes from the metadata: "arch" (resnet20,
 * resnet32, resnet44, resnet56, resnet110 for CIFAR; resnet18, resnet34, resnet50 for ImageNet),
 * "setting.shortcut" (A or B) for CIFAR ResNets, and the QAT settings ("setting.qat",
 * "setting.weight-bits", ...) for a quantization-aware-trained CIFAR ResNet, read and checked
 * as ./apps/cifar --resume reads them. The number of classes is the classifier's (fc.weight)
 * row count.
 *
 * Images:
 *  - uint8: n images of height x width x 3 bytes each, RGB, row by row (HWC, as image files
 *    decode); normalised as in training, (x / 255 - mean[c]) / std[c], with CIFAR-10's mean and
 *    std for CIFAR models and ImageNet's for ImageNet models (qnn_model_mean_std()).
 *  - float: n images of 3 x height x width floats (NCHW), already normalised.
 *  CIFAR models are trained on 32 x 32 images and ImageNet models on 224 x 224
 *  (qnn_model_image_size()); other sizes are computed (the ResNets end in a global average pool)
 *  but are not what the model was trained on. Images are never resized here.
 *
 * Example (C):
 *   qnn_model* model = NULL;
 *   if (qnn_model_load("best.safetensors", &model) != QNN_OK) { fprintf(stderr, "%s\n", qnn_last_error()); return 1; }
 *   int32_t cls[3]; float prob[3];
 *   qnn_classify_u8(model, pixels, 1, 32, 32, 3, cls, prob);   // top-3 classes and probabilities
 *   qnn_model_free(model);
 * Link with `pkg-config --cflags --libs qnn` (docs/embedding.md).
 */
#ifndef QNN_C_API_H
#define QNN_C_API_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QNN_VERSION_STRING "0.1.0" /* the library (qnn.pc says the same) */
#define QNN_API_VERSION 1           /* this header's calls; grows when calls are added */

typedef enum qnn_status {
  QNN_OK = 0,
  QNN_ERROR_INVALID_ARGUMENT = 1, /* a NULL pointer, a non-positive size, k out of range, bad labels */
  QNN_ERROR_FILE = 2,             /* a file that cannot be opened, read or written */
  QNN_ERROR_BAD_CHECKPOINT = 3,   /* not a qnn checkpoint, damaged, or tensors that do not fit the model */
  QNN_ERROR_UNSUPPORTED_MODEL = 4,/* an architecture or setting this library does not build */
  QNN_ERROR_OUT_OF_MEMORY = 5,
  QNN_ERROR_INTERNAL = 6          /* anything else (a diverged training step, ...) */
} qnn_status;

typedef struct qnn_model qnn_model;

/* The library's QNN_VERSION_STRING and QNN_API_VERSION, as it was built (to compare with the header's). */
const char* qnn_version(void);
int qnn_api_version(void);
/* The message of this thread's last failed call ("" when none failed). */
const char* qnn_last_error(void);
/* "QNN_OK", "QNN_ERROR_FILE", ... ("unknown status" for other values). */
const char* qnn_status_name(qnn_status status);

/* Loads a model from a qnn checkpoint (model weights only: optimizer state and gradient
 * quantizer state in the file are ignored). On success *model is a new handle; on failure it is
 * set to NULL. */
qnn_status qnn_model_load(const char* path, qnn_model** model);
void qnn_model_free(qnn_model* model);

/* The architecture as recorded ("resnet20"); the string lives as long as the handle. */
const char* qnn_model_arch(const qnn_model* model);
int qnn_model_num_classes(const qnn_model* model);
/* The side of the square images the model was trained on (32 for CIFAR, 224 for ImageNet). */
int qnn_model_image_size(const qnn_model* model);
int64_t qnn_model_num_parameters(const qnn_model* model);
/* The per-channel mean and std (3 each) that qnn_*_u8 normalise with. */
qnn_status qnn_model_mean_std(const qnn_model* model, float mean[3], float stddev[3]);

/* Inference (evaluation mode: batch norms use their running statistics). logits receives
 * n x num_classes floats, image by image. */
qnn_status qnn_infer_u8(qnn_model* model, const uint8_t* images, int64_t n, int height, int width,
                        float* logits);
qnn_status qnn_infer_f32(qnn_model* model, const float* images, int64_t n, int height, int width,
                         float* logits);

/* The k most probable classes of each image, best first: classes and probabilities (softmax of
 * the logits; probabilities may be NULL) receive n x k values. 1 <= k <= num_classes. */
qnn_status qnn_classify_u8(qnn_model* model, const uint8_t* images, int64_t n, int height, int width, int k,
                           int32_t* classes, float* probabilities);
qnn_status qnn_classify_f32(qnn_model* model, const float* images, int64_t n, int height, int width, int k,
                            int32_t* classes, float* probabilities);

/* SGD as PyTorch's torch.optim.SGD defines it (optim/sgd.h). The momentum buffer is created by
 * the first training step; momentum, weight_decay and nesterov must then stay the same, the
 * learning rate may change at every step. */
typedef struct qnn_sgd_options {
  float lr;
  float momentum;     /* 0.9 is the usual choice; 0 for plain SGD */
  float weight_decay; /* L2 penalty added to the gradient, e.g. 5e-4 or 1e-4 */
  int nesterov;       /* 0 or 1 */
} qnn_sgd_options;

/* One training step on the caller's batch (training mode: batch statistics, running statistics
 * updated): forward, mean cross-entropy against labels (n values in 0..num_classes-1), backward,
 * SGD update. *loss (may be NULL) receives the batch's loss before the update. n >= 2 (batch
 * norm needs more than one value per channel). */
qnn_status qnn_train_step_u8(qnn_model* model, const uint8_t* images, const int32_t* labels, int64_t n, int height,
                             int width, const qnn_sgd_options* options, float* loss);
qnn_status qnn_train_step_f32(qnn_model* model, const float* images, const int32_t* labels, int64_t n, int height,
                              int width, const qnn_sgd_options* options, float* loss);

/* Writes the model (and the momentum buffer, when it has trained) as a qnn checkpoint with the
 * loaded file's metadata, to a temporary file renamed into place; qnn_model_load() and
 * ./apps/cifar --evaluate --resume read it. */
qnn_status qnn_model_save(qnn_model* model, const char* path);

#ifdef __cplusplus
}
#endif

#endif /* QNN_C_API_H */
