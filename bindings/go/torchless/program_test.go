package torchless

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// A torch.export program and PyTorch's outputs for it (scripts/graph_fixtures.py).
var graphFixtures = filepath.Join("..", "..", "..", "tests", "fixtures", "graph")

// readNpy reads a little-endian C-order .npy file (format 1.0-3.0) of the dtypes the fixtures
// use into a Tensor.
func readNpy(t *testing.T, path string) Tensor {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		t.Fatalf("%s: not a .npy file", path)
	}
	hlen, start := int(b[8])|int(b[9])<<8, 10
	if b[6] >= 2 {
		hlen, start = int(b[8])|int(b[9])<<8|int(b[10])<<16|int(b[11])<<24, 12
	}
	header := string(b[start : start+hlen])
	descr := regexp.MustCompile(`'descr':\s*'([^']+)'`).FindStringSubmatch(header)
	shapeText := regexp.MustCompile(`'shape':\s*\(([^)]*)\)`).FindStringSubmatch(header)
	if descr == nil || shapeText == nil || !strings.Contains(header, "'fortran_order': False") {
		t.Fatalf("%s: unsupported header %q", path, header)
	}
	dtypes := map[string]DType{"<f4": Float32, "<f2": Float16, "<f8": Float64, "<i8": Int64,
		"<i4": Int32, "<i2": Int16, "|i1": Int8, "|u1": Uint8, "|b1": Bool}
	dt, ok := dtypes[descr[1]]
	if !ok {
		t.Fatalf("%s: dtype %s", path, descr[1])
	}
	shape := []int64{}
	for _, s := range strings.Split(shapeText[1], ",") {
		if s = strings.TrimSpace(s); s != "" {
			d, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("%s: shape %q", path, shapeText[1])
			}
			shape = append(shape, d)
		}
	}
	return Tensor{DType: dt, Shape: shape, Data: b[start+hlen:]}
}

type graphCase struct {
	Inputs  []struct{ Name, Dtype string }
	Outputs []struct {
		Op, Dtype string
		Shape     []int64
	}
	Rtol float64
}

var dtypeNames = map[string]DType{"float32": Float32, "float16": Float16, "bfloat16": BFloat16,
	"float64": Float64, "int64": Int64, "int32": Int32, "bool": Bool, "uint8": Uint8}

// values returns a tensor's values as float64 (exact for the integers here).
func values(t *testing.T, x Tensor) []float64 {
	t.Helper()
	var out []float64
	switch x.DType {
	case Float32, Float16, BFloat16:
		v, err := x.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range v {
			out = append(out, float64(f))
		}
	case Float64:
		v, err := x.Float64s()
		if err != nil {
			t.Fatal(err)
		}
		out = v
	case Bool:
		v, err := x.Bools()
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range v {
			if b {
				out = append(out, 1)
			} else {
				out = append(out, 0)
			}
		}
	default:
		v, err := x.Int64s()
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range v {
			out = append(out, float64(i))
		}
	}
	return out
}

