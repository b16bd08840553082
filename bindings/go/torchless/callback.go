package torchless

// This file's preamble holds declarations only, as //export requires.

/*
#include <stdint.h>
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// torchlessGoOnToken is the C token callback of Generate: userData points to the cgo.Handle of
// the call's *generation. It records the token, then returns non-zero to stop generation: when onToken says so, when
// the context is done, or when onToken panics (the panic is kept and re-raised by Generate, as
// a Go panic must not unwind through C frames).
//
//export torchlessGoOnToken
func torchlessGoOnToken(userData unsafe.Pointer, token C.uint32_t) (stop C.int) {
	g := (*(*cgo.Handle)(userData)).Value().(*generation)
	defer func() {
		if r := recover(); r != nil {
			g.panicked = r
			stop = 1
		}
	}()
	g.tokens = append(g.tokens, uint32(token))
	if g.ctx.Err() != nil {
		return 1
	}
	if g.onToken != nil && !g.onToken(uint32(token)) {
		return 1
	}
	return 0
}
