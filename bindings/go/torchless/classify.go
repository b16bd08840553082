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

// Classify returns the logits of a batch of images (an image classifier): input is a
// contiguous NCHW float32 tensor of shape [batch, channels, height, width], preprocessed as the
// model was trained. It returns one row of Info().OutputDim logits per image. On a model that
// is not a classifier it returns an *Error with StatusWrongModelKind.
func (m *Model) Classify(ctx context.Context, input []float32, shape [4]int) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return nil, &Error{Op: "classify", Status: StatusInvalidArgument,
				Message: fmt.Sprintf("negative dimension in shape %v", shape)}
		}
		n *= d
	}
	if n != len(input) {
		return nil, &Error{Op: "classify", Status: StatusInvalidArgument,
			Message: fmt.Sprintf("shape %v holds %d values, input has %d", shape, n, len(input))}
	}
	ptr, err := m.acquire()
	if err != nil {
		return nil, err
	}
	defer m.release()
	classes := m.info.OutputDim
	flat := make([]float32, shape[0]*classes)
	var inPtr, outPtr *C.float
	if len(input) > 0 {
		inPtr = (*C.float)(unsafe.Pointer(&input[0]))
	}
	if len(flat) > 0 {
		outPtr = (*C.float)(unsafe.Pointer(&flat[0]))
	}
	var rows, ccls C.size_t
	err = call("classify", func() C.TorchlessStatus {
		return C.torchless_classify(ptr, inPtr, C.size_t(shape[0]), C.size_t(shape[1]),
			C.size_t(shape[2]), C.size_t(shape[3]), outPtr, C.size_t(len(flat)), &rows, &ccls)
	})
	if err != nil {
		return nil, err
	}
	out := make([][]float32, int(rows))
	for i := range out {
		c := int(ccls)
		out[i] = flat[i*c : (i+1)*c : (i+1)*c]
	}
	return out, nil
}