func TestRunMatchesPyTorch(t *testing.T) {
	dir := filepath.Join(graphFixtures, "ops_int")
	raw, err := os.ReadFile(filepath.Join(dir, "case.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c graphCase
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	m, err := Load(filepath.Join(dir, "program.pt2"), Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if info := m.Info(); info.Kind != KindProgram || info.OutputDim != len(c.Outputs) ||
		info.Architecture != "torch.export" || info.Name != "program.pt2" {
		t.Fatalf("info %+v", info)
	}
	if ni, no, err := m.Signature(); err != nil || ni != len(c.Inputs) || no != len(c.Outputs) {
		t.Fatalf("signature %d %d %v", ni, no, err)
	}
	inputs := make([]Tensor, len(c.Inputs))
	for i := range inputs {
		inputs[i] = readNpy(t, filepath.Join(dir, fmt.Sprintf("in_%d.npy", i)))
	}
	// Twice: the second run must not see anything the first left behind.
	for round := 0; round < 2; round++ {
		outs, err := m.Run(context.Background(), inputs)
		if err != nil {
			t.Fatal(err)
		}
		if len(outs) != len(c.Outputs) {
			t.Fatalf("%d outputs, want %d", len(outs), len(c.Outputs))
		}
		for i, spec := range c.Outputs {
			got := outs[i]
			want := readNpy(t, filepath.Join(dir, fmt.Sprintf("out_%d.npy", i)))
			label := fmt.Sprintf("output %d (%s)", i, spec.Op)
			if got.DType != dtypeNames[spec.Dtype] {
				t.Fatalf("%s: dtype %s, want %s", label, got.DType, spec.Dtype)
			}
			if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
				t.Fatalf("%s: shape %v, want %v", label, got.Shape, want.Shape)
			}
			g, w := values(t, got), values(t, want)
			if len(g) != len(w) {
				t.Fatalf("%s: %d values, want %d", label, len(g), len(w))
			}
			float := got.DType == Float32 || got.DType == Float16 || got.DType == BFloat16
			scale := 1e-6
			for _, x := range w {
				scale = math.Max(scale, math.Abs(x))
			}
			for j := range g {
				if !float && g[j] != w[j] {
					t.Fatalf("%s[%d]: %v, PyTorch %v", label, j, g[j], w[j])
				}
				if float && math.Abs(g[j]-w[j])/scale > 1e-3 {
					t.Fatalf("%s[%d]: %v, PyTorch %v", label, j, g[j], w[j])
				}
			}
		}
	}
}

func TestRunRefusals(t *testing.T) {
	dir := filepath.Join(graphFixtures, "ops_int")
	m, err := Load(filepath.Join(dir, "program.pt2"), Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	inputs := make([]Tensor, 5)
	for i := range inputs {
		inputs[i] = readNpy(t, filepath.Join(dir, fmt.Sprintf("in_%d.npy", i)))
	}
	_, err = m.Run(context.Background(), inputs[:4])
	wantStatus(t, err, StatusInvalidArgument, "")
	if e := err.(*Error); !strings.HasSuffix(e.Message, "the program takes 5 input(s) (a, b, m, h, s0), got 4") {
		t.Fatalf("message %q", e.Message)
	}
	wrong := append([]Tensor(nil), inputs...)
	wrong[0] = NewTensorF64([]int64{2, 5}, make([]float64, 10))
	_, err = m.Run(context.Background(), wrong)
	wantStatus(t, err, StatusInvalidArgument, "")
	if e := err.(*Error); !strings.Contains(e.Message, "input `a` is") {
		t.Fatalf("message %q", e.Message)
	}
	wrong[0] = Tensor{DType: Int64, Shape: []int64{2, 5}, Data: make([]byte, 7)}
	_, err = m.Run(context.Background(), wrong)
	wantStatus(t, err, StatusInvalidArgument, "inputs[0].data_bytes is 7, but shape [2, 5] of I64 needs 80")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Run(ctx, inputs); err != context.Canceled {
		t.Fatalf("cancelled context: %v", err)
	}
	// An encoder is not a program.
	enc := tiny(t)
	_, err = enc.Run(context.Background(), inputs)
	wantStatus(t, err, StatusWrongModelKind, "")
	m.Close()
	if _, err := m.Run(context.Background(), inputs); err != ErrClosed {
		t.Fatalf("closed model: %v", err)
	}
}

func TestTensorHelpers(t *testing.T) {
	x := NewTensorF32([]int64{2}, []float32{1.5, -2})
	if v, err := x.Float32s(); err != nil || v[0] != 1.5 || v[1] != -2 || x.NumElements() != 2 {
		t.Fatalf("%v %v", v, err)
	}
	if _, err := x.Int64s(); err == nil {
		t.Fatal("Int64s of a float32 tensor")
	}
	i := NewTensorI32([]int64{}, []int32{-7})
	if v, err := i.Int64s(); err != nil || len(v) != 1 || v[0] != -7 {
		t.Fatalf("%v %v", v, err)
	}
	// float16: 1.0, -2.5, the smallest subnormal, +inf; bfloat16 1.0.
	h := Tensor{DType: Float16, Shape: []int64{4}, Data: []byte{0x00, 0x3c, 0x00, 0xc1, 0x01, 0x00, 0x00, 0x7c}}
	v, err := h.Float32s()
	if err != nil || v[0] != 1 || v[1] != -2.5 || v[2] != float32(math.Ldexp(1, -24)) || !math.IsInf(float64(v[3]), 1) {
		t.Fatalf("%v %v", v, err)
	}
	bf := Tensor{DType: BFloat16, Shape: []int64{1}, Data: []byte{0x80, 0x3f}}
	if v, err := bf.Float32s(); err != nil || v[0] != 1 {
		t.Fatalf("%v %v", v, err)
	}
	b := NewTensorBool([]int64{3}, []bool{true, false, true})
	if v, err := b.Bools(); err != nil || !v[0] || v[1] || !v[2] {
		t.Fatalf("%v %v", v, err)
	}
}

func TestRunFromManyGoroutines(t *testing.T) {
	dir := filepath.Join(graphFixtures, "ops_int")
	m, err := Load(filepath.Join(dir, "program.pt2"), Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	base := make([]Tensor, 5)
	for i := range base {
		base[i] = readNpy(t, filepath.Join(dir, fmt.Sprintf("in_%d.npy", i)))
	}
	a, _ := base[0].Int64s()
	b, _ := base[1].Int64s()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			// Each goroutine its own a[0], so a result of another goroutine shows.
			mine := append([]Tensor(nil), base...)
			av := append([]int64(nil), a...)
			av[0] += int64(g)
			mine[0] = NewTensorI64(base[0].Shape, av)
			for i := 0; i < 4; i++ {
				outs, err := m.Run(context.Background(), mine)
				if err != nil {
					errs <- err
					return
				}
				sum, err := outs[0].Int64s()
				if err != nil {
					errs <- err
					return
				}
				for j := range sum {
					if sum[j] != av[j]+b[j] {
						errs <- fmt.Errorf("goroutine %d run %d: a+b[%d] = %d, want %d", g, i, j, sum[j], av[j]+b[j])
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
