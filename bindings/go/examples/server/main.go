// Command server serves sentence embeddings over HTTP from a torchless model folder:
//
//	go run ./examples/server -model ../../tests/fixtures/bert/tiny-st -addr 127.0.0.1:8080
//	curl -d '{"texts": ["Hello world"]}' http://127.0.0.1:8080/embed
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/torchless/torchless/bindings/go/torchless"
)

func main() {
	model := flag.String("model", "", "model folder (config.json, weights, tokenizer.json)")
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	device := flag.String("device", "", "cpu, cuda, cuda:N or auto (default auto)")
	dtype := flag.String("dtype", "", "f32, f16 or bf16 (default f32)")
	flag.Parse()
	if *model == "" {
		log.Fatal("-model is required")
	}
	m, err := torchless.Load(*model, torchless.Options{Device: *device, DType: *dtype})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	srv := &http.Server{Addr: *addr, Handler: NewHandler(m), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("serving %s (%d-dim embeddings) on http://%s/embed", m.Info().Name, m.Info().OutputDim, *addr)
	log.Fatal(srv.ListenAndServe())
}
