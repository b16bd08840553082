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

// textChunk is how many texts or pairs go to one C call; the library runs 32 per forward
// pass, so chunking at the same size gives the same numbers as one call for the whole batch.
const textChunk = 32

// Rerank scores each document against query with a text classifier (a cross-encoder
// reranker), as sentence-transformers' CrossEncoder.predict does: one row of
// Info().OutputDim scores per document, in input order, with the activation the model folder
// declares applied (by default a sigmoid for a one-label reranker, so relevance in (0, 1),
// and none for several labels). Strings are UTF-8 without NUL bytes; an empty slice is an
// error. The context is checked before each chunk of 32 documents. On a model that is not a
// text classifier it returns an *Error with StatusWrongModelKind.
func (m *Model) Rerank(ctx context.Context, query string, documents []string) ([][]float32, error) {
	if strings.IndexByte(query, 0) >= 0 {
		return nil, &Error{Op: "rerank", Status: StatusInvalidArgument,
			Message: "query contains a NUL byte"}
	}
	return m.textRows(ctx, "rerank", "documents", documents, func(ptr *C.TorchlessModel,
		texts **C.char, n C.size_t, out *C.float, capacity C.size_t, rows, labels *C.size_t) C.TorchlessStatus {
		cq := C.CString(query)
		defer C.free(unsafe.Pointer(cq))
		return C.torchless_rerank(ptr, cq, texts, n, out, capacity, rows, labels)
	})
}

// ClassifyText returns the raw logits of each text with a text classifier: one row of
// Info().OutputDim logits per text, in input order (no activation; Labels names the columns,
// a softmax gives probabilities). Texts are UTF-8 without NUL bytes; an empty slice is an
// error. The context is checked before each chunk of 32 texts. On a model that is not a text
// classifier it returns an *Error with StatusWrongModelKind.
func (m *Model) ClassifyText(ctx context.Context, texts []string) ([][]float32, error) {
	return m.textRows(ctx, "classify text", "texts", texts, func(ptr *C.TorchlessModel,
		texts **C.char, n C.size_t, out *C.float, capacity C.size_t, rows, labels *C.size_t) C.TorchlessStatus {
		return C.torchless_classify_text(ptr, texts, n, out, capacity, rows, labels)
	})
}

// Labels returns the label names by column of a text classifier (config.json's id2label,
// LABEL_i where it has none) or of an image classifier that names its classes (ViT's
// id2label), or nil for other models.
func (m *Model) Labels() []string {
	if m.labels == nil {
		return nil
	}
	return append([]string(nil), m.labels...)
}

// loadLabels reads the label names of a classifier at load time.
func loadLabels(ptr *C.TorchlessModel, n int) ([]string, error) {
	labels := make([]string, n)
	for i := range labels {
		var p *C.char
		err := call("label", func() C.TorchlessStatus {
			p = C.torchless_model_label(ptr, C.size_t(i))
			if p == nil {
				return C.TORCHLESS_STATUS_INVALID_ARGUMENT
			}
			return C.TORCHLESS_STATUS_OK
		})
		if err != nil {
			return nil, err
		}
		labels[i] = C.GoString(p)
	}
	return labels, nil
}

type textCall func(ptr *C.TorchlessModel, texts **C.char, n C.size_t, out *C.float,
	capacity C.size_t, rows, labels *C.size_t) C.TorchlessStatus

// textRows runs f over texts in chunks of textChunk and gathers the rows.
func (m *Model) textRows(ctx context.Context, op, what string, texts []string, f textCall) ([][]float32, error) {
	if len(texts) == 0 {
		// Let the library report it, so the message is the same from every language.
		_, _, err := m.textChunk(op, nil, f)
		return nil, err
	}
	for i, t := range texts {
		if strings.IndexByte(t, 0) >= 0 {
			return nil, &Error{Op: op, Status: StatusInvalidArgument,
				Message: fmt.Sprintf("%s[%d] contains a NUL byte", what, i)}
		}
	}
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += textChunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := start + textChunk
		if end > len(texts) {
			end = len(texts)
		}
		flat, width, err := m.textChunk(op, texts[start:end], f)
		if err != nil {
			return nil, err
		}
		for i := 0; i < end-start; i++ {
			out = append(out, flat[i*width:(i+1)*width:(i+1)*width])
		}
	}
	return out, nil
}

// textChunk runs one C call: the texts are copied into one C buffer (C owns no Go pointer),
// the output goes straight into Go memory holding no pointers.
func (m *Model) textChunk(op string, texts []string, f textCall) ([]float32, int, error) {
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
	flat := make([]float32, len(texts)*m.info.OutputDim)
	var textsPtr **C.char
	if len(ptrs) > 0 {
		textsPtr = &ptrs[0]
	}
	var outPtr *C.float
	if len(flat) > 0 {
		outPtr = (*C.float)(unsafe.Pointer(&flat[0]))
	}
	var rows, labels C.size_t
	err = call(op, func() C.TorchlessStatus {
		return f(ptr, textsPtr, C.size_t(len(texts)), outPtr, C.size_t(len(flat)), &rows, &labels)
	})
	if err != nil {
		return nil, 0, err
	}
	return flat, int(labels), nil
}
