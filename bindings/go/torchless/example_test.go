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
	m, err := torchless.Load(tinyST, torchless.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	// Streams tokens to the callback; an encoder is no generator, so this is an error here.
	_, err = m.Generate(context.Background(), torchless.Prompt{Text: "Once upon a time"},
		torchless.DefaultGenerateOptions(), func(id uint32) bool {
			fmt.Println("token", id)
			return true
		})
	var e *torchless.Error
	fmt.Println(errors.As(err, &e) && e.Status == torchless.StatusWrongModelKind)
	// Output: true
}
