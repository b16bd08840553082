package torchless_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/torchless/torchless/bindings/go/torchless"
)

var tinyST = filepath.Join("..", "..", "..", "tests", "fixtures", "bert", "tiny-st")

func ExampleModel_Embed() {
	m, err := torchless.Load(tinyST, torchless.Options{Device: "cpu"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	vecs, err := m.Embed(context.Background(), []string{"Hello world", "Café naïve résumé"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(vecs), len(vecs[0]), m.Info().Architecture)
	// Output: 2 32 bert
}

func ExampleLoad_error() {
	_, err := torchless.Load(tinyST, torchless.Options{DType: "f8"})
	var e *torchless.Error
	if errors.As(err, &e) && e.Status == torchless.StatusInvalidArgument {
		fmt.Println(err)
	}
	// Output: torchless: load: unknown dtype "f8" (expected f32, f16 or bf16)
}

func ExampleModel_Generate() {
	m, err := torchless.Load(filepath.Join("..", "..", "..", "tests", "fixtures", "decoders", "gpt2"),
		torchless.Options{Device: "cpu"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	opts := torchless.DefaultGenerateOptions() // greedy
	opts.MaxNewTokens = 5
	streamed := 0
	ids, err := m.Generate(context.Background(), torchless.Prompt{IDs: []uint32{64}}, opts,
		func(id uint32) bool {
			streamed++ // each token as soon as it is chosen; return false to stop
			return true
		})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Info().Architecture, ids, streamed)
	// Output: gpt2 [370 370 134] 3
}
