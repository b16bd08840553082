package torchless

/*
#include "torchless.h"
*/
import "C"

import (
	"fmt"
	"runtime"
)

// Status is the library's status code for a failed call.
type Status int

// The statuses (see docs/capi.md).
const (
	StatusNullPointer     Status = C.TORCHLESS_STATUS_NULL_POINTER
	StatusInvalidArgument Status = C.TORCHLESS_STATUS_INVALID_ARGUMENT
	StatusBufferTooSmall  Status = C.TORCHLESS_STATUS_BUFFER_TOO_SMALL
	StatusIO              Status = C.TORCHLESS_STATUS_IO
	StatusInvalidModel    Status = C.TORCHLESS_STATUS_INVALID_MODEL
	StatusWrongModelKind  Status = C.TORCHLESS_STATUS_WRONG_MODEL_KIND
	StatusInference       Status = C.TORCHLESS_STATUS_INFERENCE
	StatusPanic           Status = C.TORCHLESS_STATUS_PANIC
)

// Error is a failed call: the operation, the library's status and its message.
type Error struct {
	Op      string
	Status  Status
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("torchless: %s: %s", e.Op, e.Message)
}

// call runs one C call and turns a failure into an *Error carrying the library's message. The
// message is per OS thread, so the goroutine stays on its thread between the call and reading
// the message.
func call(op string, f func() C.TorchlessStatus) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := f()
	if s == C.TORCHLESS_STATUS_OK {
		return nil
	}
	msg := C.GoString(C.torchless_last_error())
	if msg == "" {
		msg = fmt.Sprintf("status %d", int(s))
	}
	return &Error{Op: op, Status: Status(s), Message: msg}
}
