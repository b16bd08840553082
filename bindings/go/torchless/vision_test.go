package torchless

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The image fixtures: a small CLIPModel and a ViTForImageClassification with transformers'
// outputs (tests/fixtures/clip and tests/fixtures/vit, scripts/clip_fixtures.py and
// scripts/vit_fixtures.py). The pixels are the image processors' output for the same PNG.
type visionExpected struct {
	Texts       []string    `json:"texts"`
	TextEmbeds  [][]float64 `json:"text_embeds"`
	Pixels      []float64   `json:"image_pixel_values"`
	ImageEmbeds [][]float64 `json:"image_embeds"`
	ImageLogits [][]float64 `json:"image_logits"`
	Labels      []string    `json:"labels"`
}

func visionFixture(t *testing.T, name string) (*Model, visionExpected) {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "tests", "fixtures", name)
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e visionExpected
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir, Options{Device: "cpu", DType: "f32"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, e
}

func flatten(rows [][]float64) []float64 {
	var out []float64
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

func float32s(xs []float64) []float32 {
	out := make([]float32, len(xs))
	for i, x := range xs {
		out[i] = float32(x)
	}
	return out
}

func TestClipEmbedsTextsAndImagesIntoOneSpace(t *testing.T) {
	m, e := visionFixture(t, "clip")
	if got := m.Info(); got.Kind != KindImageTextEmbedder || got.OutputDim != 16 || got.Architecture != "clip" {
		t.Fatalf("info %+v", got)
	}
	ctx := context.Background()
	texts, err := m.Embed(ctx, e.Texts)
	if err != nil {
		t.Fatal(err)
	}
	if r := relErr(t, texts, 16, flatten(e.TextEmbeds)); r > 1e-4 {
		t.Fatalf("text embeddings: relative error %g", r)
	}
	images, err := m.EmbedImages(ctx, float32s(e.Pixels), [4]int{1, 3, 32, 32})
	if err != nil {
		t.Fatal(err)
	}
	if r := relErr(t, images, 16, flatten(e.ImageEmbeds)); r > 1e-4 {
		t.Fatalf("image embeddings: relative error %g", r)
	}
	// Another image size is refused by the library, naming the size the model takes.
	_, err = m.EmbedImages(ctx, make([]float32, 3*16*16), [4]int{1, 3, 16, 16})
	wantStatus(t, err, StatusInvalidArgument, "images are 3 × 16 × 16: the model takes 3 × 32 × 32 (RGB, its config's image_size)")
	if m.Labels() != nil {
		t.Fatal("CLIP has no labels")
	}
}

func TestVitClassifiesAndNamesItsClasses(t *testing.T) {
	m, e := visionFixture(t, "vit")
	if got := m.Info(); got.Kind != KindClassifier || got.OutputDim != 5 || got.Architecture != "vit" {
		t.Fatalf("info %+v", got)
	}
	logits, err := m.Classify(context.Background(), float32s(e.Pixels), [4]int{1, 3, 32, 32})
	if err != nil {
		t.Fatal(err)
	}
	if r := relErr(t, logits, 5, flatten(e.ImageLogits)); r > 1e-4 {
		t.Fatalf("logits: relative error %g", r)
	}
	if got := m.Labels(); !reflect.DeepEqual(got, e.Labels) {
		t.Fatalf("labels %v, want %v", got, e.Labels)
	}
	// A ViT does not embed images.
	_, err = m.EmbedImages(context.Background(), float32s(e.Pixels), [4]int{1, 3, 32, 32})
	wantStatus(t, err, StatusWrongModelKind, "")
}
