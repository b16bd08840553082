package torchless

/*
#include <stdlib.h>
#include <string.h>
#include "torchless.h"
*/
import "C"

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"unsafe"
)

// DType is the element type of a Tensor (the C ABI's TorchlessDtype).
type DType int

// The element types a program takes and returns.
const (
	Float32  DType = C.TORCHLESS_DTYPE_F32
	Float16  DType = C.TORCHLESS_DTYPE_F16
	BFloat16 DType = C.TORCHLESS_DTYPE_BF16
	Float64  DType = C.TORCHLESS_DTYPE_F64
	Int64    DType = C.TORCHLESS_DTYPE_I64
	Int32    DType = C.TORCHLESS_DTYPE_I32
	Int16    DType = C.TORCHLESS_DTYPE_I16
	Int8     DType = C.TORCHLESS_DTYPE_I8
	Uint8    DType = C.TORCHLESS_DTYPE_U8
	Bool     DType = C.TORCHLESS_DTYPE_BOOL
)

// Size is the bytes of one element (0 for an unknown DType).
func (d DType) Size() int {
	switch d {
	case Float64, Int64:
		return 8
	case Float32, Int32:
		return 4
	case Float16, BFloat16, Int16:
		return 2
	case Int8, Uint8, Bool:
		return 1
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Float16:
		return "float16"
	case BFloat16:
		return "bfloat16"
	case Float64:
		return "float64"
	case Int64:
		return "int64"
	case Int32:
		return "int32"
	case Int16:
		return "int16"
	case Int8:
		return "int8"
	case Uint8:
		return "uint8"
	case Bool:
		return "bool"
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// Tensor is a typed array: Data holds the values little-endian, in C (row-major) order, one
// byte per bool; len(Data) is the product of Shape times DType.Size(). An empty Shape is a
// scalar (one element).
type Tensor struct {
	DType DType
	Shape []int64
	Data  []byte
}

// NumElements is the product of the shape.
func (t Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= int(d)
	}
	return n
}

// NewTensorF32 makes a float32 tensor of the given shape from values in C order.
func NewTensorF32(shape []int64, v []float32) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return Tensor{DType: Float32, Shape: shape, Data: b}
}

// NewTensorF64 makes a float64 tensor.
func NewTensorF64(shape []int64, v []float64) Tensor {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return Tensor{DType: Float64, Shape: shape, Data: b}
}

// NewTensorI64 makes an int64 tensor.
func NewTensorI64(shape []int64, v []int64) Tensor {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return Tensor{DType: Int64, Shape: shape, Data: b}
}

// NewTensorI32 makes an int32 tensor.
func NewTensorI32(shape []int64, v []int32) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return Tensor{DType: Int32, Shape: shape, Data: b}
}

// NewTensorBool makes a bool tensor.
func NewTensorBool(shape []int64, v []bool) Tensor {
	b := make([]byte, len(v))
	for i, x := range v {
		if x {
			b[i] = 1
		}
	}
	return Tensor{DType: Bool, Shape: shape, Data: b}
}

// Float32s returns the values of a float32, float16 or bfloat16 tensor as float32 (exact).
func (t Tensor) Float32s() ([]float32, error) {
	switch t.DType {
	case Float32:
		v := make([]float32, len(t.Data)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
		return v, nil
	case Float16:
		v := make([]float32, len(t.Data)/2)
		for i := range v {
			v[i] = f16ToF32(binary.LittleEndian.Uint16(t.Data[2*i:]))
		}
		return v, nil
	case BFloat16:
		v := make([]float32, len(t.Data)/2)
		for i := range v {
			v[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[2*i:])) << 16)
		}
		return v, nil
	}
	return nil, fmt.Errorf("torchless: Float32s of a %s tensor", t.DType)
}

// Float64s returns the values of a float64 tensor.
func (t Tensor) Float64s() ([]float64, error) {
	if t.DType != Float64 {
		return nil, fmt.Errorf("torchless: Float64s of a %s tensor", t.DType)
	}
	v := make([]float64, len(t.Data)/8)
	for i := range v {
		v[i] = math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return v, nil
}

// Int64s returns the values of an integer tensor (int64, int32, int16, int8, uint8) as int64.
func (t Tensor) Int64s() ([]int64, error) {
	n := t.DType.Size()
	if n == 0 || t.DType == Float16 || t.DType == BFloat16 || t.DType == Float32 ||
		t.DType == Float64 || t.DType == Bool {
		return nil, fmt.Errorf("torchless: Int64s of a %s tensor", t.DType)
	}
	v := make([]int64, len(t.Data)/n)
	for i := range v {
		b := t.Data[n*i:]
		switch t.DType {
		case Int64:
			v[i] = int64(binary.LittleEndian.Uint64(b))
		case Int32:
			v[i] = int64(int32(binary.LittleEndian.Uint32(b)))
		case Int16:
			v[i] = int64(int16(binary.LittleEndian.Uint16(b)))
		case Int8:
			v[i] = int64(int8(b[0]))
		default:
			v[i] = int64(b[0])
		}
	}
	return v, nil
}

// Bools returns the values of a bool tensor.
func (t Tensor) Bools() ([]bool, error) {
	if t.DType != Bool {
		return nil, fmt.Errorf("torchless: Bools of a %s tensor", t.DType)
	}
	v := make([]bool, len(t.Data))
	for i, b := range t.Data {
		v[i] = b != 0
	}
	return v, nil
}

// f16ToF32 widens an IEEE half (exactly).
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
	case frac == 0: // ±0
		return math.Float32frombits(sign)
	}
	// Subnormal: frac × 2^-24.
	v := float32(frac) / (1 << 24)
	if sign != 0 {
		v = -v
	}
	return v
}

