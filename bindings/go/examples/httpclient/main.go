// Command httpclient calls a running `torchless serve` over HTTP with the standard library only:
// POST /v1/embeddings, then POST /v1/chat/completions (whole, then streamed as server-sent
// events). No cgo and no torchless library: the server does the work.
//
//	torchless serve --model minilm=tests/fixtures/bert/tiny-st \
//	    --model gpt2=tests/fixtures/decoders/gpt2 --port 8080 &
//	go run ./examples/httpclient -url http://127.0.0.1:8080 -embed-model minilm -chat-model gpt2
//
// It waits (at most -wait) for GET /ready, checks what it receives (one unit-length embedding
// per input; streamed chat deltas that add up to the whole answer) and exits non-zero on any
// error, so it doubles as a smoke test. The bearer token comes from -api-key or
// TORCHLESS_API_KEY.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"os"
	"strings"
	"time"
)

type client struct {
	base   string
	apiKey string
	http   *http.Client
}

// apiError is the server's error body: {"error": {"message", "type", "code"}}.
type apiError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    int    `json:"code"`
	} `json:"error"`
}

func (c *client) post(path string, body any) (*http.Response, error) {
	buf, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, c.base+path, bytes.NewReader(buf))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e apiError
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return nil, fmt.Errorf("%s: %d %s: %s", path, resp.StatusCode, e.Error.Type, e.Error.Message)
		}
		return nil, fmt.Errorf("%s: %s", path, resp.Status)
	}
	return resp, nil
}

func (c *client) postJSON(path string, body, out any) error {
	resp, err := c.post(path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

// waitReady polls GET /ready until it answers 200 or the deadline passes.
func (c *client) waitReady(wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		req, err := http.NewRequest(http.MethodGet, c.base+"/ready", nil)
		if err != nil {
			return err
		}
		if c.apiKey != "" {
			req.Header.Set("Authorization", "Bearer "+c.apiKey)
		}
		resp, err := c.http.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/ready did not answer 200 within %s", c.base, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type embeddingsResponse struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	} `json:"data"`
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
	} `json:"usage"`
}

func (c *client) embed(model string, texts []string) error {
	var out embeddingsResponse
	if err := c.postJSON("/v1/embeddings", map[string]any{"model": model, "input": texts}, &out); err != nil {
		return err
	}
	if len(out.Data) != len(texts) {
		return fmt.Errorf("/v1/embeddings: %d embeddings for %d texts", len(out.Data), len(texts))
	}
	for i, d := range out.Data {
		var norm float64
		for _, x := range d.Embedding {
			norm += x * x
		}
		if d.Index != i || len(d.Embedding) == 0 || math.Abs(math.Sqrt(norm)-1) > 1e-3 {
			return fmt.Errorf("/v1/embeddings: embedding %d: index %d, %d values, norm %.4f", i, d.Index, len(d.Embedding), math.Sqrt(norm))
		}
		fmt.Printf("embedding %d: %d values, starts %.4f %.4f\n", i, len(d.Embedding), d.Embedding[0], d.Embedding[1])
	}
	fmt.Printf("usage: %d prompt tokens\n", out.Usage.PromptTokens)
	return nil
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatResponse struct {
	Choices []struct {
		Message      message `json:"message"`
		FinishReason string  `json:"finish_reason"`
	} `json:"choices"`
}

type chatChunk struct {
	Choices []struct {
		Delta struct {
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

func (c *client) chat(model, prompt string, maxTokens int) error {
	req := map[string]any{
		"model":       model,
		"messages":    []message{{Role: "user", Content: prompt}},
		"max_tokens":  maxTokens,
		"temperature": 0,
	}
	var whole chatResponse
	if err := c.postJSON("/v1/chat/completions", req, &whole); err != nil {
		return err
	}
	if len(whole.Choices) != 1 {
		return errors.New("/v1/chat/completions: no choice")
	}
	answer := whole.Choices[0].Message.Content
	fmt.Printf("chat (%s): %q\n", whole.Choices[0].FinishReason, answer)

	// The same request streamed: `data: {chunk}` lines, then `data: [DONE]`.
	req["stream"] = true
	resp, err := c.post("/v1/chat/completions", req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var streamed strings.Builder
	done := false
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		data := strings.TrimPrefix(line, "data: ")
		if data == "[DONE]" {
			done = true
			break
		}
		var chunk chatChunk
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return fmt.Errorf("stream: %v in %q", err, data)
		}
		if len(chunk.Choices) == 0 {
			var e apiError
			if json.Unmarshal([]byte(data), &e) == nil && e.Error.Message != "" {
				return fmt.Errorf("stream: %s", e.Error.Message)
			}
			continue
		}
		if d := chunk.Choices[0].Delta.Content; d != nil {
			streamed.WriteString(*d)
		}
	}
	if err := scanner.Err(); err != nil {
		return err
	}
	if !done {
		return errors.New("stream: ended without data: [DONE]")
	}
	if streamed.String() != answer {
		return fmt.Errorf("stream: deltas add up to %q, the whole answer is %q", streamed.String(), answer)
	}
	fmt.Printf("streamed: %q (same text)\n", streamed.String())
	return nil
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "the server's base URL")
	embedModel := flag.String("embed-model", "", "a served sentence encoder (skipped when empty)")
	chatModel := flag.String("chat-model", "", "a served decoder with a chat template (skipped when empty)")
	prompt := flag.String("prompt", "Say hello.", "the chat message")
	maxTokens := flag.Int("max-tokens", 16, "new tokens at most")
	apiKey := flag.String("api-key", os.Getenv("TORCHLESS_API_KEY"), "bearer token (default $TORCHLESS_API_KEY)")
	wait := flag.Duration("wait", 60*time.Second, "how long to wait for GET /ready")
	flag.Parse()
	c := &client{base: strings.TrimSuffix(*url, "/"), apiKey: *apiKey, http: &http.Client{Timeout: 120 * time.Second}}
	if err := c.waitReady(*wait); err != nil {
		log.Fatal(err)
	}
	if *embedModel != "" {
		if err := c.embed(*embedModel, []string{"Hello world", "Go calls torchless over HTTP."}); err != nil {
			log.Fatal(err)
		}
	}
	if *chatModel != "" {
		if err := c.chat(*chatModel, *prompt, *maxTokens); err != nil {
			log.Fatal(err)
		}
	}
}
