package torchless

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// The tiny sentence-transformers fixture and sentence-transformers' own outputs for it
// (tests/fixtures/bert/README.md).
var fixtures = filepath.Join("..", "..", "..", "tests", "fixtures", "bert")

type expectedFile struct {
	Sentences []struct {
		Text string `json:"text"`
	} `json:"sentences"`
	Embeddings [][]float64 `json:"embeddings"`
}

func expected(t testing.TB) ([]string, [][]float64) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtures, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e expectedFile
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	texts := make([]string, len(e.Sentences))
	for i, s := range e.Sentences {
		texts[i] = s.Text
	}
	return texts, e.Embeddings
}

func tiny(t testing.TB) *Model {
	t.Helper()
	m, err := Load(filepath.Join(fixtures, "tiny-st"), Options{Device: "cpu", DType: "f32"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func wantStatus(t *testing.T, err error, s Status, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want a *torchless.Error with status %d, got %v", s, err)
	}
	if e.Status != s || (msg != "" && e.Message != msg) {
		t.Fatalf("want status %d %q, got %d %q", s, msg, e.Status, e.Message)
	}
}

func TestEmbedMatchesSentenceTransformers(t *testing.T) {
	m := tiny(t)
	if got := m.Info(); got != (Info{Kind: KindEncoder, OutputDim: 32, Architecture: "bert", Name: "tiny-st"}) {
		t.Fatalf("info %+v", got)
	}
	texts, want := expected(t)
	got, err := m.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if len(got[i]) != 32 {
			t.Fatalf("row %d has %d values", i, len(got[i]))
		}
		for j, w := range want[i] {
			if d := math.Abs(float64(got[i][j]) - w); d > 1e-4 {
				t.Fatalf("text %d value %d: %v, sentence-transformers %v", i, j, got[i][j], w)
			}
		}
	}
}

func TestOneModelManyGoroutines(t *testing.T) {
	m := tiny(t)
	texts, _ := expected(t)
	want, err := m.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := 0; k < 3; k++ {
				// Rotate the batch so goroutines send different inputs at the same time.
				r := (g + k) % len(texts)
				in := append(append([]string{}, texts[r:]...), texts[:r]...)
				got, err := m.Embed(context.Background(), in)
				if err != nil {
					errs <- err
					return
				}
				for i := range in {
					for j := range got[i] {
						if got[i][j] != want[(i+r)%len(texts)][j] {
							errs <- errors.New("results differ between goroutines")
							return
						}
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

func TestBadInputReturnsErrors(t *testing.T) {
	_, err := Load(filepath.Join(fixtures, "no-such-model"), Options{})
	wantStatus(t, err, StatusIO, "")
	_, err = Load(filepath.Join(fixtures, "tiny-st"), Options{DType: "f8"})
	wantStatus(t, err, StatusInvalidArgument, `unknown dtype "f8" (expected f32, f16 or bf16)`)
	_, err = Load(filepath.Join(fixtures, "tiny-st"), Options{Device: "tpu"})
	wantStatus(t, err, StatusInvalidArgument, `unknown device "tpu" (expected cpu, cuda, cuda:N or auto)`)
	_, err = Load(fixtures, Options{})
	wantStatus(t, err, StatusInvalidModel, "")

	m := tiny(t)
	ctx := context.Background()
	_, err = m.Embed(ctx, nil)
	wantStatus(t, err, StatusInvalidArgument, "empty batch: n_texts is 0")
	_, err = m.Embed(ctx, []string{"ok", "caf\xe9"})
	wantStatus(t, err, StatusInvalidArgument, "texts[1] is not valid UTF-8 (incomplete utf-8 byte sequence from index 3)")
	_, err = m.Embed(ctx, []string{"a\x00b"})
	wantStatus(t, err, StatusInvalidArgument, "texts[0] contains a NUL byte")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err = m.Embed(cancelled, []string{"a"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	// The model still works after every error above.
	if _, err = m.Embed(ctx, []string{"still fine"}); err != nil {
		t.Fatal(err)
	}
}

func TestClassifyAndGenerateRefuseAnEncoder(t *testing.T) {
	m := tiny(t)
	ctx := context.Background()
	_, err := m.Classify(ctx, make([]float32, 2*3*4*4), [4]int{2, 3, 4, 4})
	wantStatus(t, err, StatusWrongModelKind,
		"torchless_classify: this model is not an image classifier (tiny-st `bert` is a sentence encoder: use torchless_embed)")
	_, err = m.Classify(ctx, make([]float32, 5), [4]int{1, 3, 4, 4})
	wantStatus(t, err, StatusInvalidArgument, "shape [1 3 4 4] holds 48 values, input has 5")
	_, err = m.Classify(ctx, nil, [4]int{0, 3, 4, 4})
	wantStatus(t, err, StatusInvalidArgument, "empty input: shape [0, 3, 4, 4]")

	calls := 0
	onToken := func(uint32) bool { calls++; return true }
	opts := DefaultGenerateOptions()
	if opts != (GenerateOptions{MaxNewTokens: 32, TopP: 1}) {
		t.Fatalf("defaults %+v", opts)
	}
	_, err = m.Generate(ctx, Prompt{IDs: []uint32{2, 5, 9}}, opts, onToken)
	wantStatus(t, err, StatusWrongModelKind,
		"torchless_generate: this model is not a text generator (tiny-st `bert` is a sentence encoder: use torchless_embed)")
	_, err = m.Generate(ctx, Prompt{Text: "Once upon a time"}, opts, onToken)
	wantStatus(t, err, StatusWrongModelKind, "")
	_, err = m.Generate(ctx, Prompt{IDs: []uint32{1}, Text: "both"}, opts, onToken)
	wantStatus(t, err, StatusInvalidArgument, "give prompt_ids or prompt_text, not both")
	_, err = m.Generate(ctx, Prompt{}, opts, onToken)
	wantStatus(t, err, StatusNullPointer, "prompt_ids and prompt_text is NULL")
	opts.TopP = 2
	_, err = m.Generate(ctx, Prompt{Text: "x"}, opts, onToken)
	wantStatus(t, err, StatusInvalidArgument, "top_p 2 is not in (0, 1]")
	opts = DefaultGenerateOptions()
	opts.MaxNewTokens = 0
	_, err = m.Generate(ctx, Prompt{Text: "x"}, opts, onToken)
	wantStatus(t, err, StatusInvalidArgument, "")
	if calls != 0 {
		t.Fatalf("the callback ran %d times", calls)
	}
}

func TestClosedModel(t *testing.T) {
	m := tiny(t)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal("Close is idempotent:", err)
	}
	ctx := context.Background()
	if _, err := m.Embed(ctx, []string{"a"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Embed after Close: %v", err)
	}
	if _, err := m.Classify(ctx, make([]float32, 1), [4]int{1, 1, 1, 1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Classify after Close: %v", err)
	}
	if _, err := m.Generate(ctx, Prompt{Text: "a"}, DefaultGenerateOptions(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Generate after Close: %v", err)
	}
	if m.Info().Name != "tiny-st" {
		t.Fatal("Info stays readable after Close")
	}
}

func TestCloseWaitsForCallsInFlight(t *testing.T) {
	m := tiny(t)
	texts, _ := expected(t)
	var wg, started sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			for k := 0; k < 20; k++ {
				_, err := m.Embed(context.Background(), texts)
				if err != nil && !errors.Is(err, ErrClosed) {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Close while the goroutines are calling: it waits for the calls in flight, and the calls
	// after it get ErrClosed, never a freed model.
	started.Wait()
	m.Close()
	wg.Wait()
	if _, err := m.Embed(context.Background(), texts); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

var sink [][]float32

func BenchmarkEmbed(b *testing.B) {
	m := tiny(b)
	ctx := context.Background()
	texts := []string{"Hello world"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := m.Embed(ctx, texts)
		if err != nil {
			b.Fatal(err)
		}
		sink = out
	}
}

// BenchmarkCallOverhead is the fixed cost of one call through the boundary (Go -> C -> Rust
// -> Go, with the thread lock and the error message copied back): an empty batch, which the
// library refuses before running the model.
func BenchmarkCallOverhead(b *testing.B) {
	m := tiny(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if _, err := m.Embed(ctx, nil); err == nil {
			b.Fatal("an empty batch must fail")
		}
	}
}
