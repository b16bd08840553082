package torchless

/*
#include "torchless.h"
*/
import "C"

import (
	"context"
	"fmt"
	"unsafe"
)

// EmbedImages returns one L2-normalised embedding per image of an image-text embedder (CLIP),
// in the space Embed puts its texts in (as CLIPModel's image_embeds). input is a contiguous
// NCHW float32 tensor of shape [batch, 3, size, size], preprocessed as the model's
// preprocessor_config.json says (resize, centre crop, rescale, normalise), size being the
// model's image_size. On a model that is not an image-text embedder it returns an *Error with
// StatusWrongModelKind.
func (m *Model) EmbedImages(ctx context.Context, input []float32, shape [4]int) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return nil, &Error{Op: "embed images", Status: StatusInvalidArgument,
				Message: fmt.Sprintf("negative dimension in shape %v", shape)}
		}
		n *= d
	}
	if n != len(input) {
		return nil, &Error{Op: "embed images", Status: StatusInvalidArgument,
			Message: fmt.Sprintf("shape %v holds %d values, input has %d", shape, n, len(input))}
	}
	ptr, err := m.acquire()
	if err != nil {
		return nil, err
	}
	defer m.release()
	dim := m.info.OutputDim
	flat := make([]float32, shape[0]*dim)
	var inPtr, outPtr *C.float
	if len(input) > 0 {
		inPtr = (*C.float)(unsafe.Pointer(&input[0]))
	}
	if len(flat) > 0 {
		outPtr = (*C.float)(unsafe.Pointer(&flat[0]))
	}
	var rows, cdim C.size_t
	err = call("embed images", func() C.TorchlessStatus {
		return C.torchless_embed_images(ptr, inPtr, C.size_t(shape[0]), C.size_t(shape[1]),
			C.size_t(shape[2]), C.size_t(shape[3]), outPtr, C.size_t(len(flat)), &rows, &cdim)
	})
	if err != nil {
		return nil, err
	}
	out := make([][]float32, int(rows))
	for i := range out {
		d := int(cdim)
		out[i] = flat[i*d : (i+1)*d : (i+1)*d]
	}
	return out, nil
}
