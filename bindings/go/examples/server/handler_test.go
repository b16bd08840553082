package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torchless/torchless/bindings/go/torchless"
)

func serve(t *testing.T) (*httptest.Server, *torchless.Model) {
	t.Helper()
	m, err := torchless.Load(filepath.Join("..", "..", "..", "..", "tests", "fixtures", "bert", "tiny-st"),
		torchless.Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(m))
	t.Cleanup(func() { srv.Close(); m.Close() })
	return srv, m
}

func post(c *http.Client, url, body string) (int, []byte, error) {
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func TestEmbedEndpoint(t *testing.T) {
	srv, m := serve(t)
	c := srv.Client()
	code, body, err := post(c, srv.URL+"/embed", `{"texts": ["Hello world", "Bonjour"]}`)
	if err != nil || code != http.StatusOK {
		t.Fatalf("%d %s %v", code, body, err)
	}
	var got embedResponse
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want, err := m.Embed(context.Background(), []string{"Hello world", "Bonjour"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Model != "tiny-st" || got.Dim != 32 || fmt.Sprint(got.Embeddings) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want the library's %v", got, want)
	}
	for _, c := range []struct {
		body string
		code int
	}{
		{`{"texts": []}`, http.StatusBadRequest},
		{`{"texts": ["a\u0000b"]}`, http.StatusBadRequest},
		{`not json`, http.StatusBadRequest},
	} {
		code, body, err := post(srv.Client(), srv.URL+"/embed", c.body)
		if err != nil || code != c.code {
			t.Fatalf("%s: %d %s %v", c.body, code, body, err)
		}
	}
	resp, err := c.Get(srv.URL + "/embed")
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %v %v", resp, err)
	}
	resp.Body.Close()
}