// Signature is a program's number of inputs and outputs.
func (m *Model) Signature() (inputs, outputs int, err error) {
	ptr, err := m.acquire()
	if err != nil {
		return 0, 0, err
	}
	defer m.release()
	var ni, no C.size_t
	err = call("program_signature", func() C.TorchlessStatus {
		return C.torchless_program_signature(ptr, &ni, &no)
	})
	return int(ni), int(no), err
}

// Run runs a torch.export program (a model loaded from a .pt2 file, KindProgram) on inputs in
// the order the program declares them, and returns its outputs in flattened order. Inputs
// whose count, dtypes, sizes or dynamic-size ranges do not fit the program give an *Error with
// StatusInvalidArgument and the program's message; another kind gives StatusWrongModelKind.
// The context is checked before the call: a running program is not interrupted.
//
// Inputs and outputs are copied through C memory (the descriptors hold pointers, which cgo
// does not let C memory take from Go). Output sizes depend on the inputs, so Run asks the
// library for them first (a call that returns BUFFER_TOO_SMALL and keeps the result) and then
// copies the result out, on the same OS thread: the program runs once.
func (m *Model) Run(ctx context.Context, inputs []Tensor) ([]Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ptr, err := m.acquire()
	if err != nil {
		return nil, err
	}
	defer m.release()
	var ni, no C.size_t
	if err := call("run", func() C.TorchlessStatus {
		return C.torchless_program_signature(ptr, &ni, &no)
	}); err != nil {
		return nil, err
	}
	var c cmem
	defer c.free()
	var inPtr *C.TorchlessTensor
	if len(inputs) > 0 {
		descs := unsafe.Slice((*C.TorchlessTensor)(c.alloc(len(inputs)*C.sizeof_TorchlessTensor)), len(inputs))
		inPtr = &descs[0]
		for i, t := range inputs {
			descs[i] = C.TorchlessTensor{
				dtype:      C.int32_t(t.DType),
				ndim:       C.size_t(len(t.Shape)),
				shape:      (*C.int64_t)(c.int64s(t.Shape)),
				data:       c.bytes(t.Data),
				data_bytes: C.size_t(len(t.Data)),
			}
		}
	}
	n := int(no)
	var outs []C.TorchlessTensorOut
	var outPtr *C.TorchlessTensorOut
	if n > 0 {
		outs = unsafe.Slice((*C.TorchlessTensorOut)(c.alloc(n*C.sizeof_TorchlessTensorOut)), n)
		outPtr = &outs[0]
		for i := range outs {
			outs[i] = C.TorchlessTensorOut{}
		}
	}
	// Both calls on one OS thread: the library keeps a too-small call's result per thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err = call("run", func() C.TorchlessStatus {
		return C.torchless_run(ptr, inPtr, C.size_t(len(inputs)), outPtr, no)
	})
	if e, ok := err.(*Error); ok && e.Status == StatusBufferTooSmall {
		for i := range outs {
			o := &outs[i]
			o.shape = (*C.int64_t)(c.alloc(int(o.ndim) * 8))
			o.shape_capacity = o.ndim
			o.data = c.alloc(int(o.data_bytes))
			o.data_capacity = o.data_bytes
		}
		err = call("run", func() C.TorchlessStatus {
			return C.torchless_run(ptr, inPtr, C.size_t(len(inputs)), outPtr, no)
		})
	}
	if err != nil {
		return nil, err
	}
	result := make([]Tensor, n)
	for i, o := range outs {
		shape := make([]int64, int(o.ndim))
		if o.ndim > 0 {
			copy(shape, unsafe.Slice((*int64)(unsafe.Pointer(o.shape)), int(o.ndim)))
		}
		data := make([]byte, int(o.data_bytes))
		if o.data_bytes > 0 {
			copy(data, unsafe.Slice((*byte)(o.data), int(o.data_bytes)))
		}
		result[i] = Tensor{DType: DType(o.dtype), Shape: shape, Data: data}
	}
	return result, nil
}

// cmem is C memory allocated for one call and freed at its end.
type cmem []unsafe.Pointer

// alloc returns n zeroed bytes of C memory (NULL for n == 0), aligned for any type.
func (c *cmem) alloc(n int) unsafe.Pointer {
	if n == 0 {
		return nil
	}
	p := C.calloc(1, C.size_t(n))
	if p == nil {
		panic("torchless: out of C memory")
	}
	*c = append(*c, p)
	return p
}

// bytes copies b into C memory (NULL when empty).
func (c *cmem) bytes(b []byte) unsafe.Pointer {
	p := c.alloc(len(b))
	if p != nil {
		copy(unsafe.Slice((*byte)(p), len(b)), b)
	}
	return p
}

// int64s copies v into C memory (NULL when empty).
func (c *cmem) int64s(v []int64) unsafe.Pointer {
	p := c.alloc(8 * len(v))
	if p != nil {
		copy(unsafe.Slice((*int64)(p), len(v)), v)
	}
	return p
}

func (c *cmem) free() {
	for _, p := range *c {
		C.free(p)
	}
	*c = nil
}
