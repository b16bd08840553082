package torchless

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
)

// The decoder fixtures and transformers' greedy continuations for them
// (tests/fixtures/decoders/README.md).
var decoderFixtures = filepath.Join("..", "..", "..", "tests", "fixtures", "decoders")

type decoderCase struct {
	PromptIDs    []uint32 `json:"prompt_ids"`
	GreedyNewIDs []uint32 `json:"greedy_new_ids"`
	Text         string   `json:"text"`
}

type decoderExpected struct {
	Models map[string]struct {
		Cases     []decoderCase `json:"cases"`
		TextCases []decoderCase `json:"text_cases"`
	} `json:"models"`
}

func decoders(t testing.TB) decoderExpected {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(decoderFixtures, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e decoderExpected
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func gpt2(t testing.TB) *Model {
	t.Helper()
	m, err := Load(filepath.Join(decoderFixtures, "gpt2"), Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func greedy(n int) GenerateOptions {
	o := DefaultGenerateOptions()
	o.MaxNewTokens = n
	return o
}

func TestGenerateMatchesTransformers(t *testing.T) {
	e := decoders(t)
	m := gpt2(t)
	if info := m.Info(); info.Kind != KindGenerator || info.OutputDim != 384 {
		t.Fatalf("info %+v", info)
	}
	ctx := context.Background()
	for _, c := range e.Models["gpt2"].Cases {
		var streamed []uint32
		got, err := m.Generate(ctx, Prompt{IDs: c.PromptIDs}, greedy(20), func(id uint32) bool {
			streamed = append(streamed, id)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.GreedyNewIDs) || !reflect.DeepEqual(streamed, got) {
			t.Fatalf("prompt %v: got %v, streamed %v, want %v", c.PromptIDs, got, streamed, c.GreedyNewIDs)
		}
	}
	tc := e.Models["gpt2"].TextCases[0]
	got, err := m.Generate(ctx, Prompt{Text: tc.Text}, greedy(20), nil)
	if err != nil || !reflect.DeepEqual(got, tc.GreedyNewIDs) {
		t.Fatalf("text prompt: %v %v, want %v", got, err, tc.GreedyNewIDs)
	}
	// The other calls refuse a generator.
	_, err = m.Embed(ctx, []string{"x"})
	wantStatus(t, err, StatusWrongModelKind, "")
}

// Options.Quantize "int8" loads a decoder with int8 block weights: the continuation stays
// mostly the f32 one (the fixture's random weights give near-flat logits, so only the first
// tokens are compared), and an encoder refuses it.
func TestInt8Quantization(t *testing.T) {
	e := decoders(t)
	m, err := Load(filepath.Join(decoderFixtures, "gpt2"), Options{Device: "cpu", Quantize: "int8"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := e.Models["gpt2"].Cases[0]
	got, err := m.Generate(context.Background(), Prompt{IDs: c.PromptIDs}, greedy(20), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(c.GreedyNewIDs) || got[0] != c.GreedyNewIDs[0] {
		t.Fatalf("int8: got %v, f32 %v", got, c.GreedyNewIDs)
	}
	_, err = Load(filepath.Join(fixtures, "tiny-st"), Options{Device: "cpu", Quantize: "int8"})
	wantStatus(t, err, StatusInvalidArgument, "")
	_, err = Load(filepath.Join(decoderFixtures, "gpt2"), Options{Device: "cpu", Quantize: "int4"})
	wantStatus(t, err, StatusInvalidArgument, `unknown quantization "int4" (expected int8 or none)`)
}

// Many goroutines stream tokens from one model through Go callbacks at once; each sees
// exactly transformers' greedy continuation, and a callback that returns false stops its
// own generation only.
func TestStreamingGenerationFromManyGoroutines(t *testing.T) {
	e := decoders(t)
	m := gpt2(t)
	c := e.Models["gpt2"].Cases[1]
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan string, 256)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				limit := len(c.GreedyNewIDs)
				if (g+i)%3 == 0 {
					limit = 1 + (g+i)%5
				}
				var seen []uint32
				got, err := m.Generate(ctx, Prompt{IDs: c.PromptIDs}, greedy(20), func(id uint32) bool {
					seen = append(seen, id)
					return len(seen) < limit
				})
				switch {
				case err != nil:
					errs <- err.Error()
				case !reflect.DeepEqual(got, c.GreedyNewIDs[:limit]):
					errs <- "wrong tokens"
				case !reflect.DeepEqual(seen, got):
					errs <- "callback saw other tokens"
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

// A panic in the callback stops generation and comes back as a panic in Go, after C
// returned; the model keeps working.
func TestGenerateCallbackPanicIsRaisedInGo(t *testing.T) {
	m := gpt2(t)
	ctx := context.Background()
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v", r)
			}
		}()
		_, _ = m.Generate(ctx, Prompt{IDs: []uint32{1, 2, 3}}, greedy(8), func(uint32) bool { panic("boom") })
		t.Fatal("no panic")
	}()
	if _, err := m.Generate(ctx, Prompt{IDs: []uint32{1, 2, 3}}, greedy(2), nil); err != nil {
		t.Fatal(err)
	}
	_, err := m.Generate(ctx, Prompt{IDs: []uint32{1, 99999}}, greedy(2), nil)
	wantStatus(t, err, StatusInvalidArgument, "")
}
