package torchless

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The sequence-classification fixtures: a BERT cross-encoder reranker (one label) and an XLM-R
// text classifier (three labels), with sentence-transformers' CrossEncoder.predict scores and
// transformers' logits (tests/fixtures/rerank/README.md).
var rerankFixtures = filepath.Join("..", "..", "..", "tests", "fixtures", "rerank")

type rerankModel struct {
	NumLabels int               `json:"num_labels"`
	Scores    json.RawMessage   `json:"scores"`
	ID2Label  map[string]string `json:"id2label"`
	Texts     []struct {
		Logits []float64 `json:"logits"`
	} `json:"texts"`
}

type rerankExpected struct {
	Query  string                 `json:"query"`
	Pairs  [][2]string            `json:"pairs"`
	Texts  []string               `json:"texts"`
	Models map[string]rerankModel `json:"-"`
}

func rerankExpectedFile(t testing.TB) rerankExpected {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(rerankFixtures, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e rerankExpected
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &all); err != nil {
		t.Fatal(err)
	}
	e.Models = map[string]rerankModel{}
	for _, name := range []string{"bert-reranker", "xlmr-classifier"} {
		var m rerankModel
		if err := json.Unmarshal(all[name], &m); err != nil {
			t.Fatal(err)
		}
		e.Models[name] = m
	}
	return e
}

// scores flattens a model's "scores" (floats for one label, rows for several).
func (m rerankModel) scores(t testing.TB) []float64 {
	t.Helper()
	var one []float64
	if json.Unmarshal(m.Scores, &one) == nil {
		return one
	}
	var rows [][]float64
	if err := json.Unmarshal(m.Scores, &rows); err != nil {
		t.Fatal(err)
	}
	var flat []float64
	for _, r := range rows {
		flat = append(flat, r...)
	}
	return flat
}

func loadRerank(t testing.TB, name string) *Model {
	t.Helper()
	m, err := Load(filepath.Join(rerankFixtures, name), Options{Device: "cpu", DType: "f32"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// relErr is the norm-relative error of got against want.
func relErr(t *testing.T, got [][]float32, width int, want []float64) float64 {
	t.Helper()
	var flat []float32
	for _, r := range got {
		if len(r) != width {
			t.Fatalf("row of %d values, want %d", len(r), width)
		}
		flat = append(flat, r...)
	}
	if len(flat) != len(want) {
		t.Fatalf("%d values, want %d", len(flat), len(want))
	}
	var d, n float64
	for i, w := range want {
		d += (float64(flat[i]) - w) * (float64(flat[i]) - w)
		n += w * w
	}
	return math.Sqrt(d / n)
}

func TestRerankMatchesCrossEncoder(t *testing.T) {
	e := rerankExpectedFile(t)
	ctx := context.Background()
	for _, name := range []string{"bert-reranker", "xlmr-classifier"} {
		m := loadRerank(t, name)
		want := e.Models[name]
		if got := m.Info(); got.Kind != KindTextClassifier || got.OutputDim != want.NumLabels {
			t.Fatalf("%s: info %+v", name, got)
		}
		var got [][]float32
		for i := 0; i < len(e.Pairs); {
			q := e.Pairs[i][0]
			var docs []string
			for ; i < len(e.Pairs) && e.Pairs[i][0] == q; i++ {
				docs = append(docs, e.Pairs[i][1])
			}
			rows, err := m.Rerank(ctx, q, docs)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rows...)
		}
		if err := relErr(t, got, want.NumLabels, want.scores(t)); err > 1e-4 {
			t.Fatalf("%s: relative error %g", name, err)
		}
	}
	m := loadRerank(t, "bert-reranker")
	_, err := m.Rerank(ctx, e.Query, nil)
	wantStatus(t, err, StatusInvalidArgument, "empty batch: n_documents is 0")
	_, err = m.Rerank(ctx, "q\x00", []string{"d"})
	wantStatus(t, err, StatusInvalidArgument, "query contains a NUL byte")
	_, err = m.Rerank(ctx, "q", []string{"d", "\x00"})
	wantStatus(t, err, StatusInvalidArgument, "documents[1] contains a NUL byte")
	_, err = m.Rerank(ctx, "q", []string{"\xff"})
	wantStatus(t, err, StatusInvalidArgument, "")
	_, err = tiny(t).Rerank(ctx, "q", []string{"d"})
	wantStatus(t, err, StatusWrongModelKind, "torchless_rerank: this model is not a text classifier (tiny-st `bert` is a sentence encoder: use torchless_embed)")
	_, err = m.Embed(ctx, []string{"d"})
	wantStatus(t, err, StatusWrongModelKind, "torchless_embed: this model is not a sentence encoder or an image-text embedder (bert-reranker `bert` is a text classifier: use torchless_rerank or torchless_classify_text)")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Rerank(cancelled, "q", []string{"d"}); err != context.Canceled {
		t.Fatalf("cancelled context: %v", err)
	}
	m.Close()
	if _, err := m.Rerank(ctx, "q", []string{"d"}); err != ErrClosed {
		t.Fatalf("closed model: %v", err)
	}
}

func TestClassifyTextMatchesTransformers(t *testing.T) {
	e := rerankExpectedFile(t)
	ctx := context.Background()
	for _, name := range []string{"bert-reranker", "xlmr-classifier"} {
		m := loadRerank(t, name)
		want := e.Models[name]
		var logits []float64
		for _, x := range want.Texts {
			logits = append(logits, x.Logits...)
		}
		got, err := m.ClassifyText(ctx, e.Texts)
		if err != nil {
			t.Fatal(err)
		}
		if err := relErr(t, got, want.NumLabels, logits); err > 1e-4 {
			t.Fatalf("%s: relative error %g", name, err)
		}
	}
	_, err := loadRerank(t, "xlmr-classifier").ClassifyText(ctx, nil)
	wantStatus(t, err, StatusInvalidArgument, "empty batch: n_texts is 0")
	_, err = tiny(t).ClassifyText(ctx, []string{"t"})
	wantStatus(t, err, StatusWrongModelKind, "torchless_classify_text: this model is not a text classifier (tiny-st `bert` is a sentence encoder: use torchless_embed)")
}

func TestLabels(t *testing.T) {
	e := rerankExpectedFile(t)
	m := loadRerank(t, "xlmr-classifier")
	want := e.Models["xlmr-classifier"].ID2Label
	if got := m.Labels(); !reflect.DeepEqual(got, []string{want["0"], want["1"], want["2"]}) {
		t.Fatalf("labels %q, want %v", got, want)
	}
	m.Labels()[0] = "changed"
	if m.Labels()[0] != want["0"] {
		t.Fatal("Labels returns the model's own slice")
	}
	if got := loadRerank(t, "bert-reranker").Labels(); !reflect.DeepEqual(got, []string{"LABEL_0"}) {
		t.Fatalf("reranker labels %q", got)
	}
	if got := tiny(t).Labels(); got != nil {
		t.Fatalf("encoder labels %q", got)
	}
}
