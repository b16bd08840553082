package torchless

/*
#include <stdint.h>
#include <stdlib.h>
#include "torchless.h"
// The Go trampoline (callback.go), handed to the library as the token callback.
extern int torchlessGoOnToken(void *user_data, uint32_t token_id);
*/
import "C"

import (
	"context"
	"fmt"
	"math"
	"runtime/cgo"
	"unsafe"
)

// Prompt is what Generate continues: token ids, or text for the model's tokenizer. Set
// exactly one.
type Prompt struct {
	IDs  []uint32
	Text string
}

// GenerateOptions are the sampling settings; start from DefaultGenerateOptions.
type GenerateOptions struct {
	// MaxNewTokens bounds the new tokens (> 0); generation also stops at end-of-sequence.
	MaxNewTokens int
	// Temperature 0 is greedy decoding.
	Temperature float32
	// TopK keeps the k most likely tokens (0: all).
	TopK int
	// TopP is the nucleus mass in (0, 1] (1: all).
	TopP float32
	// Seed makes sampling reproducible.
	Seed uint64
}

// DefaultGenerateOptions are the library's defaults: greedy, 32 new tokens, seed 0.
func DefaultGenerateOptions() GenerateOptions {
	o := C.torchless_generate_options_default()
	return GenerateOptions{MaxNewTokens: int(o.max_new_tokens), Temperature: float32(o.temperature),
		TopK: int(o.top_k), TopP: float32(o.top_p), Seed: uint64(o.seed)}
}

// generation is the state the token callback reaches through a cgo.Handle.
type generation struct {
	ctx      context.Context
	onToken  func(tokenID uint32) bool
	tokens   []uint32
	panicked interface{}
}

// Generate continues prompt with up to opts.MaxNewTokens new tokens (a text generator) and
// returns them. onToken, when not nil, sees each token as it is produced, on the calling
// goroutine's thread and before Generate returns; returning false stops generation (Generate
// then returns the tokens so far and no error). A cancelled context stops generation at the
// next token and returns ctx.Err(). A panic in onToken stops generation and is re-raised by
// Generate. On a model that is not a generator it returns an *Error with
// StatusWrongModelKind.
func (m *Model) Generate(ctx context.Context, prompt Prompt, opts GenerateOptions, onToken func(tokenID uint32) bool) ([]uint32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.MaxNewTokens <= 0 || opts.TopK < 0 || opts.MaxNewTokens > math.MaxUint32 || opts.TopK > math.MaxUint32 {
		return nil, &Error{Op: "generate", Status: StatusInvalidArgument,
			Message: fmt.Sprintf("MaxNewTokens %d must be in 1..2^32-1 and TopK %d in 0..2^32-1", opts.MaxNewTokens, opts.TopK)}
	}
	ptr, err := m.acquire()
	if err != nil {
		return nil, err
	}
	defer m.release()
	var ids *C.uint32_t
	if len(prompt.IDs) > 0 {
		ids = (*C.uint32_t)(unsafe.Pointer(&prompt.IDs[0]))
	}
	var text *C.char
	if prompt.Text != "" {
		text = C.CString(prompt.Text)
		defer C.free(unsafe.Pointer(text))
	}
	copts := C.TorchlessGenerateOptions{
		max_new_tokens: C.uint32_t(opts.MaxNewTokens),
		temperature:    C.float(opts.Temperature),
		top_k:          C.uint32_t(opts.TopK),
		top_p:          C.float(opts.TopP),
		seed:           C.uint64_t(opts.Seed),
	}
	// The tokens are collected by the callback as they come (out_ids NULL), so nothing of
	// MaxNewTokens' size is allocated up front.
	g := &generation{ctx: ctx, onToken: onToken}
	h := cgo.NewHandle(g)
	defer h.Delete()
	var n C.size_t
	err = call("generate", func() C.TorchlessStatus {
		// &h points to Go memory holding no Go pointer, used by the callback only during
		// this call, as the cgo rules allow.
		return C.torchless_generate(ptr, ids, C.size_t(len(prompt.IDs)), text, &copts,
			nil, 0, &n,
			C.TorchlessTokenCallback(C.torchlessGoOnToken), unsafe.Pointer(&h))
	})
	if g.panicked != nil {
		panic(g.panicked)
	}
	if err != nil {
		return nil, err
	}
	if int(n) != len(g.tokens) {
		return nil, &Error{Op: "generate", Status: StatusInference,
			Message: fmt.Sprintf("the library reported %d tokens, the callback saw %d", int(n), len(g.tokens))}
	}
	if err := ctx.Err(); err != nil {
		return g.tokens, err
	}
	return g.tokens, nil
}
