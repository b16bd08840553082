// The load test runs without the race detector: its shadow memory grows with every
// goroutine and allocation and would hide the RSS comparison, and its 5-10x slowdown would
// take most of the CI budget. `go test -race ./...` covers the handler's concurrency with
// TestEmbedEndpoint and the package's own 64-goroutine test; .ci/run runs this file without
// -race.

//go:build !race

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// rssKiB reads this process's resident set size from /proc/self/status.
func rssKiB(t *testing.T) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest := strings.TrimPrefix(s.Text(), "VmRSS:"); rest != s.Text() {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

func heapKiB() int {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int(ms.HeapAlloc / 1024)
}

// load sends n requests from `clients` concurrent clients; texts vary per request.
func load(t *testing.T, srv *httptest.Server, n, clients int) {
	t.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, clients)
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body, _ := json.Marshal(embedRequest{Texts: []string{
					fmt.Sprintf("request %d from a client", i), "Hello world",
				}})
				code, resp, err := post(srv.Client(), srv.URL+"/embed", string(body))
				if err == nil && code != http.StatusOK {
					err = fmt.Errorf("request %d: %d %s", i, code, resp)
				}
				if err == nil {
					var r embedResponse
					if err = json.Unmarshal(resp, &r); err == nil && (len(r.Embeddings) != 2 || len(r.Embeddings[1]) != 32) {
						err = fmt.Errorf("request %d: bad response %s", i, bytes.TrimSpace(resp))
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case err := <-errs:
			close(next)
			wg.Wait()
			t.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestTenThousandRequests is the load test: 10,000 embedding requests from 16 concurrent
// clients over loopback, every one answered 200 with two 32-dim embeddings, and no memory
// growth between a warm-up of 1,000 requests and the end. The bounds are generous on purpose
// (allocator caches, HTTP connection buffers and GC pacing move a few MiB either way) yet
// catch any per-request leak of 1 KiB or more on the Go heap (16 MiB over 10,000 requests)
// and of about 3 KiB or more of resident memory (a leaked C string buffer, output row or
// tensor per request).
func TestTenThousandRequests(t *testing.T) {
	srv, _ := serve(t)
	const clients = 16
	load(t, srv, 1000, clients)
	heap0, rss0 := heapKiB(), rssKiB(t)
	load(t, srv, 10000, clients)
	heap1, rss1 := heapKiB(), rssKiB(t)
	t.Logf("Go heap %d -> %d KiB, RSS %d -> %d KiB", heap0, heap1, rss0, rss1)
	if heap1-heap0 > 16*1024 {
		t.Fatalf("Go heap grew by %d KiB over 10,000 requests", heap1-heap0)
	}
	if rss1-rss0 > 32*1024 {
		t.Fatalf("RSS grew by %d KiB over 10,000 requests", rss1-rss0)
	}
}
