// Package torchless runs PyTorch-trained models from Go through libtorchless.so, the torchless
// C ABI: no Python, no GIL, no LibTorch and no second process.
//
// A Model is loaded once and is safe for concurrent use by any number of goroutines. Inputs
// are copied into C memory (texts, and a program's tensor descriptors and data) or passed as
// Go memory for the duration of one call (image tensors, output buffers); the library keeps no
// pointer after a call returns, as the cgo pointer rules require.
//
// A torch.export program (a .pt2 file) loads like any model, as KindProgram, and runs with
// typed tensors: Run(ctx, []Tensor) returns []Tensor (see Tensor, NewTensorF32, Float32s).
//
// Building needs the header (found relative to this package) and the shared library: set
// CGO_LDFLAGS="-L<dir of libtorchless.so> -Wl,-rpath,<same dir>" (or LD_LIBRARY_PATH at run
// time instead of the rpath). See the README section "From Go".
package torchless

/*
#cgo CFLAGS: -I${SRCDIR}/../../c
#cgo LDFLAGS: -ltorchless
#include <stdlib.h>
#include "torchless.h"
*/
import "C"

import (
	"errors"
	"runtime"
	"sync"
	"unsafe"
)

// Options says how to load a model. Empty fields take the library's defaults.
type Options struct {
	// Device is "cpu", "cuda", "cuda:N" or "auto" (default: auto, the CPU unless the
	// library was built with CUDA and a GPU is present).
	Device string
	// DType is "f32", "f16" or "bf16" (default f32).
	DType string
	// Quantize is "int8" or "none" (default none). "int8" stores every linear layer of a
	// decoder's blocks and its output projection in int8 (symmetric, one scale per output
	// channel) at load: decoding on the CPU reads a quarter of the weight bytes, at a small
	// accuracy cost (docs/quantization.md). CPU only; a model that does not generate text
	// refuses it.
	Quantize string
}

// Kind says which calls a model accepts.
type Kind int

// The model kinds.
const (
	KindEncoder        Kind = C.TORCHLESS_MODEL_KIND_ENCODER         // Embed
	KindClassifier     Kind = C.TORCHLESS_MODEL_KIND_CLASSIFIER      // Classify
	KindGenerator      Kind = C.TORCHLESS_MODEL_KIND_GENERATOR       // Generate
	KindTextClassifier Kind = C.TORCHLESS_MODEL_KIND_TEXT_CLASSIFIER // Rerank, ClassifyText, Labels
	// Embed (texts) and EmbedImages, into one space.
	KindImageTextEmbedder Kind = C.TORCHLESS_MODEL_KIND_IMAGE_TEXT_EMBEDDER
	// Run: a torch.export program, loaded from a .pt2 file.
	KindProgram Kind = C.TORCHLESS_MODEL_KIND_PROGRAM
)

func (k Kind) String() string {
	switch k {
	case KindEncoder:
		return "encoder"
	case KindClassifier:
		return "classifier"
	case KindGenerator:
		return "generator"
	case KindTextClassifier:
		return "text classifier"
	case KindImageTextEmbedder:
		return "image-text embedder"
	case KindProgram:
		return "program"
	}
	return "unknown"
}

// Info describes a loaded model.
type Info struct {
	Kind Kind
	// OutputDim is the embedding size (encoder), number of classes (classifier),
	// vocabulary size (generator), number of labels (text classifier) or the size of the
	// shared image-text space (image-text embedder), or the number of outputs (program).
	OutputDim int
	// Architecture is config.json's model_type (for example "bert"); "torch.export" for a
	// program.
	Architecture string
	// Name is the model folder's name (a program's file name).
	Name string
}

// Model is a loaded model. Its methods are safe for concurrent use; Close waits for calls in
// flight and later calls return ErrClosed.
type Model struct {
	mu     sync.RWMutex
	ptr    *C.TorchlessModel
	info   Info
	labels []string // text classifiers, and image classifiers that name their classes
}

// Load loads a model folder (config.json, weights, tokenizer), a bare ResNet state_dict file,
// or a torch.export program (a path ending in .pt2; see Run).
func Load(dir string, opts Options) (*Model, error) {
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	var cdev, cdtype *C.char
	if opts.Device != "" {
		cdev = C.CString(opts.Device)
		defer C.free(unsafe.Pointer(cdev))
	}
	if opts.DType != "" {
		cdtype = C.CString(opts.DType)
		defer C.free(unsafe.Pointer(cdtype))
	}
	var cquant *C.char
	if opts.Quantize != "" {
		cquant = C.CString(opts.Quantize)
		defer C.free(unsafe.Pointer(cquant))
	}
	var ptr *C.TorchlessModel
	if err := call("load", func() C.TorchlessStatus {
		return C.torchless_model_load_quantized(cdir, cdev, cdtype, cquant, &ptr)
	}); err != nil {
		return nil, err
	}
	var ci C.TorchlessModelInfo
	if err := call("info", func() C.TorchlessStatus { return C.torchless_model_info(ptr, &ci) }); err != nil {
		C.torchless_model_free(ptr)
		return nil, err
	}
	m := &Model{ptr: ptr, info: Info{
		Kind:         Kind(ci.kind),
		OutputDim:    int(ci.output_dim),
		Architecture: C.GoString(ci.architecture),
		Name:         C.GoString(ci.name),
	}}
	// A text classifier always has labels; an image classifier has them when its folder
	// names its classes (a ResNet state_dict does not).
	if m.info.Kind == KindTextClassifier ||
		(m.info.Kind == KindClassifier && C.torchless_model_label(ptr, 0) != nil) {
		labels, err := loadLabels(ptr, m.info.OutputDim)
		if err != nil {
			C.torchless_model_free(ptr)
			return nil, err
		}
		m.labels = labels
	}
	// A safety net only: call Close to release the model's memory at a known time.
	runtime.SetFinalizer(m, func(m *Model) { _ = m.Close() })
	return m, nil
}

// Info describes the model.
func (m *Model) Info() Info { return m.info }

// Close frees the model after the calls in flight return. It is idempotent.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ptr != nil {
		C.torchless_model_free(m.ptr)
		m.ptr = nil
		runtime.SetFinalizer(m, nil)
	}
	return nil
}

// ErrClosed is returned by calls on a closed model.
var ErrClosed = errors.New("torchless: model is closed")

// acquire read-locks the model for one call; the caller runs release when done.
func (m *Model) acquire() (*C.TorchlessModel, error) {
	m.mu.RLock()
	if m.ptr == nil {
		m.mu.RUnlock()
		return nil, ErrClosed
	}
	return m.ptr, nil
}

func (m *Model) release() {
	m.mu.RUnlock()
	runtime.KeepAlive(m)
}
