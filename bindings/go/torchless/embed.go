package torchless

/*
#include <stdlib.h>
#include "torchless.h"
*/
import "C"

import (
	"context"
	"fmt"
	"strings"
	"unsafe"
)

// embedChunk is how many texts go to one C call; the library batches 32 texts per forward
// pass, so chunking at the same size gives the same numbers as one call for the whole batch.
const embedChunk = 32

// Embed returns one embedding per text, in input order (an encoder model). Texts are UTF-8
// without NUL bytes; an empty slice is an error. The context is checked before each chunk of
// 32 texts: cancelling it stops a large batch between chunks, never inside the library.
func (m *Model) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if len(texts) == 0 {
		// Let the library report it, so the message is the same from every language.
		_, _, err := m.embedChunk(nil)
		return nil, err
	}
	for i, t := range texts {
		if strings.IndexByte(t, 0) >= 0 {
			return nil, &Error{Op: "embed", Status: StatusInvalidArgument,
				Message: fmt.Sprintf("texts[%d] contains a NUL byte", i)}
		}
	}
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += embedChunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := start + embedChunk
		if end > len(texts) {
			end = len(texts)
		}
		flat, dim, err := m.embedChunk(texts[start:end])
		if err != nil {
			return nil, err
		}
		for i := 0; i < end-start; i++ {
			out = append(out, flat[i*dim:(i+1)*dim:(i+1)*dim])
		}
	}
	return out, nil
}

// embedChunk runs one torchless_embed call: the texts are copied into one C buffer (C owns
// no Go pointer), the output goes straight into Go memory holding no pointers.
func (m *Model) embedChunk(texts []string) ([]float32, int, error) {
	ptr, err := m.acquire()
	if err != nil {
		return nil, 0, err
	}
	defer m.release()
	total := 0
	for _, t := range texts {
		total += len(t) + 1
	}
	var ptrs []*C.char
	if len(texts) > 0 {
		buf := C.malloc(C.size_t(total))
		defer C.free(buf)
		b := unsafe.Slice((*byte)(buf), total)
		ptrs = make([]*C.char, len(texts))
		off := 0
		for i, t := range texts {
			copy(b[off:], t)
			b[off+len(t)] = 0
			ptrs[i] = (*C.char)(unsafe.Pointer(&b[off]))
			off += len(t) + 1
		}
	}
	dim := m.info.OutputDim
	flat := make([]float32, len(texts)*dim)
	var textsPtr **C.char
	if len(ptrs) > 0 {
		textsPtr = &ptrs[0]
	}
	var outPtr *C.float
	if len(flat) > 0 {
		outPtr = (*C.float)(unsafe.Pointer(&flat[0]))
	}
	var rows, cdim C.size_t
	err = call("embed", func() C.TorchlessStatus {
		return C.torchless_embed(ptr, textsPtr, C.size_t(len(texts)), outPtr, C.size_t(len(flat)), &rows, &cdim)
	})
	if err != nil {
		return nil, 0, err
	}
	return flat, int(cdim), nil
}
