/* Smoke test of libtorchless.so from C: load a model folder, embed one text, print the first
 * four values, then show the error path. Built and run by tests/capi.rs. */
#include <stdio.h>
#include <stdlib.h>

#include "torchless.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: smoke MODEL_DIR\n");
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
  return 0;
}
