/* Smoke test of libtorchless.so from C: load a model folder, embed one text, print the first
 * four values, then show the error path; with a second argument, run a torch.export program
 * (two float32 [2][3][4] inputs) through the two-call pattern and print output 0's dtype and
 * shape. Built and run by tests/capi.rs. */
#include <stdio.h>
#include <stdlib.h>

#include <stdint.h>

#include "torchless.h"

static int run_program(const char *path) {
  TorchlessModel *program = NULL;
  if (torchless_model_load(path, "cpu", NULL, &program) != TORCHLESS_STATUS_OK) {
    fprintf(stderr, "load %s: %s\n", path, torchless_last_error());
    return 1;
  }
  size_t n_in = 0, n_out = 0;
  if (torchless_program_signature(program, &n_in, &n_out) != TORCHLESS_STATUS_OK || n_in != 2) {
    fprintf(stderr, "signature: %s\n", torchless_last_error());
    return 1;
  }
  float x[24], y[24];
  for (int i = 0; i < 24; i++) {
    x[i] = (float)(i - 12) * 0.25f;
    y[i] = 0.5f;
  }
  const int64_t shape[3] = {2, 3, 4};
  TorchlessTensor in[2] = {
      {TORCHLESS_DTYPE_F32, 3, shape, x, sizeof x},
      {TORCHLESS_DTYPE_F32, 3, shape, y, sizeof y},
  };
  /* First call without buffers: the sizes come back with BUFFER_TOO_SMALL. */
  TorchlessTensorOut *outs = calloc(n_out, sizeof *outs);
  TorchlessStatus s = torchless_run(program, in, 2, outs, n_out);
  if (s != TORCHLESS_STATUS_BUFFER_TOO_SMALL) {
    fprintf(stderr, "size query gave status %d\n", (int)s);
    return 1;
  }
  for (size_t i = 0; i < n_out; i++) {
    outs[i].shape = malloc(outs[i].ndim * sizeof(int64_t) + 1);
    outs[i].shape_capacity = outs[i].ndim;
    outs[i].data = malloc(outs[i].data_bytes + 1);
    outs[i].data_capacity = outs[i].data_bytes;
  }
  if (torchless_run(program, in, 2, outs, n_out) != TORCHLESS_STATUS_OK) {
    fprintf(stderr, "run: %s\n", torchless_last_error());
    return 1;
  }
  printf("program: %zu %zu dtype=%d shape=", n_in, n_out, (int)outs[0].dtype);
  for (size_t d = 0; d < outs[0].ndim; d++) {
    printf(d ? "x%lld" : "%lld", (long long)outs[0].shape[d]);
  }
  printf("\n");
  for (size_t i = 0; i < n_out; i++) {
    free(outs[i].shape);
    free(outs[i].data);
  }
  free(outs);
  torchless_model_free(program);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: smoke MODEL_DIR [PROGRAM.pt2]\n");
    return 2;
  }
  TorchlessModel *model = NULL;
  if (torchless_model_load(argv[1], "cpu", "f32", &model) != TORCHLESS_STATUS_OK) {
    fprintf(stderr, "load: %s\n", torchless_last_error());
    return 1;
  }
  TorchlessModelInfo info;
  if (torchless_model_info(model, &info) != TORCHLESS_STATUS_OK) {
    fprintf(stderr, "info: %s\n", torchless_last_error());
    return 1;
  }
  const char *texts[] = {"Hello world"};
  float *out = malloc(info.output_dim * sizeof(float));
  size_t rows = 0, dim = 0;
  if (torchless_embed(model, texts, 1, out, info.output_dim, &rows, &dim) != TORCHLESS_STATUS_OK) {
    fprintf(stderr, "embed: %s\n", torchless_last_error());
    return 1;
  }
  printf("%.7g %.7g %.7g %.7g\n", out[0], out[1], out[2], out[3]);
  float image[3 * 4 * 4] = {0};
  size_t classes = 0;
  TorchlessStatus s = torchless_classify(model, image, 1, 3, 4, 4, out, dim, &rows, &classes);
  if (s != TORCHLESS_STATUS_WRONG_MODEL_KIND) {
    fprintf(stderr, "classify on an encoder gave status %d\n", (int)s);
    return 1;
  }
  printf("wrong kind: %s\n", torchless_last_error());
  free(out);
  torchless_model_free(model);
  return argc == 3 ? run_program(argv[2]) : 0;
}
